"""Reporting's composition root: projections fed from every topic, the reports, the
dashboard at ``/`` and its live stream, the case files and their audit trail. Every
``/v1`` endpoint asks who is calling (shared/auth/http.py) and shows them only their
scope (services/reporting/access.py)."""

# No ``from __future__ import annotations``: the routes' annotations name this app's own
# authenticator, which FastAPI must see as an object, not as a name to look up.

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo

import asyncpg
import structlog
from asyncpg import Record
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, status
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, PlainTextResponse, Response
from pydantic import AwareDatetime
from sse_starlette import EventSourceResponse, ServerSentEvent

from services.reporting import audit, queries, reports, rollups
from services.reporting.access import audited_branches, case_scope
from services.reporting.api import (
    CaseFile,
    ComplaintRateRow,
    DailyReport,
    Dashboard,
    LateCase,
    MonthlyReport,
    RecordReads,
    ResponseTimes,
    SatisfactionReport,
    SlaReport,
    Summary,
    WeeklyReport,
)
from services.reporting.csv_export import monthly_csv, rows_of, to_csv
from services.reporting.projections import CHANGED_CHANNEL, SWAP_LOCK, apply_events
from services.reporting.reports import Filters
from services.reporting.settings import ReportingSettings
from shared.auth.access import (
    Caller,
    NarrowingNeededError,
    OutOfScopeError,
    StaffCaller,
    can_read_audit,
    can_read_record,
    can_read_reports,
    can_see,
    reader_roles,
    report_scope,
)
from shared.auth.http import Authenticator, document_auth_refusals, forbidden, header_text
from shared.consumer import subscribe_events
from shared.consumer_app import PoolHolder, new_broker
from shared.contracts import Event
from shared.db import DbConnection
from shared.http import AccessLog, answer_503_when_database_down
from shared.logging import configure_logging
from shared.metrics import ServiceMetrics
from shared.ops import OPS_PATHS, OpsEndpoints
from shared.policy import LivePacks
from shared.runtime import consuming, service_database, watching
from shared.topics import Topics
from shared.tracing import FASTAPI_TELEMETRY, TraceRequests, configure_tracing

SCHEMA = "reporting"
MIGRATIONS = Path(__file__).parent / "migrations"
STATIC = Path(__file__).parent / "static"
PUBLISHES: tuple[str, ...] = ()
SUBSCRIBES_TO = ("intake", "routing", "sla", "notify", "record-reads")
# Live dashboards are sent at most this often, however fast events arrive.
STREAM_INTERVAL_SECONDS = 1.0
STREAM_KEEPALIVE_SECONDS = 15.0
# Cases per page of the monthly report's JSON: a whole company's month is tens of
# thousands, more than a screen or a quick answer wants.
MONTHLY_PAGE = 1000
MONTHLY_PAGE_MAX = 10000
AUDIT_PAGE = 100
AUDIT_PAGE_MAX = 1000
COMPLAINT_NO = re.compile(r"\d{9,}")
EARLIEST_AS_OF = datetime.min.replace(tzinfo=UTC) + timedelta(days=7)
# PostgreSQL's text holds no NUL: a value with one is refused as invalid, not a 500.
TEXT = r"^[^\x00]*$"
PROBLEM = {
    "application/json": {
        "schema": {
            "type": "object",
            "properties": {"detail": {"type": "string"}},
            "required": ["detail"],
        }
    }
}

log = structlog.get_logger("reporting")

Format = Literal["json", "csv"]
T = TypeVar("T")


