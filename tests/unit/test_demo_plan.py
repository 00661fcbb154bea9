"""The decisions of `make demo` (deploy/local/demo.py): what it submits for each pack, which
action it takes next on a case. Pure functions: no network."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from bench.staff import demo  # the script loaded as a module, as the benchmark uses it
from services.intake import api
from services.intake.lifecycle import Action, CaseState, allowed_actions, apply
from shared.contracts.intake import CaseStatus
from shared.contracts.submissions import SubmitComplaint
from shared.policy import PackRegistry, PolicyPack, load_packs
from shared.settings import REPO_ROOT

REGISTRY: PackRegistry = load_packs(REPO_ROOT / "policy-packs")
PACKS: list[PolicyPack] = [REGISTRY.packs[name] for name in sorted(REGISTRY.packs)]
NOW = datetime(2026, 11, 23, 2, 30, tzinfo=UTC)

BODY_MODELS: dict[str, type[BaseModel]] = {
    "acknowledge": api.Acknowledge,
    "start_investigation": api.StartInvestigation,
    "add_note": api.AddNote,
    "escalate": api.Escalate,
    "hold": api.Hold,
    "resume": api.Resume,
    "communicate_decision": api.CommunicateDecision,
    "answer_on_spot": api.AnswerOnSpot,
    "mark_not_upheld": api.MarkNotUpheld,
    "resolve": api.Resolve,
    "record_return_visit": api.RecordReturnVisit,
    "record_compensation": api.RecordCompensation,
    "reassign": api.Reassign,
    "record_delivery": api.RecordDelivery,
    "close": api.Close,
}


def _valid(plan: Any) -> SubmitComplaint:
    return SubmitComplaint.model_validate(plan.kafka_message())


# -- submissions ----------------------------------------------------------------------------


def test_the_shipped_packs_all_have_a_profile() -> None:
    assert {p.pack for p in PACKS} <= set(demo.PROFILES)


@pytest.mark.parametrize("pack", PACKS, ids=lambda p: p.pack)
def test_every_category_of_every_pack_gives_a_valid_submission(pack: PolicyPack) -> None:
    rng = random.Random(7)
    for category in pack.categories:
        for _ in range(10):
            body = demo.submission_body(pack, rng, NOW, category=category.code)
            submission = SubmitComplaint.model_validate({**body, "submission_id": "demo-1"})
            assert submission.branch_id == f"{pack.pack}-demo"
            assert submission.category == category.code
            assert submission.description.strip()
            assert submission.customer.email is None or submission.customer.email.endswith(
                "@example.com"
            )
            assert submission.customer.phone is None or submission.customer.phone.startswith(
                "+86 139"
            )
            staff = submission.first_contact_staff
            assert staff is None or pack.has_member(staff)


@pytest.mark.parametrize("pack", PACKS, ids=lambda p: p.pack)
def test_planned_submissions_are_valid_and_the_branch_knows_them(pack: PolicyPack) -> None:
    rng = random.Random(11)
    for seq in range(60):
        plan = demo.plan_submission(pack, rng, NOW, run_id="t", seq=seq, late=seq % 3 == 0)
        submission = _valid(plan)
        assert REGISTRY.for_branch(submission.branch_id) == (pack, pack.branches[0])
        assert pack.category(submission.category) is not None
        assert submission.submission_id == plan.key
        assert plan.via in ("http", "kafka")
        assert submission.customer.language.value == plan.language


def test_submissions_mix_languages_severities_and_scripts() -> None:
    rng = random.Random(3)
    plans = [demo.plan_stream_item(REGISTRY, rng, NOW, run_id="t", seq=seq) for seq in range(1_000)]
    languages = {p.language for p in plans}
    severities = [p.severity for p in plans]
    assert languages == {"zh", "en"}
    assert severities.count("normal") > severities.count("urgent") > severities.count("major") > 0
    assert {p.branch_id for p in plans} == {f"{p.pack}-demo" for p in PACKS}
    kafka = sum(p.via == "kafka" for p in plans) / len(plans)
    assert 0.25 < kafka < 0.42
    assert any(p.replay for p in plans)
    unsatisfied = sum(p.script.unsatisfied_first for p in plans) / len(plans)
    assert 0.1 < unsatisfied < 0.2
    endings = {p.script.ending for p in plans}
    assert endings == set(demo.Ending)
    compensating = {p.pack for p in plans if p.script.compensation}
    assert compensating == {"hotel", "furniture", "manufacturing"}


def test_keys_are_unique_within_a_run_and_differ_between_runs() -> None:
    rng = random.Random(5)
    burst = demo.plan_burst(REGISTRY, rng, NOW, run_id="a")
    stream = [demo.plan_stream_item(REGISTRY, rng, NOW, run_id="a", seq=s) for s in (20, 21)]
    keys = [p.key for p in [*burst, *stream]]
    assert len(set(keys)) == len(keys)
    other = demo.plan_burst(REGISTRY, random.Random(5), NOW, run_id="b")
    assert not {p.key for p in other} & set(keys)


def test_the_same_seed_plans_the_same_burst() -> None:
    first = demo.plan_burst(REGISTRY, random.Random(42), NOW, run_id="r")
    second = demo.plan_burst(REGISTRY, random.Random(42), NOW, run_id="r")
    assert first == second


@pytest.mark.parametrize("seed", range(15))
def test_the_burst_honours_the_late_share_and_spreads_over_branches(seed: int) -> None:
    plans = demo.plan_burst(REGISTRY, random.Random(seed), NOW, run_id="r")
    assert len(plans) == demo.BURST_SIZE == 20
    late = [p for p in plans if p.taken_at is not None]
    assert len(late) == round(20 * demo.BURST_LATE_SHARE) == 5
    assert {p.branch_id for p in plans} == {f"{p.pack}-demo" for p in PACKS}
    for plan in plans:
        _valid(plan)
    for plan in late:
        assert plan.late_clock is not None
        age = NOW - plan.taken_at
        assert timedelta(days=1) <= age < timedelta(days=7)
        submission = _valid(plan)
        assert submission.taken_at == plan.taken_at.replace(microsecond=0)


@pytest.mark.parametrize("seed", range(30))
def test_a_late_complaint_is_already_past_the_clock_it_aims_at(seed: int) -> None:
    rng = random.Random(seed)
    pack = rng.choice([p for p in PACKS if demo.late_targets(p)])
    plan = demo.plan_submission(pack, rng, NOW, run_id="r", seq=seed, late=True)
    clock = next(c for c in pack.clocks if c.id == plan.late_clock)
    assert clock.starts_on == "ComplaintReceived"
    assert not clock.categories or plan.category in clock.categories
    assert not clock.severities or plan.severity in clock.severities
    customer_type = plan.body["customer"]["type"]
    assert not clock.customer_types or customer_type in clock.customer_types
    age = NOW - plan.taken_at
    if clock.target_hours is not None:
        assert age > timedelta(hours=clock.target_hours)
    if clock.working_days is not None:
        assert age > timedelta(days=clock.working_days + 1)


def test_late_targets_leave_out_clocks_no_week_can_miss() -> None:
    by_pack = {p.pack: {t.clock for t in demo.late_targets(p)} for p in PACKS}
    assert by_pack["hotel"] == {"in-house-guest-24h", "other-guests-72h"}
    assert by_pack["it-services"] == set()  # only return-visit clocks
    assert "retest-reply-15d" not in by_pack["testing-lab"]
    assert "closure-domestic-15d" not in by_pack["manufacturing"]
    hotel = next(t for t in demo.late_targets(REGISTRY.packs["hotel"]) if t.clock.startswith("in"))
    assert hotel.customer_types == ("in_house_guest",)


def test_a_pack_without_late_clocks_gets_no_late_complaints() -> None:
    pack = REGISTRY.packs["it-services"]
    plan = demo.plan_submission(pack, random.Random(1), NOW, run_id="r", seq=0, late=True)
    assert plan.taken_at is None
    assert plan.late_clock is None
    assert "taken_at" not in plan.body


def test_service_volumes_cover_fourteen_days_per_demo_branch() -> None:
    today = date(2026, 11, 23)
    plans = demo.plan_volumes(REGISTRY, today, random.Random(9))
    for pack in PACKS:
        mine = [p for p in plans if p.branch_id == f"{pack.pack}-demo"]
        assert [p.day for p in mine] == [today - timedelta(days=d) for d in range(13, -1, -1)]
        for plan in mine:
            api.ServiceVolumeIn.model_validate({"services": plan.services})
    hotel_weekdays = [
        p.services for p in plans if p.branch_id == "hotel-demo" and p.day.weekday() < 5
    ]
    assert all(300 <= n <= 500 for n in hotel_weekdays)


# -- the next step on a case ----------------------------------------------------------------

scripts = st.builds(
    demo.CaseScript,
    ending=st.sampled_from(list(demo.Ending)),
    unsatisfied_first=st.booleans(),
    hold=st.booleans(),
    reassign=st.booleans(),
    escalate=st.booleans(),
    compensation=st.booleans(),
    delivery=st.booleans(),
    return_visit=st.booleans(),
    note=st.booleans(),
)
ACTION_NAMES = sorted(demo.ACTION_PATHS)


def test_the_demo_speaks_intakes_action_names() -> None:
    assert set(demo.ACTION_PATHS) <= {a.value for a in Action}
    assert set(BODY_MODELS) | {"record_feedback"} == set(demo.ACTION_PATHS)


@settings(max_examples=400)
@given(
    script=scripts,
    status=st.sampled_from([s.value for s in CaseStatus]),
    round_=st.integers(1, 3),
    allowed=st.frozensets(st.sampled_from([a.value for a in Action])),
    done=st.frozensets(st.sampled_from([*ACTION_NAMES, "record_feedback@1"])),
    waited=st.floats(0, 100),
    reassign_to=st.none() | st.just("someone"),
)
def test_next_step_only_returns_an_allowed_action(
    script: Any,
    status: str,
    round_: int,
    allowed: frozenset[str],
    done: frozenset[str],
    waited: float,
    reassign_to: str | None,
) -> None:
    snap = demo.CaseSnapshot(
        status=status, round=round_, allowed=allowed, waited=waited, reassign_to=reassign_to
    )
    action = demo.next_step(script, snap, done)
    assert action is None or action in allowed


def _snap(state: CaseState, assignee: str | None, waited: float = 0.0) -> Any:
    return demo.CaseSnapshot(
        status=state.status.value,
        round=state.round,
        allowed=frozenset(a.value for a in allowed_actions(state)),
        assignee=assignee,
        department="front-office" if assignee else None,
        reassign_to="fo-agent",
        waited=waited,
    )


def _walk(script: Any, *, routing_first: bool) -> tuple[list[str], CaseState, set[str]]:
    """Drive intake's own state machine with the demo's choices; routing assigns the case
    whenever it waits (before the first step if ``routing_first``)."""
    state, assignee, done, taken = CaseState(), None, set[str](), list[str]()
    if routing_first:
        state, assignee = apply(state, Action.RECORD_ASSIGNMENT), "fo-supervisor"
    for _ in range(60):
        snap = _snap(state, assignee)
        action = demo.next_step(script, snap, frozenset(done))
        if action is None:
            if state.status.value in ("received", "acknowledged", "reopened"):
                state, assignee = apply(state, Action.RECORD_ASSIGNMENT), "fo-supervisor"
                continue
            break
        satisfied = None
        if action == "record_feedback":
            scores = demo.feedback_scores(script, state.round, "zh", random.Random(0))
            satisfied = api.Feedback(token="t", **scores).satisfied
        elif action == "record_return_visit":
            satisfied = True
        done.add(demo.done_marker(action, state.round))
        taken.append(action)
        state = apply(state, Action(action), satisfied=satisfied)
    return taken, state, done


@settings(max_examples=300)
@given(script=scripts, routing_first=st.booleans())
def test_every_script_walks_a_case_to_its_end(script: Any, routing_first: bool) -> None:
    taken, state, done = _walk(script, routing_first=routing_first)
    assert state.status.value in ("closed", "not_upheld")
    assert demo.case_finished(script, _snap(state, "fo-supervisor"), frozenset(done))
    assert "record_feedback" in taken
    if script.unsatisfied_first:
        assert state.round == 2
    investigated = "answer_on_spot" not in taken  # answered at once: no investigation
    for extra, wanted in (
        ("hold", script.hold),
        ("escalate", script.escalate),
        ("reassign", script.reassign),
        ("add_note", script.note),
    ):
        assert (extra in taken) == (wanted and investigated), extra
    assert taken.count("record_compensation") == int(script.compensation)
    if "hold" in taken:
        assert taken[taken.index("hold") + 1] == "resume"


def test_the_main_flow_and_its_variants() -> None:
    plain = demo.CaseScript()
    taken, state, _ = _walk(plain, routing_first=False)
    assert taken == [
        "acknowledge",
        "start_investigation",
        "communicate_decision",
        "record_feedback",
        "resolve",
        "close",
    ]
    on_spot = demo.CaseScript(ending=demo.Ending.ON_SPOT)
    assert _walk(on_spot, routing_first=False)[0][:2] == ["answer_on_spot", "record_feedback"]
    # Routing was quicker than the answer on the spot: the case is decided instead.
    assert "communicate_decision" in _walk(on_spot, routing_first=True)[0]
    not_upheld = demo.CaseScript(ending=demo.Ending.NOT_UPHELD)
    taken, state, _ = _walk(not_upheld, routing_first=True)
    assert taken[-2:] == ["mark_not_upheld", "record_feedback"]
    assert state.status is CaseStatus.NOT_UPHELD
    visit = demo.CaseScript(return_visit=True, delivery=True)
    taken, _, _ = _walk(visit, routing_first=True)
    assert taken[-5:] == [
        "record_delivery",
        "record_feedback",
        "resolve",
        "record_return_visit",
        "close",
    ]


def test_an_unsatisfied_customer_reopens_the_case_once() -> None:
    script = demo.CaseScript(unsatisfied_first=True)
    taken, state, _ = _walk(script, routing_first=True)
    assert taken.count("record_feedback") == 2
    assert taken.count("start_investigation") == 2
    assert state.round == 2
    assert state.status is CaseStatus.CLOSED


def test_a_waiting_case_is_left_to_routing_until_it_takes_too_long() -> None:
    state = apply(CaseState(), Action.ACKNOWLEDGE)
    script = demo.CaseScript()
    assert demo.next_step(script, _snap(state, None), frozenset({"acknowledge"})) is None
    late = _snap(state, None, waited=demo.ROUTING_PATIENCE + 1)
    assert demo.next_step(script, late, frozenset({"acknowledge"})) == "start_investigation"


def test_feedback_is_not_asked_twice_in_a_round() -> None:
    state = CaseState(CaseStatus.NOT_UPHELD)
    script = demo.CaseScript(ending=demo.Ending.NOT_UPHELD)
    assert demo.next_step(script, _snap(state, "x"), frozenset()) == "record_feedback"
    done = frozenset({demo.done_marker("record_feedback", 1)})
    assert demo.next_step(script, _snap(state, "x"), done) is None
    assert demo.case_finished(script, _snap(state, "x"), done)


# -- request bodies -------------------------------------------------------------------------


@pytest.mark.parametrize("pack", PACKS, ids=lambda p: p.pack)
@pytest.mark.parametrize("action", sorted(BODY_MODELS))
def test_action_bodies_fit_intakes_api_and_name_the_packs_people(
    pack: PolicyPack, action: str
) -> None:
    rng = random.Random(4)
    category = pack.categories[0]
    department = category.department
    head = pack.department(department).head
    snap = demo.CaseSnapshot(
        status="investigating",
        round=1,
        allowed=frozenset({action}),
        assignee=head,
        department=department,
        reassign_to=demo.reassign_target(pack, department, head) or head,
    )
    for language in ("zh", "en"):
        ctx = demo.CaseContext(pack, category.code, language)
        body = demo.action_body(action, ctx, snap, rng, NOW)
        BODY_MODELS[action].model_validate(body)
        assert pack.has_member(body["actor"])
        if action == "reassign":
            assert pack.member(body["approver"]).approves_reassignment
            assert pack.has_member(body["to_assignee"])
        if action == "escalate":
            assert pack.has_member(body["escalated_to"])
        if action == "record_compensation":
            assert pack.has_department(body["responsible_department"])


def test_the_actor_is_the_assignee_else_the_owner_else_a_head() -> None:
    hotel = REGISTRY.packs["hotel"]
    base = demo.CaseSnapshot(status="received", round=1, allowed=frozenset())
    assert demo.actor_for(hotel, base) == "fo-supervisor"  # the triage department's head
    owned = demo.CaseSnapshot(status="received", round=1, allowed=frozenset(), owner="fo-agent")
    assert demo.actor_for(hotel, owned) == "fo-agent"
    assigned = demo.CaseSnapshot(
        status="assigned", round=1, allowed=frozenset(), assignee="eng-manager", owner="fo-agent"
    )
    assert demo.actor_for(hotel, assigned) == "eng-manager"
    by_department = demo.CaseSnapshot(
        status="assigned", round=1, allowed=frozenset(), department="housekeeping"
    )
    assert demo.actor_for(hotel, by_department) == "hk-manager"


def test_reassignment_needs_someone_else_in_the_department() -> None:
    hotel = REGISTRY.packs["hotel"]
    assert demo.reassign_target(hotel, "housekeeping", "hk-manager") is None  # alone there
    assert demo.reassign_target(hotel, "front-office", "fo-supervisor") == "fo-agent"
    assert demo.reassign_target(hotel, None, None) is None


@given(round_=st.integers(1, 3), unsatisfied=st.booleans(), seed=st.integers(0, 10_000))
def test_feedback_is_unsatisfied_only_in_the_first_round_of_such_a_case(
    round_: int, unsatisfied: bool, seed: int
) -> None:
    script = demo.CaseScript(unsatisfied_first=unsatisfied)
    scores = demo.feedback_scores(script, round_, "en", random.Random(seed))
    feedback = api.Feedback(token="t", **scores)
    assert feedback.satisfied is not (unsatisfied and round_ == 1)


def test_the_command_line_defaults_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INTAKE_URL", "http://intake.test:1/")
    monkeypatch.delenv("REPORTING_URL", raising=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker.test:9")
    monkeypatch.delenv("FEEDBACK_SECRET", raising=False)
    config = demo.parse_args(["--seed", "5", "--minutes", "0.5"])
    assert config.intake == "http://intake.test:1"
    assert config.reporting == "http://127.0.0.1:8005"
    assert config.kafka == "broker.test:9"
    assert (config.seed, config.minutes, config.rate) == (5, 0.5, 3.0)
    assert config.feedback_secret == "development-only-feedback-secret"
    monkeypatch.setenv("FEEDBACK_SECRET", "s3")
    assert demo.parse_args([]).feedback_secret == "s3"
