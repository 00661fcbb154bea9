"""The Kafka topics of the platform: the one table every tool and service reads.

Each producing service owns one topic carrying its events, keyed by complaint
number so each complaint's events stay in order. Each consumed topic has a
dead-letter topic beside it for messages that cannot be processed. Topic names
start with a namespace (each service's ``COMPLAINTS_TOPIC_NAMESPACE`` setting, default
``complaints``), and so do consumer groups outside the default one (``consumer_group``),
so several environments, or test runs, can share one cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

DEAD_LETTER_SUFFIX = ".dlq"
DEAD_LETTER_PARTITIONS = 3
DEFAULT_NAMESPACE = "complaints"


# The consumer groups each service joins: the group_id= of its subscriptions
# (tests/unit/test_kafka_security.py checks this against the code). The ACLs, the fault
# harness and KEDA's triggers name them from here.
SERVICE_GROUPS: dict[str, tuple[str, ...]] = {
    "intake": ("intake", "intake-submissions"),
    "routing": ("routing",),
    "sla": ("sla",),
    "notify": ("notify",),
    "reporting": ("reporting",),
}


def consumer_group(namespace: str, name: str) -> str:
    """The consumer group a service's ``name`` (``routing``, ``intake-submissions``) joins
    in ``namespace``: the bare name in the default namespace, where running deployments
    keep their offsets under it, else prefixed, so that two environments sharing a
    cluster never share a group (nor its rebalances, lag or ACLs)."""
    return name if namespace == DEFAULT_NAMESPACE else f"{namespace}.{name}"


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
    def namespace(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def dead_letter(self) -> str:
        return self.name + DEAD_LETTER_SUFFIX


@dataclass(frozen=True)
class Topics:
    """The platform's topics in one namespace."""

    submitted: Topic
    submission_outcomes: Topic
    intake: Topic
    routing: Topic
    sla: Topic
    notify: Topic
    record_reads: Topic

    @classmethod
    def in_namespace(cls, namespace: str = DEFAULT_NAMESPACE) -> Topics:
        return cls(
            submitted=Topic(
                f"{namespace}.submitted",
                6,
                "branch systems",
                "Complaints submitted by branch systems.",
                key="the branch id",
            ),
            submission_outcomes=Topic(
                f"{namespace}.submission-outcomes",
                6,
                "intake",
                "The outcome of each Kafka submission.",
                key="the branch id",
            ),
            intake=Topic(f"{namespace}.intake", 6, "intake", "Case life-cycle events from intake."),
            routing=Topic(
                f"{namespace}.routing", 6, "routing", "Assignments of department and person."
            ),
            sla=Topic(
                f"{namespace}.sla", 6, "sla", "Deadline clocks, warnings, breaches, escalations."
            ),
            notify=Topic(f"{namespace}.notify", 6, "notify", "Notifications sent or failed."),
            record_reads=Topic(
                f"{namespace}.record-reads",
                3,
                "intake",
                "The audit trail of customer-record reads (seed 004).",
            ),
        )

    @property
    def namespace(self) -> str:
        return self.intake.name.rsplit(".", 1)[0]

    def all(self) -> tuple[Topic, ...]:
        return tuple(getattr(self, field.name) for field in fields(self))

    def by_role(self, role: str) -> Topic:
        return next(topic for topic in self.all() if topic.role == role)


def partition_counts(setting: str) -> dict[str, int]:
    """``COMPLAINTS_TOPIC_PARTITIONS``: partition counts by topic role, overriding the
    defaults above when topics are created, e.g. ``"intake=12 routing=12"``."""
    roles = {topic.role for topic in Topics.in_namespace().all()}
    counts: dict[str, int] = {}
    for item in setting.replace(",", " ").split():
        role, _, count = item.partition("=")
        if role not in roles:
            raise ValueError(f"no topic {role!r} to size: one of {', '.join(sorted(roles))}")
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"{item!r}: give a whole number of partitions, at least 1")
        counts[role] = int(count)
    return counts


def all_topic_partitions(
    namespace: str = DEFAULT_NAMESPACE, sizes: Mapping[str, int] | None = None
) -> dict[str, int]:
    """Every topic the platform needs, dead-letter topics included, with its partition
    count: the default, or ``sizes[role]`` (``partition_counts``)."""
    topics = Topics.in_namespace(namespace).all()
    sizes = sizes or {}
    counts = {topic.name: sizes.get(topic.role, topic.partitions) for topic in topics}
    counts.update({topic.dead_letter: DEAD_LETTER_PARTITIONS for topic in topics})
    return counts


def service_groups(namespace: str, service: str) -> tuple[str, ...]:
    """The consumer groups ``service`` joins in ``namespace``, as the broker names them."""
    return tuple(consumer_group(namespace, group) for group in SERVICE_GROUPS[service])
