"""Trace context across the platform (OpenTelemetry): a trace follows a complaint from
intake's request through every service's Kafka messages.

FastStream's ``KafkaTelemetryMiddleware`` (on every broker, ``new_broker``) spans each
batch a consumer takes, linking the producers' spans; ``handling`` gives each message of
the batch a span of its own that continues its producer's trace, so that what a handler
enqueues carries that trace on (``trace_headers``, stored with the outbox row and sent by
the relay as the W3C ``traceparent`` header). Intake's and reporting's requests are spans
too (``TraceRequests``), continuing a caller's ``traceparent``; FastAPI's own telemetry
is off (``FASTAPI_TELEMETRY``).

Spans are exported only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set, with the exporter's other standard
``OTEL_*`` variables; without it they are not recorded at all, and the context still
travels.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

from fastapi.telemetry import TelemetryConfig
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_tracer = trace.get_tracer("complaints-platform")

# FastAPI's native telemetry wakes up once a tracer provider is set: a second server span
# beside ``TraceRequests``'s, recording the path and query string (complaint numbers,
# survey tokens), and spans around each request's dependencies, endpoint and
# serialisation. Unsampled, they still cost 0.1–0.15 ms of CPU a request, three to four
# times what ``TraceRequests`` costs (BENCHMARKS.md, 2026-11-23). With no meter or logger
# provider set, its metrics and logs would record nothing anyway.
FASTAPI_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def configure_tracing(service: str) -> None:
    """The process's tracer provider, naming ``service``. The first service built in a
    process sets it (OpenTelemetry allows one): one, outside the tests."""
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    exporting = _exporting()
    # With nowhere to send spans, recording them is only cost (a benchmark at 10/s: HTTP
    # p50 100 ms recorded, 60 ms not): they are made unsampled, and the context, trace
    # ids included, still travels. OTEL_TRACES_SAMPLER, when set, decides instead.
    sampler = None if exporting or os.environ.get("OTEL_TRACES_SAMPLER") else ALWAYS_OFF
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}), sampler=sampler)
    for processor in exporting:
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)


def _exporting() -> list[SpanProcessor]:
    if not (
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        return []
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    )
    # The exporters read the endpoint, headers, certificates and timeout themselves.
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:  # http/protobuf, OpenTelemetry's default
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[assignment]
            OTLPSpanExporter,
        )
    return [BatchSpanProcessor(OTLPSpanExporter())]


def trace_headers() -> dict[str, str]:
    """The current trace context as message headers (``traceparent``, and ``tracestate``
    or ``baggage`` when there are any); none outside a span."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextmanager
def handling(topic: str, headers: Iterable[tuple[str, bytes]]) -> Iterator[None]:
    """A span for handling one consumed message, continuing the trace its headers carry
    (a new one when they carry none)."""
    carrier = {key: value.decode("latin-1") for key, value in headers}
    with _tracer.start_as_current_span(
        f"{topic} handle", context=propagate.extract(carrier), kind=trace.SpanKind.CONSUMER
    ):
        yield


def add_trace_id(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the trace id on every line logged inside a span."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", trace.format_trace_id(context.trace_id))
    return event_dict


class TraceRequests:
    """ASGI middleware: each HTTP request a server span, continuing the caller's
    ``traceparent``. It records the method, route template and status only: paths hold
    complaint numbers, query strings survey tokens."""

    def __init__(self, app: ASGIApp, untraced: Collection[str] = ()) -> None:
        self._app = app
        self._untraced = untraced

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._untraced:
            await self._app(scope, receive, send)
            return
        carrier = {
            key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]
        }
        method = scope["method"]
        with _tracer.start_as_current_span(
            method, context=propagate.extract(carrier), kind=trace.SpanKind.SERVER
        ) as span:
            span.set_attribute("http.request.method", method)

            async def traced_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", message["status"])
                    if message["status"] >= 500:
                        span.set_status(trace.StatusCode.ERROR)
                await send(message)

            try:
                await self._app(scope, receive, traced_send)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route is not None:
                    span.set_attribute("http.route", route)
                    span.update_name(f"{method} {route}")
