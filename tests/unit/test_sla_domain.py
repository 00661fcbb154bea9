from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.sla.domain import ComplaintFacts, PlannedClock, clock_id, plan_clocks, shifted
from shared.contracts.intake import CustomerType, Region, Severity
from shared.policy import load_packs
from shared.settings import REPO_ROOT

HOTEL = load_packs(REPO_ROOT / "policy-packs").packs["hotel"]
RECEIVED = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def _plan(customer_type: CustomerType, received_at: datetime = RECEIVED) -> list[PlannedClock]:
    facts = ComplaintFacts(
        "261122001", "facilities", customer_type, Severity.NORMAL, Region.DOMESTIC
    )
    return plan_clocks(HOTEL, facts, starting_event="ComplaintReceived", started_at=received_at)


def test_an_in_house_guest_is_answered_within_24_hours() -> None:
    (clock,) = _plan(CustomerType.IN_HOUSE_GUEST)
    assert clock.name == "resolution"
    assert clock.due_at == RECEIVED + timedelta(hours=24)
    assert clock.rule == "in-house-guest-24h"


def test_a_departed_guest_within_72_hours() -> None:
    (clock,) = _plan(CustomerType.DEPARTED_GUEST)
    assert clock.due_at == RECEIVED + timedelta(hours=72)
    assert clock.rule == "other-guests-72h"


def test_clock_ids_are_stable_for_replays() -> None:
    assert _plan(CustomerType.MEMBER)[0].clock_id == clock_id("261122001", "resolution")
    assert clock_id("261122001", "resolution") != clock_id("261122002", "resolution")


@given(
    st.sampled_from(list(CustomerType)),
    st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    ),
)
def test_every_clock_is_due_its_target_after_receipt(
    customer_type: CustomerType, received_at: datetime
) -> None:
    clocks = _plan(customer_type, received_at)
    assert len({c.name for c in clocks}) == len(clocks) >= 1
    for clock in clocks:
        assert clock.started_at == received_at
        assert (clock.due_at - clock.started_at).total_seconds() == clock.target_seconds


def test_clocks_of_a_later_round_are_new_clocks() -> None:
    assert clock_id("261122001", "resolution", 2) != clock_id("261122001", "resolution")


def test_a_pause_moves_an_elapsed_due_time_by_the_wall_clock_time_paused() -> None:
    time = HOTEL.working_time()
    due = RECEIVED + timedelta(hours=24)
    paused, resumed = RECEIVED + timedelta(hours=2), RECEIVED + timedelta(hours=5)
    assert shifted(due, paused, resumed, working=False, time=time) == due + timedelta(hours=3)
    assert shifted(RECEIVED, paused, resumed, working=False, time=time) == RECEIVED


def test_compensation_goes_to_the_rung_allowed_to_approve_it() -> None:
    from decimal import Decimal

    from services.sla.domain import approving_rung
    from shared.policy import PolicyPack

    assert approving_rung(HOTEL, Decimal("99999")) is None  # the seed gives no amounts
    ladder = {
        "seed": "000 第二篇 9(五)",
        "ladder": [
            {"level": 1, "to": ["fo-supervisor"], "max_compensation": "500", "seed": "x"},
            {"level": 2, "to": ["eng-manager"], "max_compensation": "5000", "seed": "x"},
            {"level": 3, "to": ["hk-manager"], "seed": "x"},
        ],
    }
    pack = PolicyPack.model_validate({**HOTEL.model_dump(), "escalation": ladder})
    assert approving_rung(pack, Decimal("300")) is None  # the first rung decides itself
    rung = approving_rung(pack, Decimal("800"))
    assert rung is not None
    assert rung.level == 2
    top = approving_rung(pack, Decimal("80000"))
    assert top is not None
    assert top.level == 3


def test_a_delivered_project_is_visited_monthly_for_a_year_then_quarterly() -> None:
    from zoneinfo import ZoneInfo

    from services.sla.domain import next_visit, occurrences_in
    from shared.deadlines import occurrence_due
    from shared.policy import Recurrence
    from tests.unit.packs.routing_cases import pack_named

    tz = ZoneInfo("Asia/Shanghai")
    schedule = (Recurrence(every_months=1, for_months=12), Recurrence(every_months=3))
    delivered = datetime(2026, 1, 31, 10, 0, tzinfo=tz)
    assert occurrence_due(delivered, schedule, 1, "Asia/Shanghai") == datetime(
        2026, 2, 28, 10, 0, tzinfo=tz
    )
    assert occurrence_due(delivered, schedule, 12, "Asia/Shanghai") == datetime(
        2027, 1, 31, 10, 0, tzinfo=tz
    )
    assert occurrence_due(delivered, schedule, 13, "Asia/Shanghai") == datetime(
        2027, 4, 30, 10, 0, tzinfo=tz
    )
    assert occurrences_in(schedule) is None
    assert occurrences_in((Recurrence(every_months=1, for_months=12),)) == 12

    pack = pack_named("it-services")
    facts = ComplaintFacts(
        "261118001",
        "service-request",
        CustomerType.END_CUSTOMER,
        Severity.NORMAL,
        Region.DOMESTIC,
    )
    (first,) = plan_clocks(pack, facts, starting_event="ProjectDelivered", started_at=delivered)
    assert (first.occurrence, first.due_at) == (1, datetime(2026, 2, 28, 10, 0, tzinfo=tz))
    second = next_visit(
        pack,
        first.rule,
        complaint_no="261118001",
        series_start=delivered,
        occurrence=1,
        previous_due=first.due_at,
        round_no=1,
    )
    assert second is not None
    assert (second.occurrence, second.due_at) == (2, datetime(2026, 3, 31, 10, 0, tzinfo=tz))
    assert second.clock_id != first.clock_id
