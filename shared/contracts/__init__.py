"""Event contracts: one module per producing service, one envelope for all.

Consumers depend on these modules, never on another service's code.
"""

from shared.contracts.base import Event, UndecodableEventError, decode_event, encode_event
from shared.contracts.intake import ComplaintReceived
from shared.contracts.notify import NotificationFailed, NotificationSent
from shared.contracts.routing import ComplaintAssigned
from shared.contracts.sla import ClockStarted

# Which service produces which events: each producer's topic carries exactly these.
EVENTS_BY_PRODUCER: dict[str, tuple[type[Event], ...]] = {
    "intake": (ComplaintReceived,),
    "routing": (ComplaintAssigned,),
    "sla": (ClockStarted,),
    "notify": (NotificationSent, NotificationFailed),
}

__all__ = [
    "EVENTS_BY_PRODUCER",
    "ClockStarted",
    "ComplaintAssigned",
    "ComplaintReceived",
    "Event",
    "NotificationFailed",
    "NotificationSent",
    "UndecodableEventError",
    "decode_event",
    "encode_event",
]
