"""Capturing what modules log, as structlog event dicts."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import pytest
import structlog


@contextmanager
def captured_logs(
    monkeypatch: pytest.MonkeyPatch, *modules: ModuleType
) -> Iterator[list[MutableMapping[str, Any]]]:
    """What ``modules`` log inside the block. A module's ``log`` is bound on first use
    (cache_logger_on_first_use): after an earlier test used it, it holds the processors of
    that configuration and writes past ``capture_logs``. A logger made inside the capture
    takes its place."""
    with structlog.testing.capture_logs() as logs:
        for module in modules:
            monkeypatch.setattr(module, "log", structlog.get_logger(module.__name__))
        yield logs
