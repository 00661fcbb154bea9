"""Two routing processes share the work; one is killed half-way; nothing lost or doubled."""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from pathlib import Path

import asyncpg

from shared.contracts import ComplaintAssigned, decode_event
from shared.policy import load_packs
from shared.settings import REPO_ROOT
from shared.topics import Topics
from tests.integration.test_routing import produce, received
from tests.support.db import scalar
from tests.support.infra import Infra
from tests.support.intake import wait_for
from tests.support.kafka import read_records
from tests.support.processes import Platform, platform_env

COMPLAINTS = 1000


async def test_two_instances_one_killed_each_complaint_assigned_once_loads_consistent(
    infra: Infra, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    bootstrap = infra.kafka_bootstrap_servers
    packs = load_packs(REPO_ROOT / "policy-packs")
    demo = [
        (pack, f"{pack.pack}-demo")
        for pack in sorted(packs.packs.values(), key=lambda p: p.pack)
        if packs.for_branch(f"{pack.pack}-demo") is not None
    ]
    assert len(demo) == len(packs.packs)
    events = []
    for index in range(COMPLAINTS):
        pack, branch = demo[index % len(demo)]
        category = pack.categories[index % len(pack.categories)].code
        events.append(
            received(
                f"26112{index:05d}",
                category,
                branch=branch,
                pack=pack.pack,
                description=f"complaint {index}",
            )
        )
    platform = Platform(
        platform_env(
            KAFKA_BOOTSTRAP_SERVERS=bootstrap,
            DATABASE_URL=database_url,
            COMPLAINTS_TOPIC_NAMESPACE=topics.namespace,
        ),
        tmp_path,
    )
    platform.start("routing-a", "-m", "services.routing")
    platform.start("routing-b", "-m", "services.routing")
    try:
        await asyncio.sleep(8)  # both join the group and split the partitions
        await produce(bootstrap, topics.intake.name, events)

        async def half_assigned() -> bool:
            count = await scalar(database_url, "SELECT count(*) FROM routing.assignments")
            return count >= COMPLAINTS // 2

        await wait_for(half_assigned, timeout=120, interval=0.05)
        platform.processes["routing-a"].send_signal(signal.SIGKILL)

        async def all_assigned() -> bool:
            count = await scalar(database_url, "SELECT count(*) FROM routing.assignments")
            return count >= COMPLAINTS

        await wait_for(all_assigned, timeout=180)
        await asyncio.sleep(3)
    finally:
        platform.stop()

    assert await scalar(database_url, "SELECT count(*) FROM routing.assignments") == COMPLAINTS
    load = await scalar(database_url, "SELECT sum(open_cases) FROM routing.staff_load")
    assert load == COMPLAINTS
    conn = await asyncpg.connect(database_url)
    try:
        mismatched = await conn.fetch(
            """SELECT l.pack, l.staff_id FROM routing.staff_load l
               LEFT JOIN (SELECT pack, assignee_id, count(*) AS n FROM routing.assignments
                          WHERE open GROUP BY 1, 2) a
                 ON a.pack = l.pack AND a.assignee_id = l.staff_id
               WHERE l.open_cases <> coalesce(a.n, 0)"""
        )
    finally:
        await conn.close()
    assert mismatched == []
    records = await read_records(bootstrap, topics.routing.name, expected=COMPLAINTS, timeout=60)
    decisions = [decode_event(record.value) for record in records]
    # The relay may re-send after a crash; the same event id is the same decision.
    unique = {d.event_id: d for d in decisions if isinstance(d, ComplaintAssigned)}
    by_complaint = Counter(d.complaint_no for d in unique.values())
    assert len(by_complaint) == COMPLAINTS
    assert set(by_complaint.values()) == {1}
    dead = await read_records(bootstrap, topics.intake.dead_letter, expected=0, timeout=1)
    assert dead == []
    assert json.loads(records[0].value)["pack_version"]
