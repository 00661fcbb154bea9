"""Backup and restore (deploy/local/backup.py) on the real broker and database, with every
service running: what the backup held all comes back, and the restored platform resumes
from the restored offsets, handling what it had not yet seen exactly once.

The story: complaints arrive (over HTTP and Kafka) and are handled; a backup is taken,
and between its reading of the offsets and its database snapshot more complaints arrive
and are handled in full (so the snapshot is ahead of the offsets, as in any online
backup); then the platform stops with the snapshot, as if its database were lost. While
it is down, branch systems go on submitting over Kafka. The backup is restored into a new
database with the groups' offsets, the services start on it, and then: every table holds
the manifest's rows; the window's events, delivered again, change nothing; the later
submissions are numbered, routed, clocked, acknowledged and counted once each.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from services.notify.app import build_app as build_notify
from services.notify.settings import NotifySettings
from services.reporting.settings import ReportingSettings
from services.routing.app import build_app as build_routing
from services.sla.app import build_app as build_sla
from shared.db.urls import with_database
from shared.settings import ServiceSettings
from shared.topics import Topics, consumer_group
from tests.integration.test_intake_api import submission
from tests.support.backup import backup_tool, committed_offsets, table_counts, whole_topic
from tests.support.infra import Infra
from tests.support.intake import running_intake, wait_for
from tests.support.processes import REPO
from tests.support.reporting import reporting_client
from tests.support.services import running
from tests.support.sinks import MailSink, mail_sink

SCHEMAS = ("intake", "notify", "reporting", "routing", "sla")
CHANNELS = ("phone", "web", "email", "walk_in")
# (over HTTP, over Kafka) before the backup, in the backup's window, and while down.
BEFORE = (10, 5)
WINDOW = (6, 4)
WHILE_DOWN = (0, 8)
TOTAL = sum(BEFORE) + sum(WINDOW) + sum(WHILE_DOWN)


def test_the_tool_finds_every_schema_and_consumer_group_in_the_code() -> None:
    """A service or group added later is backed up without anyone editing the tool."""
    found = backup_tool().discover_platform()
    assert found.schemas == SCHEMAS
    declared = {
        match
        for path in (REPO / "services").rglob("*.py")
        for match in re.findall(r'group_id="([^"]+)"', path.read_text(encoding="utf-8"))
    }
    assert set(found.groups) == declared


class Complaints:
    """What was submitted, so the end state can be checked against it."""

    def __init__(self, bootstrap: str, topics: Topics) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.emails: list[str] = []
        self.channels: Counter[str] = Counter()

    def body(self) -> dict[str, Any]:
        index = len(self.emails)
        self.emails.append(f"guest{index}.{uuid.uuid4().hex[:6]}@example.com")
        channel = CHANNELS[index % len(CHANNELS)]
        self.channels[channel] += 1
        customer = {"name": f"客户{index}", "email": self.emails[-1], "type": "in_house_guest"}
        return submission(channel=channel, customer=customer, description=f"第{index}号投诉")

    async def submit(
        self, intake: httpx.AsyncClient | None, over_http: int, over_kafka: int
    ) -> None:
        for _ in range(over_http):
            assert intake is not None
            answer = await intake.post("/v1/complaints", json=self.body())
            assert answer.status_code == 201, answer.text
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap)
        await producer.start()
        try:
            for _ in range(over_kafka):
                body = {**self.body(), "submission_id": f"pms-{len(self.emails)}"}
                await producer.send_and_wait(
                    self.topics.submitted.name, json.dumps(body).encode(), key=b"hotel-demo"
                )
        finally:
            await producer.stop()


@asynccontextmanager
async def platform(
    infra: Infra, database_url: str, topics: Topics, mail: MailSink
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """All five services on ``database_url``: intake's and reporting's HTTP clients."""
    common: dict[str, Any] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": infra.kafka_bootstrap_servers,
        "complaints_topic_namespace": topics.namespace,
    }
    notify = NotifySettings(
        **common, smtp_port=mail.port, poll_seconds=0.1, status_checks=0, retry_base_seconds=0.2
    )
    async with (
        running_intake(database_url, infra.kafka_bootstrap_servers, topics) as intake,
        running(
            build_routing(ServiceSettings(**common)),
            build_sla(ServiceSettings(**common)),
            build_notify(notify),
        ),
        reporting_client(ReportingSettings(**common)) as reporting,
    ):
        yield intake, reporting


PROGRESS = {
    "complaints": "SELECT count(*) FROM intake.complaints",
    "routed_in_intake": "SELECT count(*) FROM intake.complaints WHERE department IS NOT NULL",
    "assignments": "SELECT count(*) FROM routing.assignments",
    "clocked": "SELECT count(DISTINCT complaint_no) FROM sla.clocks",
    "acknowledged": """SELECT count(DISTINCT complaint_no) FROM notify.notifications
                       WHERE template = 'acknowledgement' AND status = 'sent'""",
    "cases": """SELECT count(*) FROM reporting.cases
                WHERE received_at IS NOT NULL AND department IS NOT NULL""",
}
BUSY = {
    "unsent": """SELECT count(*) FROM notify.notifications
                 WHERE status IN ('queued', 'sending', 'handing_over')""",
    "unpublished": """SELECT (SELECT count(*) FROM intake.outbox WHERE published_at IS NULL)
                           + (SELECT count(*) FROM routing.outbox WHERE published_at IS NULL)
                           + (SELECT count(*) FROM sla.outbox WHERE published_at IS NULL)
                           + (SELECT count(*) FROM notify.outbox WHERE published_at IS NULL)""",
    "processed": """SELECT (SELECT count(*) FROM intake.processed_events)
                         + (SELECT count(*) FROM routing.processed_events)
                         + (SELECT count(*) FROM sla.processed_events)
                         + (SELECT count(*) FROM notify.processed_events)
                         + (SELECT count(*) FROM reporting.processed_events)""",
}


async def _read(database_url: str, queries: dict[str, str]) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        return {name: int(await conn.fetchval(sql)) for name, sql in queries.items()}
    finally:
        await conn.close()


async def settled(database_url: str, complaints: int) -> None:
    """Every complaint through every service, nothing waiting, and nothing more happening."""

    async def done() -> bool:
        progress = await _read(database_url, PROGRESS)
        if any(count != complaints for count in progress.values()):
            return False
        before = await _read(database_url, BUSY)
        if before["unsent"] or before["unpublished"]:
            return False
        await asyncio.sleep(1.5)
        return await _read(database_url, BUSY) == before

    await wait_for(done, timeout=60)


async def test_a_restored_backup_loses_nothing_and_resumes_exactly_once(
    infra: Infra, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    tool = backup_tool()
    bootstrap = infra.kafka_bootstrap_servers
    complaints = Complaints(bootstrap, topics)
    restored_url = with_database(infra.database_url, f"t_{uuid.uuid4().hex[:12]}")
    backup_dir = tmp_path / "backup"
    groups = tool.discover_platform().groups
    group_topics = {
        consumer_group(topics.namespace, g): [topics.by_role(r).name for r in roles]
        for g, roles in groups.items()
    }
    partitions = {topic.name: topic.partitions for topic in topics.all()}
    elsewhere = with_database(infra.database_url, f"t_{uuid.uuid4().hex[:12]}")
    try:
        async with mail_sink() as mail:
            # Before the backup: the platform runs and handles what arrives.
            services = AsyncExitStack()
            intake, _ = await services.enter_async_context(
                platform(infra, database_url, topics, mail)
            )
            await complaints.submit(intake, *BEFORE)
            await settled(database_url, sum(BEFORE))

            async def in_the_window() -> None:
                # After the offsets are read, before the snapshot: handled in full, so the
                # snapshot holds this work while the backed-up offsets do not yet.
                await complaints.submit(intake, *WINDOW)
                await settled(database_url, sum(BEFORE) + sum(WINDOW))
                await services.aclose()  # the platform stops with the snapshot

            endpoints = tool.Endpoints(database_url, bootstrap, topics.namespace)
            manifest = await tool.backup(backup_dir, endpoints, before_snapshot=in_the_window)

            # The manifest describes the stopped database exactly, every schema of it.
            original = await table_counts(database_url, SCHEMAS)
            assert manifest["schemas"] == list(SCHEMAS)
            assert manifest["tables"] == original
            assert {name.split(".")[0] for name in original} == set(SCHEMAS)
            assert original["intake.complaints"] == sum(BEFORE) + sum(WINDOW)
            # The window is real: each group consumed past the offsets the backup kept.
            for group, names in group_topics.items():
                kept = manifest["groups"][group]["offsets"]
                now = await committed_offsets(bootstrap, group, names)
                assert sum(map(sum_of, kept.values())) < sum(map(sum_of, now.values())), group

            # The platform is down; branch systems go on submitting over Kafka.
            await complaints.submit(None, *WHILE_DOWN)

            report = await tool.restore(
                backup_dir, tool.Endpoints(restored_url, bootstrap, topics.namespace)
            )
            assert report["database_created"] is True
            # Nothing the backup held is lost.
            assert await table_counts(restored_url, SCHEMAS) == manifest["tables"]
            # Each group is back where the backup found it (the start where it had not
            # committed yet), not where it stopped.
            for group, names in group_topics.items():
                kept = manifest["groups"][group]["offsets"]
                restored = await committed_offsets(bootstrap, group, names)
                for name in names:
                    for partition in range(partitions[name]):
                        wanted = kept[name].get(str(partition), 0)
                        assert restored[name].get(str(partition)) == wanted, (group, name)

            # The services on the restored database.
            async with platform(infra, restored_url, topics, mail) as (_, reporting):
                await settled(restored_url, TOTAL)
                summary = (await reporting.get("/v1/reports/summary")).json()
                statuses = await status_counts(restored_url)

            # A backup the platform has run on since is not restored without --rewind.
            with pytest.raises(tool.BackupError, match="since this backup"):
                await tool.restore(
                    backup_dir,
                    tool.Endpoints(elsewhere, bootstrap, topics.namespace),
                )

        # Reporting's counts are exact: every complaint once, as submitted.
        assert summary["total"] == TOTAL
        assert summary["by_channel"] == dict(complaints.channels)
        assert summary["by_branch"] == {"hotel-demo": TOTAL}
        assert summary["by_status"] == statuses

        # Each customer was acknowledged once, across both lives of the platform.
        for address in complaints.emails:
            assert len(mail.to(address)) == 1, address

        # Exactly once on the topics: one complaint per number and submission, one routing
        # decision per complaint, one clock of each name, one of each notification.
        await check_topics(bootstrap, topics)

        # The documented check of a backup: restored into a scratch database, compared.
        verified = await tool.verify(backup_dir, endpoints)
        assert verified["rows"] == sum(manifest["tables"].values())
    finally:
        for url in (restored_url, elsewhere):
            await tool.drop_database(infra.database_url, url.rsplit("/", 1)[1])


def sum_of(partitions: dict[str, int]) -> int:
    return sum(partitions.values())


async def status_counts(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT status, count(*) AS n FROM intake.complaints GROUP BY 1")
        return {row["status"]: int(row["n"]) for row in rows}
    finally:
        await conn.close()


async def check_topics(bootstrap: str, topics: Topics) -> None:
    def distinct_ids(events: list[dict[str, Any]], event_type: str, *key: str) -> Counter[Any]:
        seen = {
            (tuple(event[k] for k in key), event["event_id"])
            for event in events
            if event.get("event_type") == event_type
        }
        return Counter(k for k, _ in seen)

    received = distinct_ids(
        await whole_topic(bootstrap, topics.intake), "ComplaintReceived", "complaint_no"
    )
    assert len(received) == TOTAL
    assert set(received.values()) == {1}
    outcomes = distinct_ids(
        await whole_topic(bootstrap, topics.submission_outcomes),
        "SubmissionAccepted",
        "submission_id",
    )
    assert len(outcomes) == BEFORE[1] + WINDOW[1] + WHILE_DOWN[1]
    assert set(outcomes.values()) == {1}
    assigned = distinct_ids(
        await whole_topic(bootstrap, topics.routing), "ComplaintAssigned", "complaint_no"
    )
    assert len(assigned) == TOTAL
    assert set(assigned.values()) == {1}
    clocks = distinct_ids(
        await whole_topic(bootstrap, topics.sla), "ClockStarted", "complaint_no", "name"
    )
    numbers = {number for (number,) in received}
    assert {number for number, _ in clocks} == numbers
    assert set(clocks.values()) == {1}
    sent = distinct_ids(
        await whole_topic(bootstrap, topics.notify),
        "NotificationSent",
        "complaint_no",
        "channel",
        "recipient_masked",
        "template",
    )
    assert {number for number, *_ in sent} == numbers
    assert set(sent.values()) == {1}
