"""The ops endpoints every service answers, unauthenticated, for its orchestrator and
Prometheus: ``/health`` (liveness), ``/ready`` (readiness) and ``/metrics``.

Intake and reporting serve them on their API port (``OpsEndpoints.add_to``); routing, sla
and notify, which have no HTTP API, on a small server of their own beside their consumers,
in the same event loop (``OpsServer``, on ``OPS_HOST``:``OPS_PORT``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import structlog
import uvicorn
from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.metrics import PoolGetter, ServiceMetrics
from shared.watchdog import restart_requested

log = structlog.get_logger(__name__)

OPS_PATHS = ("/health", "/ready", "/metrics")
# Each check of /ready; they run together, so it answers within this.
CHECK_TIMEOUT_S = 1.5


def readiness(checks: dict[str, str]) -> tuple[int, dict[str, str]]:
    """/ready's status and body from each dependency's check ("ok" or what is wrong)."""
    ready = all(outcome == "ok" for outcome in checks.values())
    return (200 if ready else 503), {"status": "ready" if ready else "unavailable", **checks}


async def _checked(check: Callable[[], Awaitable[str]]) -> str:
    try:
        return await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S} s"
    except Exception as exc:
        return f"down: {type(exc).__name__}"


class OpsEndpoints:
    def __init__(
        self, metrics: ServiceMetrics, broker: KafkaBroker, pool: PoolGetter, *, outbox: bool
    ) -> None:
        self._metrics = metrics
        self._broker = broker
        self._pool = pool
        metrics.watch_consumers(lambda: broker.subscribers)
        if outbox:
            metrics.watch_outbox(pool)

    async def health(self, _request: Request) -> Response:
        # After the watchdog asked for a restart the process is on its way out; an
        # orchestrator that sees it first restarts it all the same.
        if restart_requested():
            return JSONResponse({"status": "restarting"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def ready(self, request: Request) -> Response:
        """Every dependency, or those ``?checks=database,kafka`` names: intake keeps
        accepting complaints into its outbox while Kafka is away, and reporting keeps
        serving its projections, so their orchestrator probes ``?checks=database``."""
        known = {"database": self._database, "kafka": self._kafka}
        asked = request.query_params.get("checks")
        names = list(known) if asked is None else [name.strip() for name in asked.split(",")]
        unknown = sorted({name for name in names if name not in known})
        if unknown:
            return JSONResponse(
                {"error": f"unknown checks {unknown}; known: {', '.join(known)}"},
                status_code=400,
            )
        outcomes = await asyncio.gather(*(_checked(known[name]) for name in names))
        status, body = readiness(dict(zip(names, outcomes, strict=True)))
        return JSONResponse(body, status_code=status)

    async def metrics(self, _request: Request) -> Response:
        return Response(await self._metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    async def _database(self) -> str:
        pool = self._pool()
        if pool is None:
            return "not connected yet"
        await pool.fetchval("SELECT 1")
        return "ok"

    async def _kafka(self) -> str:
        # A cluster description through the broker's own admin client.
        return "ok" if await self._broker.ping(CHECK_TIMEOUT_S) else "unreachable"

    def _routes(self) -> Iterator[tuple[str, Callable[[Request], Awaitable[Response]]]]:
        yield from zip(OPS_PATHS, (self.health, self.ready, self.metrics), strict=True)

    def add_to(self, app: FastAPI) -> None:
        """On an API's app: outside its OpenAPI schema, and without its credentials (those
        are each operation's dependency)."""
        for path, endpoint in self._routes():
            app.add_api_route(path, endpoint, methods=["GET"], include_in_schema=False)

    def app(self) -> Starlette:
        return Starlette(routes=[Route(path, endpoint) for path, endpoint in self._routes()])


class _Embedded(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The service's runner (FastStream) owns SIGTERM and SIGINT.
        yield


class OpsServer:
    """``OpsEndpoints`` on a port of their own; port 0 takes a free one (``port`` tells
    which once serving)."""

    def __init__(self, endpoints: OpsEndpoints, host: str, port: int) -> None:
        self._endpoints = endpoints
        self._host = host
        self._requested_port = port
        self.port: int | None = None

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        # Bound here, so that a port in use fails the start-up with its OSError rather
        # than exit the process from inside uvicorn.
        sock = socket.create_server((self._host, self._requested_port))
        self.port = sock.getsockname()[1]
        server = _Embedded(
            uvicorn.Config(
                self._endpoints.app(),
                lifespan="off",
                log_config=None,
                access_log=False,
                timeout_graceful_shutdown=2,
            )
        )
        task = asyncio.create_task(server.serve(sockets=[sock]), name="ops-server")
        log.info("ops endpoints listening", host=self._host, port=self.port)
        try:
            yield
        finally:
            server.should_exit = True
            await task
            self.port = None
