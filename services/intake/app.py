"""Intake's composition root: the HTTP API, its database and its outbox relay."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import asyncpg
import structlog
from fastapi import FastAPI, Header, HTTPException, Request, status

from services.intake import store
from services.intake.api import ComplaintAccepted, Problem, SubmitComplaint
from services.intake.numbering import complaint_number, receipt_date
from services.intake.settings import IntakeSettings
from shared.contracts import ComplaintReceived
from shared.http import answer_503_when_database_down
from shared.logging import configure_logging
from shared.outbox import enqueue
from shared.policy import PackRegistry, load_packs
from shared.runtime import service_database
from shared.topics import INTAKE, Topic

SCHEMA = "intake"
MIGRATIONS = Path(__file__).parent / "migrations"
PUBLISHES_TO = INTAKE
SUBSCRIBES_TO: tuple[Topic, ...] = ()

log = structlog.get_logger("intake")


def _unprocessable(field: str, message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        detail=[{"loc": ["body", field], "msg": message, "type": "value_error"}],
    )


def build_app(settings: IntakeSettings) -> FastAPI:
    configure_logging("intake", settings.log_level)
    packs: PackRegistry = load_packs(settings.policy_packs_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_database(settings, SCHEMA, MIGRATIONS, with_relay=True) as pool:
            app.state.pool = pool
            yield

    app = FastAPI(
        title="Complaint intake",
        version="1",
        description="Branches submit complaints here; each gets a number and a case.",
        lifespan=lifespan,
    )

    answer_503_when_database_down(
        app, "The complaint database is unavailable; nothing was recorded. Retry shortly."
    )

    @app.post(
        "/v1/complaints",
        status_code=status.HTTP_201_CREATED,
        response_model=ComplaintAccepted,
        responses={503: {"model": Problem, "description": "Database unavailable; retry."}},
    )
    async def submit_complaint(
        submission: SubmitComplaint,
        request: Request,
        x_correlation_id: Annotated[str | None, Header(max_length=100)] = None,
    ) -> ComplaintAccepted:
        found = packs.for_branch(submission.branch_id)
        if found is None:
            raise _unprocessable(
                "branch_id",
                f"unknown branch {submission.branch_id!r}; known branches: "
                + ", ".join(packs.branch_ids()),
            )
        pack, branch = found
        if pack.category(submission.category) is None:
            raise _unprocessable(
                "category",
                f"category {submission.category!r} is not defined for branch {branch.id}; "
                "allowed: " + ", ".join(c.code for c in pack.categories),
            )
        received_at = datetime.now(UTC)
        day = receipt_date(received_at, branch.timezone)
        correlation_id = x_correlation_id or str(uuid.uuid4())
        pool: asyncpg.Pool = request.app.state.pool
        async with pool.acquire() as conn, conn.transaction():
            ordinal = await store.next_ordinal(conn, day.year)
            event = ComplaintReceived(
                complaint_no=complaint_number(day, ordinal),
                branch_id=branch.id,
                correlation_id=correlation_id,
                producer="intake",
                received_at=received_at,
                pack=pack.pack,
                pack_version=pack.version,
                channel=submission.channel,
                customer=submission.customer,
                description=submission.description,
                customer_request=submission.customer_request,
                category=submission.category,
                severity=submission.severity,
                region=submission.region,
                first_contact_staff=submission.first_contact_staff,
            )
            await store.insert_complaint(conn, event, year=day.year, ordinal=ordinal)
            await enqueue(conn, PUBLISHES_TO.name, event)
        log.info(
            "complaint received",
            complaint_no=event.complaint_no,
            correlation_id=correlation_id,
            branch_id=branch.id,
            category=event.category,
        )
        return ComplaintAccepted(
            complaint_no=event.complaint_no,
            status="received",
            received_at=received_at,
            correlation_id=correlation_id,
        )

    return app
