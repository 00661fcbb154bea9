"""The fault harness at CI size: routing and notify killed with SIGKILL three times each
and the broker killed and restarted, under load, on the real Kafka and PostgreSQL of the
`faults` devstack; then the full reconciliation (reliability/reconcile.py) must find
nothing lost and nothing doubled.

The broker is killed, so this test brings up, and stops, a stack of its own (`faults`,
ports 29192/29193/25533) whatever TEST_INFRA says: it never touches the `test` stack the
other tests share. The full-size runs are `python reliability/faults.py --scenario …`
(RELIABILITY.md).
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator

import pytest

from reliability.faults import BrokerRestart, KillServices, RunConfig, run_scenario
from reliability.stack import FaultsStack
from services.routing.app import build_app as build_routing
from shared.settings import ServiceSettings
from shared.topics import Topics
from tests.integration.test_routing import produce, received
from tests.support.db import scalar
from tests.support.infra import Infra
from tests.support.intake import wait_for
from tests.support.processes import free_port
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.timeout(300)

KILLED = ("routing", "notify")
KILLS_EACH = 3
SEND_CONCURRENCY = 32  # notify's default: what one kill can catch mid-send at most


@pytest.fixture
async def faults_stack() -> AsyncIterator[FaultsStack]:
    stack = FaultsStack()
    await asyncio.to_thread(stack.up)
    try:
        yield stack
    finally:
        await asyncio.to_thread(stack.down)


async def test_kills_and_a_broker_crash_under_load_lose_and_double_nothing(
    faults_stack: FaultsStack,
) -> None:
    config = RunConfig(scenario="ci", seconds=40, rate=4, staff_share=0.0, retry_for=60, drain=90)
    faults = [
        KillServices(services=KILLED, per_service=KILLS_EACH, down=(0.3, 1.0)),
        BrokerRestart(signals=(signal.SIGKILL,), down=2.0),
    ]
    result = await run_scenario(faults_stack, config, faults, env={})
    print(json.dumps({"figures": result["figures"], "logs": result["logs"]}))

    events = result["faults"]["events"]
    kills = [e for e in events if e["fault"] == "kill -9"]
    assert sorted(e["service"] for e in kills) == sorted(KILLED * KILLS_EACH)
    assert all(e["exit"] == -signal.SIGKILL for e in kills)
    assert [e["fault"] for e in events if e["fault"].startswith("broker")] == ["broker SIGKILL"]
    assert result["figures"]["harness_errors"] == 0, events
    assert result["figures"]["died_unbidden"] == 0, events
    judged = result["verdict"]
    assert judged["accepted"] >= 0.9 * config.seconds * config.rate
    assert judged["checks"]["acknowledged"]["checked"] >= judged["accepted"]
    assert (judged["lost"], judged["doubled"]) == (0, 0), json.dumps(judged["checks"], indent=1)
    # An e-mail whose data went as notify died is never resent (docs/notify.md).
    assert judged["unconfirmed_emails"] <= KILLS_EACH * SEND_CONCURRENCY


async def test_a_consumer_service_started_while_kafka_is_away_waits_for_it(
    infra: Infra, database_url: str, topics: Topics
) -> None:
    """Found by the harness: routing, sla and notify (FastStream apps) exited at start-up
    when the broker did not answer, where intake and reporting wait for it; a service
    restarted during a broker outage stayed dead."""
    host, port = infra.kafka_bootstrap_servers.split(",")[0].rsplit(":", 1)
    kafka = TcpProxy(host, int(port))
    kafka.port = free_port()  # nothing listens there yet: Kafka is away
    routing = build_routing(
        ServiceSettings(
            database_url=database_url,
            kafka_bootstrap_servers=f"127.0.0.1:{kafka.port}",
            complaints_topic_namespace=topics.namespace,
        )
    )
    run = asyncio.create_task(routing.run())
    try:
        await asyncio.sleep(5)
        assert not run.done(), run.exception()
        await kafka.start()
        await produce(
            infra.kafka_bootstrap_servers,
            topics.intake.name,
            [received("261122101", "unknown-category")],
        )

        async def routed() -> bool:
            return await scalar(database_url, "SELECT count(*) FROM routing.assignments") == 1

        await wait_for(routed, timeout=60)
    finally:
        routing.exit()
        await asyncio.wait_for(run, 30)
        await kafka.cut()
