"""Routing against the real broker and database: loads, explanations, exactly-once."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from services.routing.app import build_app as build_routing
from shared.contracts import ComplaintAssigned, decode_event
from shared.settings import REPO_ROOT
from shared.topics import Topics
from tests.contracts.golden import golden_samples
from tests.support.db import scalar
from tests.support.infra import Infra
from tests.support.intake import wait_for
from tests.support.kafka import read_records
from tests.support.services import running, settings_for


def received(
    complaint_no: str, category: str, branch: str = "hotel-demo", pack: str = "hotel", **fields: Any
) -> dict[str, Any]:
    return {
        **golden_samples()["ComplaintReceived"],
        "event_id": str(uuid.uuid4()),
        "complaint_no": complaint_no,
        "branch_id": branch,
        "pack": pack,
        "category": category,
        **fields,
    }


def case_event(kind: str, complaint_no: str, sequence: int) -> dict[str, Any]:
    return {
        **golden_samples()[kind],
        "event_id": str(uuid.uuid4()),
        "complaint_no": complaint_no,
        "sequence": sequence,
    }


async def produce(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for event in events:
            await producer.send(
                topic, json.dumps(event).encode(), key=event["complaint_no"].encode()
            )
        await producer.flush()
    finally:
        await producer.stop()


async def test_loads_follow_assignments_closures_and_reopenings_once_each(
    infra: Infra, database_url: str, topics: Topics
) -> None:
    bootstrap = infra.kafka_bootstrap_servers
    routing = build_routing(settings_for(infra, database_url, topics))
    async with running(routing):
        first = received("261122101", "unknown-category")
        second = received("261122102", "unknown-category")
        closed = case_event("ComplaintClosed", "261122101", 5)
        await produce(bootstrap, topics.intake.name, [first, first, second])

        async def two_assigned() -> bool:
            return await scalar(database_url, "SELECT count(*) FROM routing.assignments") == 2

        await wait_for(two_assigned)
        # Triage spreads the two between the front office's two people, one each.
        assert (
            await scalar(
                database_url, "SELECT count(DISTINCT assignee_id) FROM routing.assignments"
            )
            == 2
        )
        assert await scalar(database_url, "SELECT sum(open_cases) FROM routing.staff_load") == 2

        await produce(bootstrap, topics.intake.name, [closed, closed])

        async def one_open() -> bool:
            return await scalar(database_url, "SELECT sum(open_cases) FROM routing.staff_load") == 1

        await wait_for(one_open)
        reopened = case_event("ComplaintReopened", "261122101", 6)
        await produce(bootstrap, topics.intake.name, [reopened, reopened])

        async def two_open() -> bool:
            return await scalar(database_url, "SELECT sum(open_cases) FROM routing.staff_load") == 2

        await wait_for(two_open)
        await asyncio.sleep(1)
        assert await scalar(database_url, "SELECT sum(open_cases) FROM routing.staff_load") == 2

    records = await read_records(bootstrap, topics.routing.name, expected=2)
    assigned = [decode_event(r.value) for r in records]
    assert len(assigned) == 2
    decision = assigned[0]
    assert isinstance(decision, ComplaintAssigned)
    assert decision.rule == "triage"
    assert len(decision.pack_version) == 16
    assert {c.staff_id for c in decision.candidates} == {"fo-agent", "fo-supervisor"}
    assert "candidates" in decision.reason


async def test_cases_leave_someone_marked_unavailable_in_the_pack(
    infra: Infra, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    bootstrap = infra.kafka_bootstrap_servers
    pack_file = tmp_path / "hotel.yaml"
    original = (REPO_ROOT / "policy-packs" / "hotel.yaml").read_text(encoding="utf-8")
    pack_file.write_text(original, encoding="utf-8")
    routing = build_routing(settings_for(infra, database_url, topics, policy_packs_dir=tmp_path))
    async with running(routing):
        await produce(
            bootstrap,
            topics.intake.name,
            [received("261122201", "no-such-category"), received("261122202", "no-such-category")],
        )

        async def both_assigned() -> bool:
            return await scalar(database_url, "SELECT count(*) FROM routing.assignments") == 2

        await wait_for(both_assigned)
        away_line = "role: agent, supervisor: fo-supervisor"
        assert away_line in original
        pack_file.write_text(
            original.replace(away_line, away_line + ", available: false"), encoding="utf-8"
        )

        async def agent_has_none() -> bool:
            sql = "SELECT count(*) FROM routing.assignments WHERE assignee_id = 'fo-agent'"
            return await scalar(database_url, sql) == 0

        await wait_for(agent_has_none, timeout=30)
        loads = await scalar(
            database_url,
            "SELECT open_cases FROM routing.staff_load WHERE staff_id = 'fo-supervisor'",
        )
        assert loads == 2
        assert await scalar(database_url, "SELECT sum(open_cases) FROM routing.staff_load") == 2

    records = await read_records(bootstrap, topics.routing.name, expected=3)
    moved = [
        d for d in (decode_event(r.value) for r in records) if isinstance(d, ComplaintAssigned)
    ]
    rerouted = [d for d in moved if d.rule == "reroute:unavailable"]
    assert len(rerouted) == 1
    assert rerouted[0].previous_assignee is not None
    assert rerouted[0].previous_assignee.staff_id == "fo-agent"
    assert rerouted[0].assignee is not None
    assert rerouted[0].assignee.staff_id == "fo-supervisor"
