"""Branch systems submitting over Kafka: the same validation and outcome as over HTTP;
and a branch flooding the HTTP front door."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from shared.topics import Topics
from tests.integration.test_intake_api import submission
from tests.support.db import scalar
from tests.support.infra import Infra
from tests.support.intake import hotel_with_branches, running_intake, wait_for
from tests.support.kafka import read_records


async def _produce(bootstrap: str, topic: str, *messages: bytes | dict[str, Any]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for message in messages:
            raw = message if isinstance(message, bytes) else json.dumps(message).encode()
            await producer.send_and_wait(topic, raw, key=b"hotel-demo")
    finally:
        await producer.stop()


async def test_a_kafka_submission_is_numbered_and_its_outcome_published(
    infra: Infra, database_url: str, topics: Topics
) -> None:
    bootstrap = infra.kafka_bootstrap_servers
    async with running_intake(database_url, bootstrap, topics) as client:
        first = submission(submission_id="pms-1001")
        await _produce(bootstrap, topics.submitted.name, first, first)

        async def one_complaint() -> bool:
            return await scalar(database_url, "SELECT count(*) FROM intake.complaints") == 1

        await wait_for(one_complaint)
        outcomes = await read_records(bootstrap, topics.submission_outcomes.name, expected=1)
        accepted = json.loads(outcomes[0].value)
        assert len(outcomes) == 1
        assert outcomes[0].key == b"hotel-demo"
        assert accepted["event_type"] == "SubmissionAccepted"
        assert accepted["submission_id"] == "pms-1001"
        assert accepted["duplicate"] is False
        number = accepted["complaint_no"]

        # The branch retries over HTTP with the same id: the same complaint comes back.
        retried = await client.post(
            "/v1/complaints", json=submission(), headers={"Idempotency-Key": "pms-1001"}
        )
        assert retried.status_code == 201
        assert retried.json()["complaint_no"] == number
        view = (await client.get(f"/v1/complaints/{number}")).json()
        assert view["submission_id"] == "pms-1001"
    assert await scalar(database_url, "SELECT count(*) FROM intake.complaints") == 1


async def test_bad_kafka_submissions_are_rejected_dead_lettered_and_the_partition_flows(
    infra: Infra, database_url: str, topics: Topics
) -> None:
    bootstrap = infra.kafka_bootstrap_servers
    async with running_intake(database_url, bootstrap, topics):
        await _produce(
            bootstrap,
            topics.submitted.name,
            b"\xff not json",
            b'{"submission_id": ' + b"9" * 5000 + b"}",
            b"[" * 100_000 + b"]" * 100_000,
            submission(submission_id="pms-2001", category="weather"),
            submission(submission_id="pms-2002", customer={"name": "x", "type": "alien"}),
            submission(),  # no submission_id: Kafka needs one
            submission(submission_id="pms-2003"),
        )

        async def accepted_last() -> bool:
            return await scalar(database_url, "SELECT count(*) FROM intake.complaints") == 1

        await wait_for(accepted_last)
        outcomes = await read_records(bootstrap, topics.submission_outcomes.name, expected=3)
        dead = await read_records(bootstrap, topics.submitted.dead_letter, expected=6)

    by_id = {json.loads(r.value)["submission_id"]: json.loads(r.value) for r in outcomes}
    assert set(by_id) == {"pms-2001", "pms-2002", "pms-2003"}
    assert by_id["pms-2001"]["event_type"] == "SubmissionRejected"
    assert by_id["pms-2001"]["errors"][0]["loc"] == ["category"]
    assert "facilities" in by_id["pms-2001"]["errors"][0]["msg"]
    assert {tuple(e["loc"]) for e in by_id["pms-2002"]["errors"]} == {("customer", "type")}
    assert by_id["pms-2003"]["event_type"] == "SubmissionAccepted"
    assert len(dead) == 6
    headers = [{k: v.decode() for k, v in record.headers} for record in dead]
    assert [h["dlq.original_offset"] for h in headers] == ["0", "1", "2", "3", "4", "5"]
    assert "not JSON" in headers[0]["dlq.error"]
    assert "not JSON: Exceeds the limit" in headers[1]["dlq.error"]
    assert "not JSON: maximum recursion depth" in headers[2]["dlq.error"]
    assert "category" in headers[3]["dlq.error"]
    assert "submission_id: required on Kafka" in headers[5]["dlq.error"]
    assert all(h["dlq.original_topic"] == topics.submitted.name for h in headers)


async def test_a_flooding_branch_is_answered_429_and_the_others_are_not(
    infra: Infra, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    flooding, quiet = hotel_with_branches(tmp_path / "packs", 2)
    async with running_intake(
        database_url,
        infra.kafka_bootstrap_servers,
        topics,
        tmp_path / "packs",
        intake_branch_submissions_per_minute=5,
    ) as client:
        flood = [
            await client.post("/v1/complaints", json=submission(branch_id=flooding))
            for _ in range(8)
        ]
        others = [
            await client.post("/v1/complaints", json=submission(branch_id=quiet)) for _ in range(3)
        ]
        # Over Kafka a branch is not refused: its partition's backlog waits its turn.
        await _produce(
            infra.kafka_bootstrap_servers,
            topics.submitted.name,
            submission(branch_id=flooding, submission_id="pms-flood-9"),
        )

        async def all_recorded() -> bool:
            return await scalar(database_url, "SELECT count(*) FROM intake.complaints") == 9

        await wait_for(all_recorded)

    assert [r.status_code for r in flood] == [201] * 5 + [429] * 3
    refused = flood[-1]
    assert refused.headers["Retry-After"] == "12"
    assert "over its 5 submissions a minute" in refused.json()["detail"]
    assert [r.status_code for r in others] == [201] * 3
    count = "SELECT count(*) FROM intake.complaints WHERE branch_id = '{}'"
    assert await scalar(database_url, count.format(flooding)) == 6
    assert await scalar(database_url, count.format(quiet)) == 3
