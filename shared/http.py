"""HTTP behaviour every FastAPI service shares."""

from __future__ import annotations

import asyncpg
import structlog
import uvicorn
from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from shared.db import is_connection_error

log = structlog.get_logger(__name__)


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


def serve(app: FastAPI, host: str, port: int) -> None:
    """Run ``app`` until SIGTERM or Ctrl-C; logging stays as ``configure_logging`` set it."""
    uvicorn.run(app, host=host, port=port, log_config=None, timeout_graceful_shutdown=10)
