"""The Kafka topics of the platform: the one table every tool and service reads.

Each producing service owns one topic carrying its events, keyed by complaint
number so each complaint's events stay in order. Each consumed topic has a
dead-letter topic beside it for messages that cannot be processed. Topic names
start with a namespace (``COMPLAINTS_TOPIC_NAMESPACE``, default ``complaints``)
so several environments, or test runs, can share one cluster.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

DEAD_LETTER_SUFFIX = ".dlq"
DEAD_LETTER_PARTITIONS = 3
NAMESPACE = os.environ.get("COMPLAINTS_TOPIC_NAMESPACE", "complaints")


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    producer: str
    description: str
    key: str = "the complaint number"

    @property
    def role(self) -> str:
        """The topic's name without its namespace: what it carries."""
        return self.name.split(".", 1)[1]

    @property
    def dead_letter(self) -> str:
        return self.name + DEAD_LETTER_SUFFIX


def event_topics(namespace: str) -> tuple[Topic, ...]:
    return (
        Topic(
            f"{namespace}.submitted",
            6,
            "branch systems",
            "Complaints submitted by branch systems.",
            key="the branch id",
        ),
        Topic(
            f"{namespace}.submission-outcomes",
            6,
            "intake",
            "The outcome of each Kafka submission.",
            key="the branch id",
        ),
        Topic(f"{namespace}.intake", 6, "intake", "Case life-cycle events from intake."),
        Topic(f"{namespace}.routing", 6, "routing", "Assignments of department and person."),
        Topic(f"{namespace}.sla", 6, "sla", "Deadline clocks, warnings, breaches, escalations."),
        Topic(f"{namespace}.notify", 6, "notify", "Notifications sent or failed."),
    )


EVENT_TOPICS = event_topics(NAMESPACE)
SUBMITTED, SUBMISSION_OUTCOMES, INTAKE, ROUTING, SLA, NOTIFY = EVENT_TOPICS


def all_topic_partitions(namespace: str = NAMESPACE) -> dict[str, int]:
    """Every topic the platform needs, dead-letter topics included, with its partition count."""
    topics = event_topics(namespace)
    counts = {topic.name: topic.partitions for topic in topics}
    counts.update({topic.dead_letter: DEAD_LETTER_PARTITIONS for topic in topics})
    return counts
