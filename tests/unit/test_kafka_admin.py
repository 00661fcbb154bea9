"""Topic creation's options (shared/kafka_admin.py) without a broker: what a new topic is
created with, and the command line the deployment's topics job runs
(docs/operations.md, "Deployment")."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.admin import NewPartitions, NewTopic

from shared import kafka_admin
from shared.kafka_security import KafkaSecurity
from shared.settings import ServiceSettings
from shared.topics import all_topic_partitions


@pytest.fixture(autouse=True)
def no_kafka_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command reads its settings from the environment: start from the defaults."""
    for name in list(ServiceSettings.model_fields):
        monkeypatch.delenv(name.upper(), raising=False)


class FakeAdmin:
    """Answers describe_topics with ``existing`` and records what it is asked to create."""

    def __init__(self, existing: dict[str, int]) -> None:
        self.existing = existing
        self.created: list[NewTopic] = []
        self.grown: dict[str, NewPartitions] = {}

    async def describe_topics(self) -> list[dict[str, Any]]:
        return [
            {"topic": name, "error_code": 0, "partitions": [{}] * count}
            for name, count in self.existing.items()
        ]

    async def create_topics(self, topics: list[NewTopic]) -> SimpleNamespace:
        self.created += topics
        return SimpleNamespace(topic_errors=[(topic.name, 0, None) for topic in topics])

    async def create_partitions(self, grown: dict[str, NewPartitions]) -> None:
        self.grown.update(grown)


async def test_new_topics_get_the_replication_and_configs_existing_ones_keep_theirs() -> None:
    admin = FakeAdmin({"c.intake": 6, "c.routing": 3})
    wanted = {"c.intake": 6, "c.routing": 6, "c.sla": 6}

    created, grown = await kafka_admin._ensure_once(
        admin,  # type: ignore[arg-type]
        wanted,
        3,
        {"min.insync.replicas": "2"},
        True,
    )

    assert (created, grown) == (1, 1)
    [topic] = admin.created
    assert (topic.name, topic.num_partitions, topic.replication_factor) == ("c.sla", 6, 3)
    assert topic.topic_configs == {"min.insync.replicas": "2"}
    assert admin.grown["c.routing"].total_count == 6


async def test_without_grow_a_short_topic_is_named_and_left_alone() -> None:
    admin = FakeAdmin({"c.intake": 6, "c.routing": 3})
    with pytest.raises(kafka_admin.TopicsTooSmallError, match=r"c\.routing \(3 < 6\)"):
        await kafka_admin._ensure_once(
            admin,  # type: ignore[arg-type]
            {"c.intake": 6, "c.routing": 6},
            1,
            {},
            False,
        )
    assert admin.grown == {}


def run_main(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> dict[str, Any]:
    calls: dict[str, Any] = {}

    async def fake_ensure_topics(
        bootstrap: str, wanted: dict[str, int], **kwargs: Any
    ) -> tuple[int, int]:
        calls.update(bootstrap=bootstrap, wanted=wanted, **kwargs)
        return len(wanted), 0

    monkeypatch.setattr(kafka_admin, "ensure_topics", fake_ensure_topics)
    assert kafka_admin.main(argv) == 0
    return calls


def test_the_command_creates_every_topic_of_the_namespace_with_the_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9094,k2:9094,k3:9094")
    monkeypatch.setenv("COMPLAINTS_TOPIC_NAMESPACE", "prod")

    calls = run_main(monkeypatch, ["--replication-factor", "3", "--min-insync-replicas", "2"])

    assert calls["bootstrap"] == "k1:9094,k2:9094,k3:9094"
    assert calls["wanted"] == all_topic_partitions("prod")
    assert calls["replication_factor"] == 3
    assert calls["topic_configs"] == {"min.insync.replicas": "2"}
    assert calls["security"] == KafkaSecurity()
    assert calls["grow"] is False  # a live topic grows only through shared.partitions


def test_the_command_sizes_topics_by_the_partitions_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COMPLAINTS_TOPIC_PARTITIONS", "intake=12")
    assert run_main(monkeypatch, [])["wanted"]["complaints.intake"] == 12
    monkeypatch.setenv("COMPLAINTS_TOPIC_PARTITIONS", "intaek=12")
    assert kafka_admin.main([]) == 2
    assert "no topic 'intaek'" in capsys.readouterr().err


def test_the_command_logs_in_as_the_user_its_settings_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    password = tmp_path / "password"
    password.write_text("admin-secret\n")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "admin")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD_FILE", str(password))

    security = run_main(monkeypatch, [])["security"]

    assert (security.protocol, security.username) == ("SASL_SSL", "admin")
    assert security.password.get_secret_value() == "admin-secret"


def test_without_options_topics_get_one_replica_and_the_brokers_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = run_main(monkeypatch, [])

    assert (calls["replication_factor"], calls["topic_configs"]) == (1, {})


@pytest.mark.parametrize(
    "argv",
    [
        ["--replication-factor", "0"],
        ["--replication-factor", "1", "--min-insync-replicas", "2"],
        ["--replication-factor", "3", "--min-insync-replicas", "0"],
    ],
)
def test_options_no_write_could_satisfy_are_refused(
    monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as refused:
        run_main(monkeypatch, argv)
    assert refused.value.code == 2


def test_inconsistent_security_settings_are_refused_before_connecting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "admin")  # with PLAINTEXT

    async def never(*args: Any, **kwargs: Any) -> tuple[int, int]:
        raise AssertionError("connected")

    monkeypatch.setattr(kafka_admin, "ensure_topics", never)
    assert kafka_admin.main([]) == 2
    assert "KAFKA_SECURITY_PROTOCOL" in capsys.readouterr().err
