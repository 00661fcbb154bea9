"""The envelope every event carries, and its wire encoding.

Events are frozen pydantic models. Unknown fields are ignored on decode so a
consumer built for one schema version reads a later, additively extended one.
A subclass registers itself under its ``event_type`` so that any consumer can
decode any event on any topic without knowing its producer's code.

A change old documents cannot be read under (a field renamed, split, or given another
meaning) raises the model's ``schema_version`` and registers an ``upcaster`` for each
step, so that events stored before it (on a topic, in an inbox) decode as the current
version. docs/architecture.md says in which order such a change is rolled out.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

_REGISTRY: dict[str, type[Event]] = {}
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


class RejectedMessageError(ValueError):
    """A message that can never be processed: it goes to the dead-letter topic at once."""


class UndecodableEventError(RejectedMessageError):
    """Bytes on a topic that are not a valid event of a known type."""


class Event(BaseModel):
    """Envelope fields shared by every event; subclasses add the payload."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    EVENT_TYPE: ClassVar[str]

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    event_type: str
    # Strict: a version given as true, 1.0 or "1" is not a version any producer writes.
    schema_version: int = Field(default=1, ge=1, strict=True)
    occurred_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    complaint_no: str = Field(
        min_length=1, description="Kafka key: keeps a complaint's events in order."
    )
    branch_id: str = Field(min_length=1)
    correlation_id: str = Field(
        min_length=1, description="Shared by every event a submission causes."
    )
    causation_id: uuid.UUID | None = Field(
        default=None, description="The event that caused this one."
    )
    producer: str = Field(min_length=1)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "EVENT_TYPE" in cls.__dict__:
            _REGISTRY[cls.EVENT_TYPE] = cls

    @classmethod
    def caused_by(cls, cause: Event, *, producer: str, **payload: Any) -> Self:
        """A new event in the same complaint and correlation chain as ``cause``."""
        return cls(
            event_type=cls.EVENT_TYPE,
            complaint_no=cause.complaint_no,
            branch_id=cause.branch_id,
            correlation_id=cause.correlation_id,
            causation_id=cause.event_id,
            producer=producer,
            **payload,
        )

    @property
    def key(self) -> bytes:
        return self.complaint_no.encode()

    def headers(self) -> dict[str, str]:
        """Kafka headers that let tools filter without decoding the body."""
        return {
            "event_type": self.event_type,
            "schema_version": str(self.schema_version),
            "correlation_id": self.correlation_id,
        }


def registered_event_types() -> dict[str, type[Event]]:
    return dict(_REGISTRY)


def current_version(model: type[Event]) -> int:
    """The schema version ``model`` writes."""
    version = model.model_fields["schema_version"].default
    assert isinstance(version, int)
    return version


def upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register the decorated function as the step from ``from_version`` of
    ``event_type``'s documents to the next version. A version without one changed
    additively: its documents read as the next version's unchanged."""

    def register(step: Upcaster) -> Upcaster:
        if (event_type, from_version) in _UPCASTERS:
            raise ValueError(f"{event_type} v{from_version} already has an upcaster")
        _UPCASTERS[(event_type, from_version)] = step
        return step

    return register


def upcast(document: dict[str, Any], model: type[Event]) -> dict[str, Any]:
    """``document`` as the version ``model`` reads; a later version's is left as it is
    (its added fields are ignored)."""
    version = document.get("schema_version", 1)
    target = current_version(model)
    if isinstance(version, bool) or not isinstance(version, int) or version >= target:
        return document
    for step_from in range(version, target):
        step = _UPCASTERS.get((model.EVENT_TYPE, step_from))
        if step is not None:
            document = step(dict(document))
    return {**document, "schema_version": target}


def encode_event(event: Event) -> bytes:
    return event.model_dump_json().encode()


def json_object(
    raw: bytes, what: str, error: type[RejectedMessageError] = RejectedMessageError
) -> dict[str, Any]:
    """``raw`` parsed as a JSON object, or ``error`` saying why it is not one."""
    try:
        # UTF-8 only (RFC 8259), a byte order mark tolerated: json.loads would take UTF-16
        # and UTF-32 bytes too.
        document = json.loads(raw.decode("utf-8-sig"))
    # ValueError covers bad UTF-8 and bad JSON, and also a number too long to convert
    # (over 4,300 digits); RecursionError, nesting deeper than the interpreter's stack.
    # Either left to propagate would make the message look transiently unprocessable.
    except (ValueError, RecursionError) as exc:
        raise error(f"not JSON: {str(exc)[:200]}") from exc
    if not isinstance(document, dict):
        raise error(f"{what} must be a JSON object")
    return document


def decode_event(raw: bytes) -> Event | None:
    """Decode an event; ``None`` for a well-formed event of a type this code does not know.

    Raises ``UndecodableEventError`` for anything that is not a valid event.
    """
    document = json_object(raw, "an event", UndecodableEventError)
    event_type = document.get("event_type")
    if not isinstance(event_type, str) or not event_type:
        raise UndecodableEventError("missing event_type")
    model = _REGISTRY.get(event_type)
    if model is None:
        return None
    try:
        return model.model_validate(upcast(document, model))
    except (KeyError, TypeError, ValueError) as exc:  # ValidationError, or an upcaster's
        raise UndecodableEventError(f"invalid {event_type}: {exc}") from exc
