"""Reporting's composition root: projections fed from every topic, and the read API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import asyncpg
import structlog
from fastapi import FastAPI, HTTPException, Query, Request, status
from fastapi import Path as PathParam

from services.reporting import queries
from services.reporting.api import CaseFile, Summary
from services.reporting.projections import apply_event
from services.reporting.settings import ReportingSettings
from shared.consumer import subscribe_events
from shared.consumer_app import PoolHolder, new_broker
from shared.contracts import Event
from shared.http import answer_503_when_database_down
from shared.logging import configure_logging
from shared.runtime import consuming, service_database
from shared.topics import Topics

SCHEMA = "reporting"
MIGRATIONS = Path(__file__).parent / "migrations"
PUBLISHES: tuple[str, ...] = ()
SUBSCRIBES_TO = ("intake", "routing", "sla", "notify")

log = structlog.get_logger("reporting")


def build_app(settings: ReportingSettings) -> FastAPI:
    configure_logging("reporting", settings.log_level)
    topics = Topics.in_namespace(settings.complaints_topic_namespace)
    holder = PoolHolder()
    broker = new_broker(settings, "reporting")

    async def project(event: Event) -> None:
        async with holder.pool.acquire() as conn, conn.transaction():
            projected = await apply_event(conn, event)
        if projected:
            log.debug("event projected")

    subscribe_events(
        broker,
        [topics.by_role(role) for role in SUBSCRIBES_TO],
        group_id="reporting",
        handle=project,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_database(settings, SCHEMA, MIGRATIONS, with_relay=False) as pool:
            holder.attach(pool)
            app.state.pool = pool
            async with consuming(broker):
                yield

    app = FastAPI(
        title="Complaint reporting",
        version="1",
        description="Case files and statistics, projected from the platform's events.",
        lifespan=lifespan,
    )
    answer_503_when_database_down(app, "The reporting database is unavailable. Retry shortly.")

    @app.get("/v1/reports/summary", response_model=Summary)
    async def get_summary(
        request: Request,
        branch_id: Annotated[str | None, Query(max_length=100)] = None,
    ) -> Summary:
        pool: asyncpg.Pool = request.app.state.pool
        async with pool.acquire() as conn:
            return await queries.summary(conn, branch_id)

    @app.get(
        "/v1/cases/{complaint_no}",
        response_model=CaseFile,
        responses={404: {"description": "No such complaint (yet)."}},
    )
    async def get_case(
        request: Request,
        complaint_no: Annotated[str, PathParam(pattern=r"^\d{9,}$")],
    ) -> CaseFile:
        pool: asyncpg.Pool = request.app.state.pool
        async with pool.acquire() as conn:
            case = await queries.case_file(conn, complaint_no)
        if case is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no complaint {complaint_no}")
        return case

    return app


def create_app() -> FastAPI:
    return build_app(ReportingSettings())
