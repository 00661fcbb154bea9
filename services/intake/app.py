"""Intake: every branch's front door, complaint numbering and the case life cycle.

HTTP for branches and staff; the ``…submitted`` topic for branch systems that
prefer Kafka; routing's assignments move cases to ``assigned``. Every endpoint but the
customer's survey asks who is calling (shared/auth/http.py); services/intake/access.py
says what each caller may do.
"""

# No ``from __future__ import annotations``: the routes' annotations name this app's own
# authenticator, a local of ``build_app`` that FastAPI could not resolve from a string.

import inspect
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import structlog
from fastapi import Body, Depends, FastAPI, Header, HTTPException, Request, status
from fastapi import Path as PathParam
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.intake.access import (
    ForbiddenError,
    acting_as,
    as_staff,
    check_action,
    check_branch_manager,
    check_submitter,
    clearance_needed,
    sees_branch,
    without_contacts,
)
from services.intake.api import (
    SUBMISSION_EXAMPLE,
    Acknowledge,
    ActionApplied,
    ActionRefused,
    AddNote,
    AnswerOnSpot,
    BranchForm,
    CaseView,
    CategoryView,
    Close,
    CommunicateDecision,
    ComplaintAccepted,
    Escalate,
    Feedback,
    Hold,
    LabelView,
    MarkNotUpheld,
    Problem,
    Reassign,
    RecordCompensation,
    RecordDelivery,
    RecordProjectDelivery,
    RecordReturnVisit,
    Reopen,
    Resolve,
    Resume,
    ServiceVolume,
    ServiceVolumeIn,
    StartInvestigation,
    _Action,
)
from services.intake.branch_limits import BranchLimits
from services.intake.cases import (
    ActionResult,
    CaseNotFoundError,
    Intake,
    InvalidReferenceError,
    SubmissionConflictError,
    SubmissionRefusedError,
)
from services.intake.kafka_submissions import subscribe_submissions
from services.intake.lifecycle import Action, ActionNotAllowedError, CaseState, allowed_actions
from services.intake.settings import IntakeSettings
from shared.auth.access import Caller, CaseScope, can_see
from shared.auth.http import Authenticator, document_auth_refusals, header_text
from shared.consumer import subscribe_events
from shared.consumer_app import new_broker
from shared.contracts import ComplaintAssigned, Event
from shared.contracts.intake import CaseStatus
from shared.contracts.submissions import (
    Channel,
    CustomerType,
    Language,
    Region,
    Severity,
    SubmitComplaint,
)
from shared.http import (
    AccessLog,
    BodySizeLimit,
    answer_503_when_database_down,
    document_body_refusals,
)
from shared.logging import configure_logging, note_for_access_log
from shared.metrics import ServiceMetrics
from shared.ops import OPS_PATHS, OpsEndpoints
from shared.policy import LivePacks
from shared.runtime import consuming, service_database, watching
from shared.topics import Topics
from shared.tracing import FASTAPI_TELEMETRY, TraceRequests, configure_tracing

SCHEMA = "intake"
MIGRATIONS = Path(__file__).parent / "migrations"
PUBLISHES = ("intake", "submission-outcomes", "record-reads")
SUBSCRIBES_TO = ("submitted", "routing")
MAX_BODY_BYTES = 64 * 1024

log = structlog.get_logger("intake")

_SURVEY_PAGE = Environment(
    loader=FileSystemLoader(Path(__file__).parent), autoescape=select_autoescape(["j2"])
).get_template("survey.html.j2")
SURVEY_TEXT = {
    "zh": {
        "title": "满意度评价",
        "intro": "请为我们对您投诉的处理打分（5 分最满意）。投诉编号：",
        "quality": "处理结果",
        "attitude": "服务态度",
        "speed": "处理速度",
        "comment": "意见或建议（可选）",
        "submit": "提交",
        "thanks": "谢谢您的评价！",
        "failed": "提交未成功，请稍后再试或致电客服。",
    },
    "en": {
        "title": "How did we do?",
        "intro": "Please rate how we handled your complaint (5 is best). Complaint number:",
        "quality": "The outcome",
        "attitude": "Our attitude",
        "speed": "Our speed",
        "comment": "Comments (optional)",
        "submit": "Send",
        "thanks": "Thank you for your feedback!",
        "failed": "That did not go through; please try again later or call us.",
    },
}

