"""Event contracts: one module per producing service, one envelope for all.

Consumers depend on these modules, never on another service's code.
"""

from pydantic import BaseModel

from shared.contracts import intake, notify, sla
from shared.contracts.audit import CustomerRecordRead
from shared.contracts.base import (
    Event,
    RejectedMessageError,
    UndecodableEventError,
    current_version,
    decode_event,
    encode_event,
    registered_event_types,
    upcaster,
)
from shared.contracts.intake import CaseEvent, CaseStatus, ComplaintReceived
from shared.contracts.notify import (
    NotificationDelivered,
    NotificationEvent,
    NotificationFailed,
    NotificationQueued,
    NotificationSent,
    NotificationUnconfirmed,
)
from shared.contracts.routing import ComplaintAssigned
from shared.contracts.sla import (
    ClockBreached,
    ClockEvent,
    ClockPaused,
    ClockRecomputed,
    ClockResumed,
    ClockStarted,
    ClockStopped,
    ClockWarning,
    EscalationRaised,
    ReturnVisitDue,
)
from shared.contracts.submissions import SubmissionAccepted, SubmissionRejected, SubmitComplaint

# What each topic carries, by the topic's role (its name without the namespace).
MESSAGES_BY_TOPIC_ROLE: dict[str, tuple[type[BaseModel], ...]] = {
    "submitted": (SubmitComplaint,),
    "submission-outcomes": (SubmissionAccepted, SubmissionRejected),
    "intake": tuple(
        model for model in registered_event_types().values() if model.__module__ == intake.__name__
    ),
    "routing": (ComplaintAssigned,),
    "record-reads": (CustomerRecordRead,),
    "sla": tuple(
        model for model in registered_event_types().values() if model.__module__ == sla.__name__
    ),
    "notify": tuple(
        model for model in registered_event_types().values() if model.__module__ == notify.__name__
    ),
}

__all__ = [
    "MESSAGES_BY_TOPIC_ROLE",
    "CaseEvent",
    "CaseStatus",
    "ClockBreached",
    "ClockEvent",
    "ClockPaused",
    "ClockRecomputed",
    "ClockResumed",
    "ClockStarted",
    "ClockStopped",
    "ClockWarning",
    "ComplaintAssigned",
    "ComplaintReceived",
    "CustomerRecordRead",
    "EscalationRaised",
    "Event",
    "NotificationDelivered",
    "NotificationEvent",
    "NotificationFailed",
    "NotificationQueued",
    "NotificationSent",
    "NotificationUnconfirmed",
    "RejectedMessageError",
    "ReturnVisitDue",
    "SubmissionAccepted",
    "SubmissionRejected",
    "SubmitComplaint",
    "UndecodableEventError",
    "current_version",
    "decode_event",
    "encode_event",
    "registered_event_types",
    "upcaster",
]
