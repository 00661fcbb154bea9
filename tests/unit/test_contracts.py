from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.contracts import (
    Event,
    UndecodableEventError,
    current_version,
    decode_event,
    encode_event,
    upcaster,
)
from shared.contracts.base import registered_event_types
from shared.contracts.submissions import SubmissionAccepted, SubmissionRejected
from tests.contracts.evolution import evolved_contract, v1_document
from tests.contracts.golden import golden_samples, same_shape

GOLDEN = golden_samples()
OUTCOMES = {model.EVENT_TYPE: model for model in (SubmissionAccepted, SubmissionRejected)}
EVENTS = sorted(registered_event_types())


def test_every_message_type_has_a_golden_sample() -> None:
    assert set(GOLDEN) == set(registered_event_types()) | set(OUTCOMES)


@pytest.mark.parametrize("event_type", EVENTS)
def test_golden_sample_round_trips_exactly(event_type: str) -> None:
    event = decode_event(json.dumps(GOLDEN[event_type]).encode())
    assert event is not None
    assert type(event).__name__ == event_type
    assert json.loads(encode_event(event)) == GOLDEN[event_type]


@pytest.mark.parametrize("event_type", sorted(GOLDEN))
def test_golden_sample_carries_every_field_of_the_contract(event_type: str) -> None:
    model = {**registered_event_types(), **OUTCOMES}[event_type]
    assert set(GOLDEN[event_type]) == set(model.model_fields)


@pytest.mark.parametrize("event_type", sorted(OUTCOMES))
def test_submission_outcomes_round_trip_exactly(event_type: str) -> None:
    outcome = OUTCOMES[event_type].model_validate(GOLDEN[event_type])
    assert json.loads(outcome.model_dump_json()) == GOLDEN[event_type]
    assert outcome.key == b"hotel-demo"


def test_events_are_frozen() -> None:
    event = decode_event(json.dumps(GOLDEN["ComplaintAssigned"]).encode())
    assert event is not None
    with pytest.raises(ValueError, match="frozen"):
        event.department = "elsewhere"  # type: ignore[attr-defined]


@pytest.mark.parametrize("event_type", EVENTS)
def test_a_consumer_built_for_v1_reads_v2_with_a_field_added(event_type: str) -> None:
    golden = GOLDEN[event_type]
    later = {**golden, "schema_version": 2, "priority_hint": {"level": "high", "why": "VIP"}}
    event = decode_event(json.dumps(later).encode())
    assert event is not None
    assert event.schema_version == 2
    assert json.loads(event.model_dump_json()) == {**golden, "schema_version": 2}


def test_every_contract_is_at_its_first_version_and_needs_no_upcaster_yet() -> None:
    # When one moves on, its golden sample stays as the old version's document and a
    # new one is added: this test then names the contracts whose stored events upcast.
    assert {current_version(model) for model in registered_event_types().values()} == {1}
    assert {GOLDEN[name]["schema_version"] for name in EVENTS} == {1}


def test_a_v3_consumer_reads_stored_v1_and_v2_events_through_the_upcaster() -> None:
    with evolved_contract() as parcel_weighed:
        v1 = decode_event(json.dumps(v1_document()).encode())
        v2 = decode_event(
            json.dumps(v1_document(schema_version=2, weight_kg=None, weight_grams=1250)).encode()
        )
        v3 = decode_event(
            json.dumps(v1_document(schema_version=3, weight_grams=90, scale_id="s-7")).encode()
        )
    assert isinstance(v1, parcel_weighed)
    assert v1.model_dump(include={"schema_version", "weight_grams", "scale_id"}) == {
        "schema_version": 3,
        "weight_grams": 2500,
        "scale_id": "unknown",
    }
    assert isinstance(v2, parcel_weighed)
    assert (v2.schema_version, v2.weight_grams) == (3, 1250)  # type: ignore[attr-defined]
    assert isinstance(v3, parcel_weighed)
    assert (v3.weight_grams, v3.scale_id) == (90, "s-7")  # type: ignore[attr-defined]


def test_an_old_document_the_upcaster_cannot_read_is_undecodable() -> None:
    with (
        evolved_contract(),
        pytest.raises(UndecodableEventError, match="invalid ContractTestParcelWeighed"),
    ):
        decode_event(json.dumps({**v1_document(), "weight_kg": None}).encode())


def test_an_event_type_has_one_upcaster_per_version() -> None:
    with evolved_contract(), pytest.raises(ValueError, match="already has an upcaster"):
        upcaster("ContractTestParcelWeighed", from_version=1)(lambda document: document)


def test_the_upcaster_is_gone_with_the_contract() -> None:
    with evolved_contract():
        pass
    assert decode_event(json.dumps(v1_document()).encode()) is None


def test_an_unknown_event_type_is_not_ours_rather_than_an_error() -> None:
    document = {**GOLDEN["ComplaintAssigned"], "event_type": "SomethingNew"}
    assert decode_event(json.dumps(document).encode()) is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"{", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"complaint_no": "1"}', "missing event_type"),
        (json.dumps({**GOLDEN["ClockStarted"], "due_at": "soon"}).encode(), "invalid ClockStarted"),
    ],
)
def test_undecodable_bytes_are_named(raw: bytes, reason: str) -> None:
    with pytest.raises(UndecodableEventError, match=reason):
        decode_event(raw)


@given(st.binary(max_size=2048))
def test_decoding_arbitrary_bytes_never_fails_otherwise(raw: bytes) -> None:
    try:
        result = decode_event(raw)
    except UndecodableEventError:
        return
    assert result is None or isinstance(result, Event)


def test_caused_by_keeps_the_chain() -> None:
    received = decode_event(json.dumps(GOLDEN["ComplaintReceived"]).encode())
    assigned = decode_event(json.dumps(GOLDEN["ComplaintAssigned"]).encode())
    assert received is not None
    assert assigned is not None
    again = type(assigned).caused_by(
        received, producer="routing", **assigned.model_dump(exclude=set(Event.model_fields))
    )
    assert again.causation_id == received.event_id
    assert again.correlation_id == received.correlation_id
    assert again.event_id != assigned.event_id
    assert same_shape(json.loads(encode_event(again)), GOLDEN["ComplaintAssigned"])


def test_shapes_differ_when_a_field_is_added_or_missing() -> None:
    golden = GOLDEN["ComplaintAssigned"]
    assert same_shape(golden, golden)
    assert not same_shape({**golden, "surprise": 1}, golden)
    assert not same_shape({k: v for k, v in golden.items() if k != "rule"}, golden)
    assert same_shape({**golden, "assignee": None}, golden)
