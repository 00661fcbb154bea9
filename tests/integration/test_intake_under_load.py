"""Many branches at once, retrying over both paths: every complaint once, numbered once."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

from aiokafka import AIOKafkaProducer

from services.routing.app import build_app as build_routing
from shared.contracts import ComplaintReceived, decode_event
from shared.topics import Topics
from tests.integration.test_intake_api import submission
from tests.support.db import scalar
from tests.support.infra import Infra
from tests.support.intake import hotel_with_branches, running_intake, wait_for
from tests.support.kafka import read_records
from tests.support.services import settings_for

BRANCHES = 20
PER_BRANCH = 50


async def test_twenty_branches_retrying_over_http_and_kafka_make_exactly_1000_complaints(
    infra: Infra, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    bootstrap = infra.kafka_bootstrap_servers
    branches = hotel_with_branches(tmp_path / "packs", BRANCHES)
    routing = build_routing(
        settings_for(infra, database_url, topics, policy_packs_dir=tmp_path / "packs")
    )
    routing_run = asyncio.create_task(routing.run())
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    chooser = random.Random(20261122)
    http_statuses: list[int] = []
    try:
        async with running_intake(database_url, bootstrap, topics, tmp_path / "packs") as client:

            async def send(branch: str, body: dict[str, object], over_http: bool) -> None:
                if over_http:
                    response = await client.post(
                        "/v1/complaints",
                        json={k: v for k, v in body.items() if k != "submission_id"},
                        headers={"Idempotency-Key": str(body["submission_id"])},
                    )
                    http_statuses.append(response.status_code)
                else:
                    await producer.send(
                        topics.submitted.name, json.dumps(body).encode(), key=branch.encode()
                    )

            async def branch_system(branch: str) -> None:
                for index in range(PER_BRANCH):
                    body = submission(
                        branch_id=branch,
                        submission_id=f"{branch}-{index:03d}",
                        description=f"第{index}号投诉 from {branch}",
                    )
                    await send(branch, body, chooser.random() < 0.5)
                    if chooser.random() < 0.5:  # a retry, over either path
                        await send(branch, body, chooser.random() < 0.5)

            await asyncio.gather(*(branch_system(branch) for branch in branches))
            await producer.flush()

            async def all_numbered() -> bool:
                count = await scalar(database_url, "SELECT count(*) FROM intake.complaints")
                return count >= BRANCHES * PER_BRANCH

            await wait_for(all_numbered, timeout=180)

            async def all_assigned() -> bool:
                count = await scalar(database_url, "SELECT count(*) FROM routing.assignments")
                return count >= BRANCHES * PER_BRANCH

            await wait_for(all_assigned, timeout=180)
            await asyncio.sleep(2)  # anything doubled would show up by now
    finally:
        await producer.stop()
        routing.exit()
        await routing_run

    total = BRANCHES * PER_BRANCH
    assert set(http_statuses) == {201}
    assert await scalar(database_url, "SELECT count(*) FROM intake.complaints") == total
    assert (
        await scalar(database_url, "SELECT count(DISTINCT complaint_no) FROM intake.complaints")
        == total
    )
    assert await scalar(database_url, "SELECT count(*) FROM intake.submissions") == total
    ordinals = await scalar(database_url, "SELECT max(ordinal) FROM intake.complaints")
    assert ordinals == total  # no gaps: 1..1000
    assert await scalar(database_url, "SELECT count(*) FROM routing.assignments") == total
    records = await read_records(bootstrap, topics.intake.name, expected=total * 2, timeout=30)
    received = [
        event
        for event in (decode_event(record.value) for record in records)
        if isinstance(event, ComplaintReceived)
    ]
    assert len({event.complaint_no for event in received}) == total
    dead = await read_records(bootstrap, topics.submitted.dead_letter, expected=0, timeout=1)
    assert dead == []
