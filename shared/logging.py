"""structlog JSON logging with the complaint number and correlation id on each line.

Handlers bind ``complaint_no`` and ``correlation_id`` with
``structlog.contextvars.bound_contextvars``; every log call inside inherits them, and the
``trace_id`` of the span it runs in (shared/tracing.py).
A last processor masks e-mail addresses and phone numbers wherever they appear.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import structlog

from shared.redact import redact_text
from shared.tracing import add_trace_id

_SECRET_KEYS = frozenset({"password", "secret", "token", "authorization", "api_key"})


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: "***" if k.lower() in _SECRET_KEYS else _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        event_dict[key] = "***" if key.lower() in _SECRET_KEYS else _redact(value)
    return event_dict


def configure_logging(service: str, level: str = "INFO") -> structlog.stdlib.BoundLogger:
    """Configure structlog and the standard library (used by aiokafka, uvicorn) alike."""

    def add_service(
        _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event_dict.setdefault("service", service)
        return event_dict

    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_trace_id,
        add_service,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[
            *shared_processors,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            redact_processor,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka's INFO chatter about every rebalance drowns the business log.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(service)
    return logger


# What the request being served (if any) should say about itself in its access line.
_request_notes: ContextVar[dict[str, str] | None] = ContextVar("request_notes", default=None)


def note_for_access_log(**fields: str) -> None:
    """What the access line of the request being served should say that only the code
    serving it learns: the complaint a submission became, the correlation id of the
    complaint an action or read is about. Outside a request (a Kafka message) nothing."""
    notes = _request_notes.get()
    if notes is not None:
        notes.update(fields)


@contextmanager
def request_notes() -> Iterator[dict[str, str]]:
    """The notes of the request served inside the block."""
    notes: dict[str, str] = {}
    token = _request_notes.set(notes)
    try:
        yield notes
    finally:
        _request_notes.reset(token)