class Changes:
    """Wakes every live dashboard when a projection transaction commits (LISTEN)."""

    def __init__(self) -> None:
        self._version = 0
        self._changed = asyncio.Condition()

    def notify(self, *_: object) -> None:
        self._version += 1
        asyncio.get_running_loop().create_task(self._wake())

    async def _wake(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    @property
    def version(self) -> int:
        return self._version

    async def after(self, version: int, at_most: float) -> int:
        """The version once it differs from ``version``, or after ``at_most`` seconds."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self._version != version), at_most
                )
        return self._version


def filters(
    request: Request,
    branch_id: Annotated[str | None, Query(max_length=100, pattern=TEXT)] = None,
    pack: Annotated[str | None, Query(max_length=100, pattern=TEXT)] = None,
    department: Annotated[str | None, Query(max_length=100, pattern=TEXT)] = None,
    date_from: Annotated[date | None, Query(description="First received day.")] = None,
    date_to: Annotated[date | None, Query(description="Last received day.")] = None,
) -> Filters:
    return Filters(
        branch_id=branch_id,
        pack=pack,
        department=department,
        date_from=date_from,
        date_to=date_to,
        timezone=request.app.state.report_timezone,
    )


FormatQuery = Annotated[Format, Query(description="json (default) or csv.")]


def build_app(settings: ReportingSettings) -> FastAPI:
    configure_logging("reporting", settings.log_level)
    configure_tracing("reporting")
    # At build time: missing credentials stop start-up rather than leave the API open.
    authenticator = Authenticator.from_settings(settings)
    Authenticated = Annotated[Caller, Depends(authenticator)]  # noqa: N806 (a type alias)

    async def scoped(
        caller: Authenticated, wanted: Annotated[Filters, Depends(filters)]
    ) -> Filters:
        return _within_scope(caller, wanted)

    async def auditor(caller: Authenticated) -> StaffCaller:
        if not can_read_audit(caller):
            raise forbidden("the audit trail of record reads is for auditors")
        assert isinstance(caller, StaffCaller)  # can_read_audit admits staff only
        return caller

    Scope = Annotated[Filters, Depends(scoped)]  # noqa: N806 (a type alias)
    Auditor = Annotated[StaffCaller, Depends(auditor)]  # noqa: N806 (a type alias)
    topics = Topics.in_namespace(settings.complaints_topic_namespace)
    packs = LivePacks(settings.policy_packs_dir)
    holder = PoolHolder()
    metrics = ServiceMetrics("reporting")
    broker = new_broker(settings, "reporting", metrics)
    changes = Changes()

    async def project_many(events: list[Event]) -> None:
        async with holder.transaction() as conn:
            # A rebuild swapping schemas takes this exclusively: wait for it, not write
            # into tables about to be dropped.
            await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", SWAP_LOCK)
            projected = await apply_events(conn, events)
        log.debug("events projected", events=len(events), projected=projected)

    async def project(event: Event) -> None:
        await project_many([event])

    subscribe_events(
        broker,
        [topics.by_role(role) for role in SUBSCRIBES_TO],
        group_id="reporting",
        handle=project,
        handle_many=project_many,
        pool=lambda: holder.pool,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            service_database(settings, SCHEMA, MIGRATIONS, with_relay=False) as pool,
            watching(packs),
        ):
            holder.attach(pool)
            app.state.pool = pool
            async with pool.acquire() as conn:
                await rollups.use_zone(conn, settings.report_timezone)
            listener = await pool.acquire()
            await listener.add_listener(CHANGED_CHANNEL, changes.notify)
            try:
                async with consuming(broker):
                    yield
            finally:
                with contextlib.suppress(Exception):
                    await listener.remove_listener(CHANGED_CHANNEL, changes.notify)
                await pool.release(listener)

    app = FastAPI(
        title="Complaint reporting",
        version="1",
        description="Case files, statistics and the seeds' daily, weekly and monthly reports, "
        "projected from the platform's events. Every report takes the filters branch_id, "
        "pack, department, date_from and date_to (received days, REPORT_TIMEZONE) and "
        "format=csv, within the caller's scope. Every operation needs a branch API key "
        "(X-Api-Key) or a staff token (Bearer); a case file also a reason (X-Access-Reason), "
        "and every read of one is audited (GET /v1/audit/record-reads).",
        lifespan=lifespan,
        telemetry=FASTAPI_TELEMETRY,
    )
    # Inside the request's span, so that its line carries the trace id.
    app.add_middleware(AccessLog, quiet=OPS_PATHS)
    app.add_middleware(TraceRequests, untraced=OPS_PATHS)
    answer_503_when_database_down(app, "The reporting database is unavailable. Retry shortly.")
    OpsEndpoints(metrics, broker, lambda: holder.attached, outbox=False).add_to(app)
    app.state.report_timezone = settings.report_timezone

    async def read(request: Request, query: Callable[[DbConnection], Awaitable[T]]) -> T:
        pool: asyncpg.Pool = request.app.state.pool
        async with pool.acquire() as conn:
            return await query(conn)

    def answer(report: Any, fmt: Format, name: str) -> Any:
        return report if fmt == "json" else csv_file(to_csv(rows_of(report)), name)

    def csv_file(text: str, name: str) -> PlainTextResponse:
        return PlainTextResponse(
            text,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )

    def today() -> date:
        return datetime.now(ZoneInfo(settings.report_timezone)).date()

    out_of_scope: dict[int | str, dict[str, Any]] = {
        404: {
            "description": "A branch or department outside the caller's scope.",
            "content": PROBLEM,
        }
    }
    csv_responses: dict[int | str, dict[str, Any]] = {
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
        **out_of_scope,
    }

    @app.get("/v1/reports/summary", response_model=Summary, responses=csv_responses)
    async def get_summary(
        request: Request,
        scope: Scope,
        as_of: Annotated[
            datetime | None, Query(description="The counts as they stood at this moment.")
        ] = None,
        format: FormatQuery = "json",
    ) -> Any:
        moment = None if as_of is None else _as_of(as_of)
        report = await read(request, lambda conn: reports.summary(conn, scope, moment))
        return answer(report, format, "summary")

    @app.get("/v1/reports/sla", response_model=SlaReport, responses=csv_responses)
    async def get_sla(request: Request, scope: Scope, format: FormatQuery = "json") -> Any:
        """On-time rate per clock, breaches, escalations by level."""
        return answer(await read(request, lambda c: reports.sla(c, scope)), format, "sla")

    @app.get("/v1/reports/response-times", response_model=ResponseTimes, responses=csv_responses)
    async def get_response_times(
        request: Request, scope: Scope, format: FormatQuery = "json"
    ) -> Any:
        """Assignment to first contact with the customer; time to close by category."""
        # Each measure on a connection of its own, at the same time, as the dashboard.
        first_contact, to_close = await asyncio.gather(
            read(request, lambda c: reports.first_contact_times(c, scope)),
            read(request, lambda c: reports.close_times(c, scope)),
        )
        report = ResponseTimes(first_contact=first_contact, to_close_by_category=to_close)
        return answer(report, format, "response-times")

    @app.get("/v1/reports/satisfaction", response_model=SatisfactionReport, responses=csv_responses)
    async def get_satisfaction(request: Request, scope: Scope, format: FormatQuery = "json") -> Any:
        """Scores by branch, department and person; reopen, not-upheld, return visits."""
        report = await read(request, lambda c: reports.satisfaction(c, scope))
        return answer(report, format, "satisfaction")

    @app.get(
        "/v1/reports/complaint-rate",
        response_model=list[ComplaintRateRow],
        responses=csv_responses,
    )
    async def get_complaint_rate(
        request: Request, scope: Scope, format: FormatQuery = "json"
    ) -> Any:
        """Complaints ÷ services delivered (branches post volumes to intake), per branch."""
        targets = {
            branch.id: pack.complaint_rate_target
            for pack in packs.current.packs.values()
            if pack.complaint_rate_target is not None
            for branch in pack.branches
        }
        report = await read(request, lambda c: reports.complaint_rate(c, scope, targets))
        return answer(report, format, "complaint-rate")

    @app.get("/v1/reports/daily", response_model=DailyReport, responses=csv_responses)
    async def get_daily(
        request: Request,
        scope: Scope,
        day: Annotated[date | None, Query(description="Default: today.")] = None,
        format: FormatQuery = "json",
    ) -> Any:
        """The daily classification report: the day's complaints by category."""
        chosen = day or today()
        report = await read(request, lambda c: reports.daily(c, scope, chosen))
        return answer(report, format, f"daily-{chosen}")

    @app.get("/v1/reports/weekly", response_model=WeeklyReport, responses=csv_responses)
    async def get_weekly(
        request: Request,
        scope: Scope,
        week_start: Annotated[
            date | None, Query(description="A Monday; default: this week's.")
        ] = None,
        format: FormatQuery = "json",
    ) -> Any:
        """The weekly department summary and the categories rising week over week."""
        start = week_start or today() - timedelta(days=today().weekday())
        report = await read(request, lambda c: reports.weekly(c, scope, start))
        return answer(report, format, f"weekly-{start}")

    @app.get("/v1/reports/monthly", response_model=MonthlyReport, responses=csv_responses)
    async def get_monthly(
        request: Request,
        scope: Scope,
        month: Annotated[
            str | None, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM; default: last month.")
        ] = None,
        limit: Annotated[
            int, Query(ge=1, le=MONTHLY_PAGE_MAX, description="Cases listed (JSON; CSV: all).")
        ] = MONTHLY_PAGE,
        after: Annotated[
            str | None, Query(description="The previous page's next_after: the cases after it.")
        ] = None,
        format: FormatQuery = "json",
    ) -> Any:
        """客诉案件统计表: last month's closed cases, responsibility, loss and compensation.
        The totals are the month's; the cases come a page at a time (``next_after``), and
        all of them in the CSV file."""
        try:
            first = (
                date.fromisoformat(f"{month}-01")
                if month
                else (today().replace(day=1) - timedelta(days=1)).replace(day=1)
            )
        except ValueError:
            raise _query_error("month", month, f"month {month!r} is not a month") from None
        name = f"monthly-{first:%Y-%m}"
        page = reports.MonthlyPage(after=None if after is None else _monthly_after(after))
        if format == "csv":
            report, cases = await read(
                request, lambda c: reports.monthly_records(c, scope, first, page)
            )
            return csv_file(monthly_csv(report, cases), name)
        page = replace(page, limit=limit)
        return await read(request, lambda c: reports.monthly(c, scope, first, page))

    @app.get("/v1/reports/late-cases", response_model=list[LateCase], responses=csv_responses)
    async def get_late_cases(
        request: Request,
        scope: Scope,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        format: FormatQuery = "json",
    ) -> Any:
        """Open cases past a deadline, the longest overdue first."""
        report = await read(request, lambda c: reports.late_cases(c, scope, limit))
        return answer(report, format, "late-cases")

    async def dashboard(request: Request, scope: Filters) -> Dashboard:
        # Each report on a connection of its own, at the same time: the dashboard then
        # takes as long as its slowest report, not their sum (each reads in a transaction
        # of its own either way).
        summary, sla, satisfaction, late_cases = await asyncio.gather(
            read(request, lambda c: reports.summary(c, scope)),
            read(request, lambda c: reports.sla(c, scope)),
            read(request, lambda c: reports.satisfaction(c, scope)),
            read(request, lambda c: reports.late_cases(c, scope, 20)),
        )
        return Dashboard(
            generated_at=datetime.now(UTC),
            summary=summary,
            sla=sla,
            satisfaction=satisfaction,
            late_cases=late_cases,
        )

    @app.get("/v1/reports/dashboard", response_model=Dashboard, responses=out_of_scope)
    async def get_dashboard(request: Request, scope: Scope) -> Dashboard:
        """Everything the dashboard shows, in one read."""
        return await dashboard(request, scope)

    @app.get("/v1/stream", response_class=EventSourceResponse, responses=out_of_scope)
    async def stream(request: Request, scope: Scope) -> EventSourceResponse:
        """Server-sent events: ``dashboard`` with the Dashboard JSON, on connect and after
        each change to the projections (at most once a second)."""

        async def events() -> AsyncIterator[ServerSentEvent]:
            seen = -1
            while True:
                if seen != changes.version:
                    seen = changes.version
                    current = await dashboard(request, scope)
                    yield ServerSentEvent(data=current.model_dump_json(), event="dashboard")
                    await asyncio.sleep(STREAM_INTERVAL_SECONDS)
                await changes.after(seen, STREAM_KEEPALIVE_SECONDS)

        return EventSourceResponse(events(), ping=int(STREAM_KEEPALIVE_SECONDS))

    @app.get("/", include_in_schema=False)
    async def dashboard_page() -> Response:
        return FileResponse(STATIC / "dashboard.html", media_type="text/html; charset=utf-8")

    @app.get(
        "/v1/cases/{complaint_no}",
        response_model=CaseFile,
        responses={
            403: {
                "description": "The customer record is beyond the caller's clearance.",
                "content": PROBLEM,
            },
            404: {
                "description": "No such complaint (yet), or none the caller may see.",
                "content": PROBLEM,
            },
        },
    )
    async def get_case(
        request: Request,
        complaint_no: Annotated[str, PathParam(pattern=f"^{COMPLAINT_NO.pattern}$")],
        caller: Authenticated,
        reason: Annotated[
            str,
            Header(
                alias="X-Access-Reason",
                min_length=1,
                max_length=500,
                pattern=TEXT,
                description="Why the customer's record is read: it goes on the audit trail.",
            ),
        ],
    ) -> CaseFile:
        """A customer's record (seed 004): every read, and every refusal of an existing
        complaint, is on the audit trail before the answer leaves."""
        pool: asyncpg.Pool = request.app.state.pool
        async with pool.acquire() as conn:
            case = await open_case(conn, caller, complaint_no, header_text(reason))
            return await queries.case_file(conn, case)

    async def open_case(
        conn: DbConnection, caller: Caller, complaint_no: str, reason: str
    ) -> Record:
        """The case's row if ``caller`` may read its record; the read or the refusal
        audited and committed either way (a complaint that does not exist has no trail)."""
        async with conn.transaction():
            # A rebuild carries the trail over to its fresh schema holding this lock
            # exclusively: no entry may land in the old schema after it has.
            await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", SWAP_LOCK)
            case = await queries.case_row(conn, complaint_no)
            if case is None:
                raise _no_complaint(complaint_no)
            scope = case_scope(case, packs.current)
            readable = can_read_record(caller, scope)
            entry = _read_entry(caller, case, reason, "read" if readable else "refused")
            await audit.record(conn, [entry])
        if readable:
            return case
        if can_see(caller, scope):
            raise forbidden(
                f"complaint {complaint_no}'s customer record is {scope.confidentiality} "
                "confidential: your roles do not clear you to read it"
            )
        raise _no_complaint(complaint_no)

    @app.get("/v1/audit/record-reads", response_model=RecordReads)
    async def get_record_reads(
        request: Request,
        caller: Auditor,
        complaint_no: Annotated[
            str | None, Query(pattern=f"^{COMPLAINT_NO.pattern}$", description="One complaint's.")
        ] = None,
        reader: Annotated[
            str | None,
            Query(
                max_length=200,
                pattern=TEXT,
                description="One reader's: 'staff:<id>' or 'branch:<id>'.",
            ),
        ] = None,
        since: Annotated[AwareDatetime | None, Query(description="Read at or after.")] = None,
        until: Annotated[AwareDatetime | None, Query(description="Read before.")] = None,
        limit: Annotated[int, Query(ge=1, le=AUDIT_PAGE_MAX)] = AUDIT_PAGE,
        after: Annotated[
            str | None, Query(description="The previous page's next_after: the reads after it.")
        ] = None,
    ) -> RecordReads:
        """The audit trail of customer-record reads and refusals, intake's and reporting's,
        newest first: the auditor's branches only, a page at a time (``next_after``)."""
        query = audit.ReadsQuery(
            limit=limit,
            branches=audited_branches(caller),
            complaint_no=complaint_no,
            reader=reader,
            since=None if since is None else _instant("since", since),
            until=None if until is None else _instant("until", until),
            after=None if after is None else _audit_after(after),
        )
        return await read(request, lambda c: audit.record_reads(c, query))

    document_auth_refusals(app)
    return app


def create_app() -> FastAPI:
    return build_app(ReportingSettings())


def _within_scope(caller: Caller, wanted: Filters) -> Filters:
    """The filters a report runs with for ``caller``, who must be allowed reports."""
    if not can_read_reports(caller):
        raise forbidden("reports are for supervisors, managers, auditors and branch systems")
    try:
        branch_id, department = report_scope(caller, wanted.branch_id, wanted.department)
    except OutOfScopeError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except NarrowingNeededError as exc:
        raise _query_error(exc.parameter, None, str(exc)) from None
    return replace(wanted, branch_id=branch_id, department=department)


def _no_complaint(complaint_no: str) -> HTTPException:
    """The same answer whether the complaint does not exist or is out of the caller's
    scope, so that numbers cannot be probed."""
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no complaint {complaint_no}")


def _read_entry(
    caller: Caller, case: Record, reason: str, outcome: audit.Outcome
) -> audit.ReadEntry:
    return audit.ReadEntry(
        event_id=uuid.uuid4(),
        read_at=datetime.now(UTC),
        service="reporting",
        reader=caller.name,
        reader_roles=reader_roles(caller),
        reason=reason,
        outcome=outcome,
        # Reporting keeps contacts masked (projections.timeline_details): never in clear.
        contacts_shown=False,
        complaint_no=case["complaint_no"],
        branch_id=case["branch_id"],
    )


def _query_error(name: str, value: str | None, message: str) -> RequestValidationError:
    """A query parameter refused, shaped as FastAPI's own 422s, which the schema promises."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", name), "msg": message, "input": value}]
    )


def _monthly_after(value: str) -> tuple[datetime, str]:
    """A monthly report's ``next_after``: the last case listed, ``closed_at|number``."""
    closed_at, _, complaint_no = value.partition("|")
    try:
        moment: datetime | None = datetime.fromisoformat(closed_at)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or not COMPLAINT_NO.fullmatch(complaint_no):
        raise _query_error("after", value, f"after {value!r} is not a next_after value")
    return _instant("after", moment), complaint_no


def _audit_after(value: str) -> tuple[datetime, uuid.UUID]:
    """An audit page's ``next_after``: the last read listed, ``read_at|event_id``."""
    read_at, _, event_id = value.partition("|")
    try:
        moment = datetime.fromisoformat(read_at)
        listed = uuid.UUID(event_id)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise _query_error("after", value, f"after {value!r} is not a next_after value")
    return _instant("after", moment), listed


def _as_of(moment: datetime) -> datetime:
    """An as-of summary's moment: its backlog's ages count back a week from it, which the
    first week of year 1 cannot."""
    instant = _instant("as_of", moment)
    if instant < EARLIEST_AS_OF:
        raise _query_error("as_of", moment.isoformat(), f"as_of must be after {EARLIEST_AS_OF}")
    return instant


def _instant(name: str, moment: datetime) -> datetime:
    """``moment`` in UTC, as the database takes it; a time whose UTC falls outside the
    years 1 to 9999 (9999-12-31T23:00-05:00) is refused like any other bad value."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise _query_error(name, moment.isoformat(), f"{name} is out of range") from None
