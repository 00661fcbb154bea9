"""Intake killed with SIGKILL under load and restarted: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx

from services.routing.app import build_app as build_routing
from shared.contracts import ComplaintReceived, decode_event
from shared.topics import Topics
from tests.integration.test_intake_api import submission
from tests.support.auth import branch_headers
from tests.support.db import scalar
from tests.support.infra import Infra
from tests.support.intake import wait_for
from tests.support.kafka import read_records
from tests.support.processes import Platform, free_port, platform_env
from tests.support.services import settings_for

SUBMISSIONS = 300
CLIENTS = 10


async def test_intake_killed_mid_load_loses_and_doubles_nothing(
    infra: Infra, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    port = free_port()
    platform = Platform(
        platform_env(
            KAFKA_BOOTSTRAP_SERVERS=infra.kafka_bootstrap_servers,
            DATABASE_URL=database_url,
            COMPLAINTS_TOPIC_NAMESPACE=topics.namespace,
            INTAKE_PORT=str(port),
        ),
        tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    routing = build_routing(settings_for(infra, database_url, topics))
    routing_run = asyncio.create_task(routing.run())
    platform.start("intake", "-m", "services.intake")
    accepted: dict[str, str] = {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(SUBMISSIONS):
        queue.put_nowait(index)
    killed = asyncio.Event()
    a_third_accepted = asyncio.Event()
    failures = 0

    async def branch_client(client: httpx.AsyncClient) -> None:
        nonlocal failures
        while not queue.empty():
            index = queue.get_nowait()
            key = f"crash-{index:04d}"
            while True:  # a branch retries with the same key until it has its number
                try:
                    response = await client.post(
                        "/v1/complaints", json=submission(), headers={"Idempotency-Key": key}
                    )
                except httpx.TransportError:
                    failures += 1
                    await asyncio.sleep(0.2)
                    continue
                if response.status_code == 201:
                    accepted[key] = response.json()["complaint_no"]
                    if len(accepted) >= SUBMISSIONS // 3:
                        a_third_accepted.set()
                    break
                assert response.status_code == 503, response.text
                await asyncio.sleep(0.2)

    async def killer() -> None:
        await a_third_accepted.wait()
        platform.processes["intake"].send_signal(signal.SIGKILL)
        platform.processes["intake"].wait()
        killed.set()
        platform.start("intake-restarted", "-m", "services.intake")

    try:
        await asyncio.to_thread(platform.wait_http, "intake", f"{url}/openapi.json")
        async with httpx.AsyncClient(
            base_url=url, timeout=10, headers=branch_headers("hotel-demo")
        ) as client:
            await asyncio.gather(killer(), *(branch_client(client) for _ in range(CLIENTS)))

        async def all_assigned() -> bool:
            count = await scalar(database_url, "SELECT count(*) FROM routing.assignments")
            return count >= SUBMISSIONS

        await wait_for(all_assigned, timeout=120)
        await asyncio.sleep(2)
    finally:
        platform.stop()
        routing.exit()
        await routing_run

    assert killed.is_set()
    assert failures > 0  # the kill really interrupted requests in flight
    assert len(accepted) == SUBMISSIONS
    numbers = set(accepted.values())
    assert len(numbers) == SUBMISSIONS
    assert await scalar(database_url, "SELECT count(*) FROM intake.complaints") == SUBMISSIONS
    assert await scalar(database_url, "SELECT count(*) FROM routing.assignments") == SUBMISSIONS
    records = await read_records(
        infra.kafka_bootstrap_servers, topics.intake.name, expected=SUBMISSIONS * 2, timeout=30
    )
    published = {
        event.complaint_no
        for event in (decode_event(record.value) for record in records)
        if isinstance(event, ComplaintReceived)
    }
    assert numbers <= published