ComplaintNo = Annotated[str, PathParam(pattern=r"^\d{9,}$", examples=["261122001"])]
CorrelationId = Annotated[str | None, Header(max_length=100)]
AccessReason = Annotated[
    str,
    Header(
        min_length=1,
        max_length=500,
        pattern=r"\S",
        description="Why you are reading this customer's record (recorded with the read); "
        "UTF-8, so any script.",
        examples=["calling the customer back about the repair"],
    ),
]
_ACCESS_REASON_ERROR = (
    "give the reason you are reading this customer's record in the X-Access-Reason header "
    "(1 to 500 characters): every read is recorded with it"
)
_KEYWORD = inspect.Parameter.KEYWORD_ONLY


class _Holder:
    intake: Intake | None = None

    def get(self) -> Intake:
        if self.intake is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "intake is starting")
        return self.intake


def build_app(settings: IntakeSettings) -> FastAPI:
    configure_logging("intake", settings.log_level)
    configure_tracing("intake")
    # At build time: missing credentials stop start-up rather than leave the API open.
    authenticator = Authenticator.from_settings(settings)
    Authenticated = Annotated[Caller, Depends(authenticator)]  # noqa: N806 (a type alias)
    packs = LivePacks(settings.policy_packs_dir)
    topics = Topics.in_namespace(settings.complaints_topic_namespace)
    holder = _Holder()
    branch_limits = BranchLimits(settings.intake_branch_submissions_per_minute)
    metrics = ServiceMetrics("intake")
    received = metrics.counter(
        "complaints_received_total",
        "Complaints accepted (over HTTP or Kafka), by branch; a replayed submission is not "
        "counted again.",
        "branch",
    )
    broker = new_broker(settings, "intake", metrics)
    subscribe_submissions(broker, topics.submitted, holder.get)

    async def on_routing_event(event: Event) -> None:
        if isinstance(event, ComplaintAssigned):
            await holder.get().record_assignment(event)

    subscribe_events(
        broker,
        [topics.routing],
        group_id="intake",
        handle=on_routing_event,
        pool=lambda: holder.get().pool,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            service_database(settings, SCHEMA, MIGRATIONS, with_relay=True) as pool,
            watching(packs),
        ):
            holder.intake = Intake(
                pool, packs, topics, settings.feedback_secret.get_secret_value(), received
            )
            async with consuming(broker):
                yield
            await holder.intake.close()
            holder.intake = None

    app = FastAPI(
        title="Complaint intake",
        version="1",
        description="Branches submit complaints here; staff and customers act on cases.",
        lifespan=lifespan,
        telemetry=FASTAPI_TELEMETRY,
    )
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    # Inside the request's span, so that its line carries the trace id.
    app.add_middleware(AccessLog, quiet=OPS_PATHS)
    app.add_middleware(TraceRequests, untraced=OPS_PATHS)
    answer_503_when_database_down(
        app, "The complaint database is unavailable; nothing was recorded. Retry shortly."
    )
    OpsEndpoints(
        metrics, broker, lambda: holder.intake.pool if holder.intake else None, outbox=True
    ).add_to(app)

    @app.exception_handler(SubmissionRefusedError)
    async def refused(_request: Request, exc: SubmissionRefusedError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": exc.errors})

    @app.exception_handler(SubmissionConflictError)
    async def conflict(_request: Request, exc: SubmissionConflictError) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": str(exc)})

    @app.exception_handler(CaseNotFoundError)
    async def not_found(_request: Request, exc: CaseNotFoundError) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": f"no complaint {exc}"})

    @app.exception_handler(InvalidReferenceError)
    async def invalid_reference(_request: Request, exc: InvalidReferenceError) -> JSONResponse:
        error = {"loc": ["body", exc.field], "msg": str(exc), "type": "value_error"}
        return JSONResponse(status_code=422, content={"detail": [error]})

    @app.exception_handler(ForbiddenError)
    async def forbidden(_request: Request, exc: ForbiddenError) -> JSONResponse:
        return JSONResponse(status_code=status.HTTP_403_FORBIDDEN, content={"detail": str(exc)})

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's answer, with a missing or unusable access reason explained.
        errors = [
            {**error, "msg": _ACCESS_REASON_ERROR}
            if tuple(error["loc"]) == ("header", "x-access-reason")
            else error
            for error in exc.errors()
        ]
        return await request_validation_exception_handler(
            request, RequestValidationError(errors, body=exc.body)
        )

    @app.exception_handler(ActionNotAllowedError)
    async def out_of_turn(_request: Request, exc: ActionNotAllowedError) -> JSONResponse:
        body = ActionRefused(detail=str(exc), status=exc.status, allowed_actions=exc.allowed)
        return JSONResponse(status_code=409, content=body.model_dump(mode="json"))

    @app.post(
        "/v1/complaints",
        status_code=status.HTTP_201_CREATED,
        response_model=ComplaintAccepted,
        responses={
            409: {"model": Problem, "description": "Idempotency key reused with another body."},
            413: {"model": Problem, "description": "Body over 64 KB."},
            429: {
                "model": Problem,
                "description": "The branch is over its submissions a minute; retry after "
                "`Retry-After` seconds.",
            },
            503: {"model": Problem, "description": "Database unavailable; retry."},
        },
    )
    async def submit_complaint(
        caller: Authenticated,
        submission: Annotated[SubmitComplaint, Body(examples=[SUBMISSION_EXAMPLE])],
        x_correlation_id: CorrelationId = None,
        idempotency_key: Annotated[str | None, Header(max_length=100)] = None,
    ) -> JSONResponse:
        """Record a complaint and give it its number.

        A branch's API key submits for that branch; a staff token for a branch it covers,
        with the agent, supervisor or manager role. Anything else is 403, nothing recorded.

        Send an `Idempotency-Key` (or `submission_id`) to make retries safe: the same key
        returns the same complaint (with `Idempotent-Replayed: true`), the same key with a
        different body is refused with 409. A branch that sends more than its share
        (`INTAKE_BRANCH_SUBMISSIONS_PER_MINUTE`) is answered 429 until it slows down.
        """
        # Before the rate limit: nobody may spend another branch's share.
        check_submitter(caller, submission.branch_id)
        known = packs.current.for_branch(submission.branch_id) is not None
        if known and not await branch_limits.admit(submission.branch_id):
            wait = branch_limits.retry_after_seconds
            return JSONResponse(
                status_code=status.HTTP_429_TOO_MANY_REQUESTS,
                content={
                    "detail": f"branch {submission.branch_id} is over its "
                    f"{branch_limits.per_minute} submissions a minute; nothing was "
                    f"recorded, retry in {wait} s"
                },
                headers={"Retry-After": str(wait)},
            )
        accepted = await holder.get().accept(
            submission,
            correlation_id=x_correlation_id or str(uuid.uuid4()),
            submission_key=idempotency_key or submission.submission_id,
        )
        note_for_access_log(
            complaint_no=accepted.complaint_no, correlation_id=accepted.correlation_id
        )
        body = ComplaintAccepted(
            complaint_no=accepted.complaint_no,
            status=CaseStatus.RECEIVED,
            received_at=accepted.received_at,
            correlation_id=accepted.correlation_id,
        )
        return JSONResponse(
            status_code=status.HTTP_201_CREATED,
            content=body.model_dump(mode="json"),
            headers={"Idempotent-Replayed": "true"} if accepted.duplicate else {},
        )

    @app.get(
        "/v1/branches/{branch_id}", response_model=BranchForm, responses={404: {"model": Problem}}
    )
    async def get_branch(
        caller: Authenticated, branch_id: Annotated[str, PathParam(max_length=100)]
    ) -> BranchForm:
        """The branch's pack and vocabularies, to build a complaint form from. A branch
        outside the caller's scope is answered like one that does not exist."""
        found = packs.current.for_branch(branch_id) if sees_branch(caller, branch_id) else None
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no branch {branch_id}")
        pack, branch = found
        return BranchForm(
            branch_id=branch.id,
            name=LabelView(zh=branch.name.zh, en=branch.name.en),
            timezone=branch.timezone,
            pack=pack.pack,
            pack_version=pack.version,
            categories=[
                CategoryView(code=c.code, label=LabelView(zh=c.label.zh, en=c.label.en))
                for c in pack.categories
            ],
            channels=list(Channel),
            customer_types=list(CustomerType),
            severities=list(Severity),
            regions=list(Region),
            languages=list(Language),
        )

    @app.get(
        "/v1/complaints/{complaint_no}",
        response_model=CaseView,
        responses={404: {"model": Problem, "description": "No such complaint, or not yours."}},
    )
    async def get_complaint(
        caller: Authenticated,
        complaint_no: ComplaintNo,
        x_access_reason: AccessReason,
        x_correlation_id: CorrelationId = None,
    ) -> CaseView:
        """The case with its customer's record: every read, and every refused one, is
        recorded (who, why, whether contacts were shown) before the answer is sent.

        A complaint outside your branches and departments is a 404 like one that does not
        exist; one whose confidentiality level you lack clearance for is a 403. Phone and
        e-mail are shown in clear only to the branch and to agents and supervisors; others
        see them masked.
        """
        correlation_id = x_correlation_id or str(uuid.uuid4())
        note_for_access_log(correlation_id=correlation_id)
        read = await holder.get().read_record(
            complaint_no, caller, reason=header_text(x_access_reason), correlation_id=correlation_id
        )
        if not read.decision.visible:
            raise CaseNotFoundError(complaint_no)
        if read.view is None:
            raise ForbiddenError(clearance_needed(read.scope.confidentiality))
        view = read.view if read.decision.contacts_shown else without_contacts(read.view)
        held_from = CaseStatus(view["held_from"]) if view["held_from"] else None
        state = CaseState(CaseStatus(view["status"]), held_from, view["round"])
        return CaseView.model_validate({**view, "allowed_actions": allowed_actions(state)})

    def _applied(result: ActionResult) -> ActionApplied:
        state = CaseState(result.status, result.held_from, result.round)
        return ActionApplied(
            complaint_no=result.complaint_no,
            status=result.status,
            round=result.round,
            sequence=result.sequence,
            events=result.events,
            allowed_actions=allowed_actions(state),
        )

    def staff_action(path: str, action: Action, model: type[_Action], summary: str) -> None:
        needs_supervisor = action is Action.REASSIGN

        async def endpoint(
            caller: Caller, complaint_no: str, body: _Action, x_correlation_id: str | None = None
        ) -> ActionApplied:
            staff = as_staff(caller)
            actor = acting_as(staff, body.actor)

            def authorize(scope: CaseScope) -> None:
                if not can_see(staff, scope):
                    raise CaseNotFoundError(complaint_no)
                check_action(staff, scope, needs_supervisor=needs_supervisor)

            fields: dict[str, Any] = body.model_dump(mode="json", exclude={"actor"})
            result = await holder.get().act(
                complaint_no,
                action,
                actor=actor,
                payload=fields,
                correlation_id=x_correlation_id,
                satisfied=fields.get("satisfied"),
                authorize=authorize,
            )
            return _applied(result)

        # FastAPI reads the body's type from the signature: give each route its own model.
        endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [
                inspect.Parameter("caller", _KEYWORD, annotation=Authenticated),
                inspect.Parameter("complaint_no", _KEYWORD, annotation=ComplaintNo),
                inspect.Parameter("body", _KEYWORD, annotation=model),
                inspect.Parameter(
                    "x_correlation_id", _KEYWORD, annotation=CorrelationId, default=None
                ),
            ],
            return_annotation=ActionApplied,
        )
        app.post(
            f"/v1/complaints/{{complaint_no}}/{path}",
            response_model=ActionApplied,
            summary=summary,
            responses={404: {"model": Problem}, 409: {"model": ActionRefused}},
        )(endpoint)

    _register: list[tuple[str, Action, type[_Action], str]] = [
        ("acknowledge", Action.ACKNOWLEDGE, Acknowledge, "Acknowledge receipt"),
        ("investigation", Action.START_INVESTIGATION, StartInvestigation, "Start investigating"),
        ("notes", Action.ADD_NOTE, AddNote, "Add a note"),
        ("escalation", Action.ESCALATE, Escalate, "Escalate"),
        ("hold", Action.HOLD, Hold, "Put on hold (pauses the clocks)"),
        ("resume", Action.RESUME, Resume, "Resume after a hold"),
        ("decision", Action.COMMUNICATE_DECISION, CommunicateDecision, "Communicate the decision"),
        ("answer-on-spot", Action.ANSWER_ON_SPOT, AnswerOnSpot, "Answer on the spot (抱怨类)"),
        ("not-upheld", Action.MARK_NOT_UPHELD, MarkNotUpheld, "Mark not upheld and answer"),
        ("resolution", Action.RESOLVE, Resolve, "Resolve"),
        ("return-visits", Action.RECORD_RETURN_VISIT, RecordReturnVisit, "Record a return visit"),
        ("compensation", Action.RECORD_COMPENSATION, RecordCompensation, "Record compensation"),
        ("reassignment", Action.REASSIGN, Reassign, "Reassign, with an approver"),
        (
            "delivery",
            Action.RECORD_DELIVERY,
            RecordDelivery,
            "Record the repaired product's delivery",
        ),
        (
            "project-delivery",
            Action.RECORD_PROJECT_DELIVERY,
            RecordProjectDelivery,
            "Record a delivered project (starts its return visits)",
        ),
        ("close", Action.CLOSE, Close, "Close"),
        ("reopen", Action.REOPEN, Reopen, "Reopen: the customer is not satisfied"),
    ]
    for path, action, model, summary in _register:
        staff_action(path, action, model, summary)

    @app.post(
        "/v1/complaints/{complaint_no}/feedback",
        response_model=ActionApplied,
        responses={403: {"model": Problem}, 404: {"model": Problem}, 409: {"model": ActionRefused}},
    )
    async def give_feedback(complaint_no: ComplaintNo, feedback: Feedback) -> ActionApplied:
        """The customer's rating; the satisfaction-survey link calls this. An unsatisfied
        answer (any score of 2 or less) reopens the case."""
        intake = holder.get()
        if not intake.check_feedback_token(complaint_no, feedback.token):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "the survey link is not valid")
        result = await intake.act(
            complaint_no,
            Action.RECORD_FEEDBACK,
            actor="customer",
            payload={
                "quality": feedback.quality,
                "attitude": feedback.attitude,
                "speed": feedback.speed,
                "comment": feedback.comment,
                "satisfied": feedback.satisfied,
            },
            satisfied=feedback.satisfied,
            staff_only=False,
        )
        return _applied(result)

    @app.put(
        "/v1/branches/{branch_id}/service-volumes/{day}",
        response_model=ServiceVolume,
        responses={404: {"model": Problem}},
    )
    async def put_service_volume(
        caller: Authenticated,
        branch_id: Annotated[str, PathParam(max_length=100)],
        day: date,
        volume: ServiceVolumeIn,
    ) -> ServiceVolume:
        """How many services the branch delivered on ``day`` (room nights, visits, tests…):
        the denominator of its complaint rate. Posting again replaces the day's figure.

        Recorded by the branch's own API key or a manager of the branch (403 for other
        staff of it); a branch outside the caller's scope is a 404, as for
        `GET /v1/branches/{branch_id}`."""
        if not sees_branch(caller, branch_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no branch {branch_id}")
        check_branch_manager(caller, branch_id)
        try:
            changed = await holder.get().record_service_volume(branch_id, day, volume.services)
        except CaseNotFoundError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
        return ServiceVolume(
            branch_id=branch_id, day=day, services=volume.services, changed=changed
        )

    @app.get("/survey/{complaint_no}", response_class=HTMLResponse, include_in_schema=False)
    async def survey_page(
        complaint_no: ComplaintNo, token: str = "", lang: Literal["zh", "en"] = "zh"
    ) -> HTMLResponse:
        """The page the satisfaction-survey link in a customer's message opens; it posts
        to the feedback endpoint above."""
        if not holder.get().check_feedback_token(complaint_no, token):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "the survey link is not valid")
        page = _SURVEY_PAGE.render(
            lang=lang,
            t=SURVEY_TEXT[lang],
            complaint_no=complaint_no,
            token=token,
            feedback_path=f"/v1/complaints/{complaint_no}/feedback",
        )
        return HTMLResponse(page)

    document_body_refusals(app, MAX_BODY_BYTES)
    document_auth_refusals(app)
    return app


def create_app() -> FastAPI:
    """For uvicorn's workers: each worker process builds its own app from the environment."""
    return build_app(IntakeSettings())
