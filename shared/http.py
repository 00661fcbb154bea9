"""HTTP behaviour every FastAPI service shares."""

from __future__ import annotations

import signal
import time
from collections.abc import Collection

import asyncpg
import structlog
import uvicorn
from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.db import is_connection_error
from shared.logging import request_notes
from shared.watchdog import exit_after_sigterm

log = structlog.get_logger(__name__)


_DETAIL = {
    "application/json": {
        "schema": {
            "type": "object",
            "properties": {"detail": {"type": "string"}},
            "required": ["detail"],
        }
    }
}


def document_body_refusals(app: FastAPI, max_bytes: int) -> None:
    """Say on every operation that takes a body how one is refused before the schema is
    checked: 413 over ``max_bytes`` (``BodySizeLimit``), 400 when FastAPI cannot parse it
    at all (not UTF-8, a number too long to convert, nesting too deep); a body that parses
    but is not JSON or breaks the schema gets 422. Call after the routes are added."""
    for route in app.routes:
        if isinstance(route, APIRoute) and route.body_field is not None:
            route.responses.setdefault(
                400, {"description": "The body could not be read as JSON.", "content": _DETAIL}
            )
            route.responses.setdefault(
                413, {"description": f"Body over {max_bytes // 1024} KB.", "content": _DETAIL}
            )


def answer_503_when_database_down(app: FastAPI, message: str) -> None:
    """Turn a lost database connection into 503 with Retry-After instead of a bare 500."""

    async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        if not is_connection_error(exc):
            raise exc
        log.error("database unavailable", path=request.url.path, error=repr(exc))
        return JSONResponse(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            content={"detail": message},
            headers={"Retry-After": "5"},
        )

    for error_type in (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        app.add_exception_handler(error_type, database_unavailable)


def serve(factory: str, host: str, port: int, workers: int = 1) -> None:
    """Run the app that ``factory`` ("module:function") builds, until SIGTERM or Ctrl-C.

    With several workers, each is a process of its own sharing the port: a full instance
    with its own pool, relay and consumers. Logging stays as ``configure_logging`` set it.
    A process whose consumer stopped for good ends with the watchdog's exit code after its
    graceful shutdown (shared/watchdog.py); uvicorn's own workers, with several, are
    restarted by uvicorn.
    """
    # uvicorn puts back the handler it found once it has shut down, and raises the
    # SIGTERM again for it.
    signal.signal(signal.SIGTERM, exit_after_sigterm)
    uvicorn.run(
        factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        # Its line carries the raw path and query (survey tokens) and no complaint or
        # correlation id: ``AccessLog`` writes one instead.
        access_log=False,
        timeout_graceful_shutdown=10,
    )


class BodySizeLimit:
    """Answers 413 to any request body over ``max_bytes``, declared or streamed, unread."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self._app = app
        self._max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_bytes:
            await self._too_large(send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._max_bytes:
                    raise _BodyTooLargeError
            return message

        try:
            await self._app(scope, limited_receive, send)
        except _BodyTooLargeError:
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        response = JSONResponse(
            status_code=status.HTTP_413_CONTENT_TOO_LARGE,
            content={"detail": f"request body over {self._max_bytes} bytes"},
        )
        await response({"type": "http"}, _no_receive, send)


class _BodyTooLargeError(Exception):
    pass


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


# Bounds on what a caller's header or path puts into a log line.
_LOGGED_ID_CHARS = 100


class AccessLog:
    """One line per request, in place of uvicorn's: the route's template, never the path
    or query as sent (a survey link carries its token), the status and the time taken;
    for a request about a complaint its number and correlation id (the caller's
    ``X-Correlation-Id`` unless the code serving it noted the complaint's own:
    ``shared.logging.note_for_access_log``). ``quiet`` paths,
    the probes and scrapes, are not logged."""

    def __init__(self, app: ASGIApp, quiet: Collection[str] = ()) -> None:
        self._app = app
        self._quiet = frozenset(quiet)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._quiet:
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        answered = {"status": 500}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered["status"] = message["status"]
            await send(message)

        with request_notes() as noted:
            try:
                await self._app(scope, receive, sending)
            finally:
                log.info(
                    "request",
                    method=scope["method"],
                    route=getattr(scope.get("route"), "path", None),
                    status=answered["status"],
                    duration_ms=round((time.perf_counter() - started) * 1000, 1),
                    **(_about(scope) | noted),
                )


def _about(scope: Scope) -> dict[str, str]:
    about = {}
    complaint_no = (scope.get("path_params") or {}).get("complaint_no")
    if isinstance(complaint_no, str):
        about["complaint_no"] = complaint_no[:_LOGGED_ID_CHARS]
    correlation_id = Headers(scope=scope).get("x-correlation-id")
    if correlation_id:
        about["correlation_id"] = correlation_id[:_LOGGED_ID_CHARS]
    return about
