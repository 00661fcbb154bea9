from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from services.routing.domain import RoutingInput, decide
from shared.contracts.submissions import Channel, CustomerType, Region, Severity
from tests.unit.packs.routing_cases import PACKS


@st.composite
def complaints(draw: st.DrawFn) -> tuple[str, RoutingInput, dict[str, int], datetime]:
    pack = PACKS.packs[draw(st.sampled_from(sorted(PACKS.packs)))]
    category = draw(st.one_of(st.sampled_from([c.code for c in pack.categories]), st.text()))
    staff = [s.id for s in pack.staff]
    loads = draw(st.dictionaries(st.sampled_from(staff), st.integers(0, 40), max_size=len(staff)))
    complaint = RoutingInput(
        category=category,
        severity=draw(st.sampled_from(list(Severity))),
        channel=draw(st.sampled_from(list(Channel))),
        customer_type=draw(st.sampled_from(list(CustomerType))),
        region=draw(st.sampled_from(list(Region))),
        text=draw(st.text(max_size=80)),
    )
    moment = draw(
        st.datetimes(datetime(2025, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC))
    )
    return pack.pack, complaint, loads, moment


@given(complaints())
def test_every_complaint_gets_one_real_assignee_and_the_same_inputs_the_same_one(
    case: tuple[str, RoutingInput, dict[str, int], datetime],
) -> None:
    pack_id, complaint, loads, moment = case
    pack = PACKS.packs[pack_id]
    decision = decide(pack, complaint, loads, moment)
    assert decision == decide(pack, complaint, loads, moment)
    assert pack.has_department(decision.department)
    assert pack.has_member(decision.assignee_id)
    assert decision.assignee_id in {c.staff_id for c in decision.candidates}
    assert decision.rule.startswith(("rule:", "category:", "triage"))
    for target in decision.also_notify:
        assert pack.has_member(target) or pack.has_department(target)


@given(complaints())
def test_the_chosen_one_is_never_busier_than_an_equally_available_colleague(
    case: tuple[str, RoutingInput, dict[str, int], datetime],
) -> None:
    pack_id, complaint, loads, moment = case
    decision = decide(PACKS.packs[pack_id], complaint, loads, moment)
    chosen = next(c for c in decision.candidates if c.staff_id == decision.assignee_id)
    for other in decision.candidates:
        if other.on_shift == chosen.on_shift:
            assert chosen.open_cases / chosen.capacity <= other.open_cases / other.capacity


def test_an_escalation_goes_to_the_named_person_else_the_supervisor_else_the_head() -> None:
    import json

    from services.routing.domain import escalation_target
    from shared.contracts import decode_event
    from shared.contracts.intake import ComplaintEscalated
    from tests.contracts.golden import golden_samples

    hotel = PACKS.packs["hotel"]
    escalated = decode_event(json.dumps(golden_samples()["ComplaintEscalated"]).encode())
    assert isinstance(escalated, ComplaintEscalated)
    unnamed = escalated.model_copy(update={"escalated_to": None})
    named = escalated.model_copy(update={"escalated_to": "eng-manager"})
    assert escalation_target(hotel, "front-office", "fo-agent", named).id == "eng-manager"  # type: ignore[union-attr]
    assert escalation_target(hotel, "front-office", "fo-agent", unnamed).id == "fo-supervisor"  # type: ignore[union-attr]
    assert escalation_target(hotel, "engineering", "eng-manager", unnamed) is None
