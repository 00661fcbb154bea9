"""Hostile bytes at every decoder a Kafka message reaches: each is refused by name.

The submission decoder (intake's ``…submitted`` topic), the event decoder every consumer
uses (routing, sla, notify, reporting) and reporting's rebuild, which decodes straight
into a model when the headers name one. A decoder that raised anything other than a
rejection would make the consumer treat the message as a passing failure and stop its
partition (tests/integration/test_consumer.py shows the consumer's side of that).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.intake.kafka_submissions import decode_submission
from services.reporting.rebuild import _decode as rebuild_decode
from shared.contracts import Event, RejectedMessageError, decode_event
from shared.contracts.base import registered_event_types
from shared.contracts.submissions import SubmitComplaint
from tests.contracts.golden import golden_samples

GOLDEN = golden_samples()
EVENTS = sorted(registered_event_types())
SUBMISSION: dict[str, Any] = {
    "submission_id": "pms-77",
    "branch_id": "hotel-demo",
    "channel": "phone",
    "customer": {"name": "张伟", "phone": "+86 138 0013 8000", "type": "in_house_guest"},
    "description": "房间空调不制冷",
    "category": "facilities",
}

HOSTILE = {
    "empty": b"",
    "a number of 5,000 digits": b'{"event_type": "ComplaintAssigned", "n": ' + b"9" * 5000 + b"}",
    "nested 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
    "objects nested 50,000 deep": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "invalid UTF-8": b'{"description": "\xc3\x28"}',
    "overlong UTF-8": b'{"description": "\xc0\xaf"}',
    "UTF-16": json.dumps(SUBMISSION).encode("utf-16"),
    "UTF-32": json.dumps(SUBMISSION).encode("utf-32"),
    "a lone surrogate": json.dumps({**SUBMISSION, "description": "\ud800"}).encode(),
    "NUL bytes": b'{"description": "\x00\x00"}\x00',
    "NaN and Infinity": b'{"event_type": NaN, "complaint_no": Infinity}',
    "a top-level string": b'"ComplaintAssigned"',
    "10 MB of description": json.dumps({**SUBMISSION, "description": "诉" * 3_500_000}).encode(),
    "a control character": json.dumps({**SUBMISSION, "description": "a\x1bb"}).encode(),
    "a bell in the name": json.dumps({**SUBMISSION, "customer": {"name": "\x07"}}).encode(),
}

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=50),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def submission_outcome(raw: bytes) -> str:
    """What intake's Kafka path makes of ``raw``: nothing but a rejection or a submission."""
    try:
        document = decode_submission(raw)
    except RejectedMessageError:
        return "rejected"
    try:
        SubmitComplaint.model_validate(document)
    except ValidationError:
        return "invalid"
    return "valid"


def event_outcome(raw: bytes, headers: tuple[tuple[str, bytes], ...] = ()) -> str:
    """What every consumer, and reporting's rebuild, make of ``raw``."""
    try:
        event = decode_event(raw)
    except RejectedMessageError:
        outcome = "rejected"
    else:
        outcome = "foreign" if event is None else "event"
    record = ConsumerRecord("t", 0, 0, 0, 0, None, raw, None, len(raw), -1, list(headers))
    rebuilt = rebuild_decode(record)
    assert (rebuilt is None) == (outcome != "event")
    return outcome


@pytest.mark.parametrize("raw", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_bytes_are_refused_by_name(raw: bytes) -> None:
    assert submission_outcome(raw) in {"rejected", "invalid"}
    assert event_outcome(raw) in {"rejected", "foreign"}
    assert event_outcome(raw, (("event_type", b"ComplaintAssigned"),)) in {"rejected", "foreign"}


def test_the_refusal_says_why() -> None:
    with pytest.raises(RejectedMessageError, match="not JSON: Exceeds the limit"):
        decode_event(HOSTILE["a number of 5,000 digits"])
    with pytest.raises(RejectedMessageError, match="not JSON: maximum recursion depth"):
        decode_submission(HOSTILE["nested 100,000 deep"])
    with pytest.raises(RejectedMessageError, match="a submission must be a JSON object"):
        decode_submission(HOSTILE["a top-level string"])


def test_a_valid_submission_is_valid_and_every_truncation_of_it_is_refused() -> None:
    raw = json.dumps(SUBMISSION, ensure_ascii=False).encode()
    assert submission_outcome(raw) == "valid"
    assert submission_outcome(b"\xef\xbb\xbf" + raw) == "valid"  # a UTF-8 byte order mark
    assert {submission_outcome(raw[:end]) for end in range(len(raw))} == {"rejected"}


@pytest.mark.parametrize("event_type", EVENTS)
def test_every_truncation_of_every_event_is_refused(event_type: str) -> None:
    raw = json.dumps(GOLDEN[event_type]).encode()
    assert event_outcome(raw) == "event"
    assert {event_outcome(raw[:end]) for end in range(0, len(raw), 7)} == {"rejected"}


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_are_refused_by_name(raw: bytes) -> None:
    assert submission_outcome(raw) in {"rejected", "invalid"}
    assert event_outcome(raw) in {"rejected", "foreign"}


@settings(deadline=None)
@given(field=st.sampled_from(sorted(SUBMISSION)), value=JSON_VALUES)
def test_any_value_in_any_submission_field_is_judged(field: str, value: Any) -> None:
    outcome = submission_outcome(json.dumps({**SUBMISSION, field: value}).encode())
    assert outcome in {"invalid", "valid"}


@settings(deadline=None)
@given(
    text=st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=300),
    field=st.sampled_from(["description", "customer_request", "event_place"]),
)
def test_unicode_and_control_characters_in_text_are_kept_exactly_or_refused(
    text: str, field: str
) -> None:
    document = {**SUBMISSION, field: text}
    if submission_outcome(json.dumps(document).encode()) == "valid":
        # Surrounding white space is trimmed (the contracts' str_strip_whitespace).
        assert getattr(SubmitComplaint.model_validate(document), field) == text.strip()


@settings(deadline=None)
@given(
    event_type=st.sampled_from(EVENTS),
    data=st.data(),
    value=JSON_VALUES,
)
def test_any_value_in_any_event_field_is_judged_alike_by_every_decoder(
    event_type: str, data: st.DataObject, value: Any
) -> None:
    golden = GOLDEN[event_type]
    field = data.draw(st.sampled_from(sorted(golden)))
    raw = json.dumps({**golden, field: value}).encode()
    headers = (("event_type", event_type.encode()), ("schema_version", b"1"))
    outcome = event_outcome(raw, headers)
    assert outcome in {"rejected", "event", "foreign"}
    if outcome == "event":
        event = decode_event(raw)
        assert isinstance(event, Event)
        assert (
            rebuild_decode(
                ConsumerRecord("t", 0, 0, 0, 0, None, raw, None, len(raw), -1, list(headers))
            )
            == event
        )
