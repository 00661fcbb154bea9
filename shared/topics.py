"""The Kafka topics of the platform: the one table every tool and service reads.

Each producing service owns one topic carrying its events, keyed by complaint
number so each complaint's events stay in order. Each consumed topic has a
dead-letter topic beside it for messages that cannot be processed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# Lets several environments (or test runs) share one cluster without seeing each other.
NAMESPACE = os.environ.get("COMPLAINTS_TOPIC_NAMESPACE", "complaints")

DEAD_LETTER_SUFFIX = ".dlq"


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    producer: str
    description: str

    @property
    def dead_letter(self) -> str:
        return self.name + DEAD_LETTER_SUFFIX


SUBMITTED = Topic(
    f"{NAMESPACE}.submitted", 6, "branch systems", "Raw complaint submissions from branch systems."
)
INTAKE = Topic(f"{NAMESPACE}.intake", 6, "intake", "Case life-cycle events from intake.")
ROUTING = Topic(f"{NAMESPACE}.routing", 6, "routing", "Assignments of department and person.")
SLA = Topic(f"{NAMESPACE}.sla", 6, "sla", "Deadline clocks, warnings, breaches, escalations.")
NOTIFY = Topic(f"{NAMESPACE}.notify", 6, "notify", "Notifications sent or failed.")

EVENT_TOPICS: tuple[Topic, ...] = (SUBMITTED, INTAKE, ROUTING, SLA, NOTIFY)

DEAD_LETTER_PARTITIONS = 3


def all_topic_partitions() -> dict[str, int]:
    """Every topic the platform needs, dead-letter topics included, with its partition count."""
    counts = {topic.name: topic.partitions for topic in EVENT_TOPICS}
    counts.update({topic.dead_letter: DEAD_LETTER_PARTITIONS for topic in EVENT_TOPICS})
    return counts
