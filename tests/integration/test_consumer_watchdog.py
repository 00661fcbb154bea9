"""A consumer that aiokafka 0.14.0 stops for good ends its process, and its restart carries on
exactly where it stopped (RELIABILITY.md, finding 2; shared/watchdog.py).

The real condition, not a simulated one: two routing processes share a steady trickle of
complaints with max.poll.interval.ms at 3 s, and routing's inbox table is locked for longer
than that, as reliability/faults.py's slow-consumer scenario does, so that the handlers
wait on the database while the processes stay alive and heartbeat. A consumer whose late
commit then fails rejoins its group, and aiokafka cancels its heartbeat task in the middle
of the LeaveGroup request; the cancellation kills the coordination task and FastStream's
consume loop with it. Without the watchdog that process stays up consuming nothing (it
did on every run while this test was written); with it, it exits with
``RESTART_EXIT_CODE``. The test then acts as the supervisor: it restarts the process,
stops the survivor so that the restarted one is all there is, and checks that every
complaint, those held up by the lock included, was assigned exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from shared.contracts import ComplaintAssigned, decode_event
from shared.topics import Topics
from shared.watchdog import CHECK_EVERY_S, RESTART_EXIT_CODE
from tests.integration.test_routing import received
from tests.support.db import scalar
from tests.support.infra import Infra
from tests.support.intake import wait_for
from tests.support.kafka import read_records
from tests.support.processes import REPO, Platform, free_port, platform_env

pytestmark = pytest.mark.timeout(150)

POLL_INTERVAL_MS = 3000
HOLD_S = 6.0  # the inbox locked for twice the poll interval
LOCK_ROUNDS = 3
EXIT_WAIT_S = 12.0  # the watchdog checks every 5 s, and the shutdown takes a moment
ASSIGNED = "SELECT count(*) FROM routing.assignments"


class Trickle:
    """Complaints produced one at a time until stopped, as a branch would send them."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        self.topic = topic
        self.sent = 0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.producer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        # Each send finishes before the next check, so that ``sent`` counts every record.
        while not self._stopping.is_set():
            event = received(f"26112{self.sent:05d}", "facilities")
            await self.producer.send_and_wait(
                self.topic, json.dumps(event).encode(), key=event["complaint_no"].encode()
            )
            self.sent += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), 0.2)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._stopping.set()
        task, self._task = self._task, None
        await task
        await self.producer.stop()


async def test_a_consumer_stopped_by_aiokafka_exits_and_its_restart_assigns_each_complaint_once(
    infra: Infra, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    bootstrap = infra.kafka_bootstrap_servers
    platform = Platform(
        platform_env(
            KAFKA_BOOTSTRAP_SERVERS=bootstrap,
            DATABASE_URL=database_url,
            COMPLAINTS_TOPIC_NAMESPACE=topics.namespace,
            KAFKA_MAX_POLL_INTERVAL_MS=str(POLL_INTERVAL_MS),
        ),
        tmp_path,
    )
    trickle = Trickle(bootstrap, topics.intake.name)
    instances = ["routing-a", "routing-b"]
    for name in instances:
        platform.start(name, "-m", "services.routing")
    await trickle.start()
    try:

        async def both_handling() -> bool:
            return all('"complaint assigned"' in platform.log(name) for name in instances)

        await wait_for(both_handling, timeout=60)
        exited: dict[str, int] = {}
        for _ in range(LOCK_ROUNDS):
            await hold_up_the_inbox(database_url)
            exited = await exits(platform, instances, within=EXIT_WAIT_S)
            if exited:
                break
        logs = {name: platform.log(name) for name in instances}
        assert exited, "no routing process exited after its consumer was held up:\n" + "\n".join(
            stopped_lines(logs)
        )
        assert set(exited.values()) == {RESTART_EXIT_CODE}, exited
        for name in exited:
            assert '"consumer stopped"' in logs[name], logs[name]
            assert '"ended": "cancelled"' in logs[name], logs[name]

        # The supervisor's part: the exited process started again; the survivor stopped, so
        # that the complaints from here on are the restarted process's alone.
        for name in exited:
            platform.start(f"{name}-restarted", "-m", "services.routing")
        for name in instances:
            if name not in exited:
                platform.processes[name].send_signal(signal.SIGTERM)
        await asyncio.sleep(8)
        await trickle.stop()
        sent = trickle.sent

        async def all_assigned() -> bool:
            return await scalar(database_url, ASSIGNED) >= sent

        await wait_for(all_assigned, timeout=45)
        await asyncio.sleep(2)  # anything handled twice would show by now
        for name in exited:
            assert '"complaint assigned"' in platform.log(f"{name}-restarted")
    finally:
        await trickle.stop()
        platform.stop()

    assert await scalar(database_url, ASSIGNED) == sent
    assert await scalar(database_url, "SELECT count(*) FROM routing.processed_events") == sent
    assert await scalar(database_url, "SELECT sum(open_cases) FROM routing.staff_load") == sent
    records = await read_records(bootstrap, topics.routing.name, expected=sent, timeout=30)
    # The relay may send an event again after a stop; the same event id is the same decision.
    decisions = {
        d.event_id: d
        for d in (decode_event(record.value) for record in records)
        if isinstance(d, ComplaintAssigned)
    }
    by_complaint = Counter(d.complaint_no for d in decisions.values())
    assert len(by_complaint) == sent
    assert set(by_complaint.values()) == {1}
    assert await read_records(bootstrap, topics.intake.dead_letter, expected=0, timeout=1) == []


# intake and reporting run under uvicorn (shared.http.serve) with their consumers in
# ``consuming``: the watchdog stops them as SIGTERM does, and the exit code has to survive
# uvicorn raising that signal again once it has shut down. A broker whose consume task ends
# as aiokafka's does stands in for Kafka here; the server, the signals and the exit are real.
HTTP_SERVICE = """
import asyncio
from contextlib import asynccontextmanager

from fastapi import FastAPI

from shared.logging import configure_logging
from shared.runtime import consuming


class Subscriber:
    running = False
    calls = [object()]

    def __init__(self):
        self.tasks = []

    def get_log_context(self, message):
        return {"topic": "complaints.routing", "group_id": "intake"}


class Broker:
    running = False

    def __init__(self, stops):
        self.subscribers = [Subscriber()]
        self.stops = stops

    async def start(self):
        subscriber = self.subscribers[0]
        subscriber.running = True
        subscriber.tasks.append(asyncio.create_task(self.consume()))
        self.running = True

    async def consume(self):
        await asyncio.sleep(0.5)
        if self.stops:
            raise asyncio.CancelledError  # what getmany raises once the coordinator died
        await asyncio.Event().wait()

    async def stop(self):
        self.running = False
        for subscriber in self.subscribers:
            subscriber.running = False
            for task in subscriber.tasks:
                task.cancel()


def create_app(stops):
    configure_logging("fake")
    broker = Broker(stops)

    @asynccontextmanager
    async def lifespan(app):
        async with consuming(broker):
            yield
        print("lifespan shut down", flush=True)

    app = FastAPI(lifespan=lifespan)

    @app.get("/")
    async def root():
        return {}

    return app


def stopping():
    return create_app(True)


def consuming_forever():
    return create_app(False)
"""


@pytest.mark.parametrize(
    ("factory", "signalled", "code"),
    [
        ("stopping", False, RESTART_EXIT_CODE),
        ("consuming_forever", True, -signal.SIGTERM),
    ],
    ids=["consumer-stopped", "healthy-then-sigterm"],
)
async def test_an_http_service_whose_consumer_stopped_shuts_down_and_exits_for_a_restart(
    tmp_path: Path, factory: str, signalled: bool, code: int
) -> None:
    (tmp_path / "fake_service.py").write_text(HTTP_SERVICE, encoding="utf-8")
    port = free_port()
    env = platform_env(PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO}")
    platform = Platform(env, tmp_path)
    serve = f"from shared.http import serve; serve('fake_service:{factory}', '127.0.0.1', {port})"
    platform.start("service", "-c", serve)
    try:
        platform.wait_http("service", f"http://127.0.0.1:{port}/")
        process = platform.processes["service"]
        if signalled:
            await asyncio.sleep(CHECK_EVERY_S + 1)  # a healthy consumer is left alone
            assert process.poll() is None, platform.log("service")
            process.send_signal(signal.SIGTERM)
        exit_code = await asyncio.to_thread(process.wait, CHECK_EVERY_S + 20)
        log = platform.log("service")
    finally:
        platform.stop()

    assert exit_code == code, log
    assert "lifespan shut down" in log  # the graceful way, not the deadline's
    assert ('"consumer stopped"' in log) is not signalled, log


async def hold_up_the_inbox(database_url: str) -> None:
    """Every handler records its event in the inbox first: for HOLD_S they wait there."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE routing.processed_events IN SHARE ROW EXCLUSIVE MODE")
            await asyncio.sleep(HOLD_S)
    finally:
        await conn.close()


async def exits(platform: Platform, names: list[str], *, within: float) -> dict[str, int]:
    """The exit status of each of ``names`` that has ended, once one has or ``within``
    seconds have passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        ended = {
            name: code for name in names if (code := platform.processes[name].poll()) is not None
        }
        if ended or loop.time() > deadline:
            return ended
        await asyncio.sleep(0.5)


def stopped_lines(logs: dict[str, str]) -> list[str]:
    """What each log says of its consumer's end, for the failure message."""
    return [
        f"{name}: {line[:300]}"
        for name, text in logs.items()
        for line in text.splitlines()
        if "callback for" in line or "CommitFailedError" in line or "consumer stopped" in line
    ]


# `make run`'s Procfile runs each service through deploy/local/restarting.py, because
# honcho stops the whole platform when any one process ends.
SERVICE_EXITING_ONCE_FOR_A_RESTART = """
import pathlib, signal, sys, time

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
runs = pathlib.Path(sys.argv[1])
runs.write_text(runs.read_text() + "x" if runs.exists() else "x")
if len(runs.read_text()) == 1:
    sys.exit(int(sys.argv[2]))
time.sleep(60)
"""


@pytest.mark.parametrize(
    ("first_exit", "starts"), [(RESTART_EXIT_CODE, 2), (1, 1)], ids=["restart", "crash"]
)
def test_make_run_restarts_a_service_that_exits_for_a_restart_and_nothing_else(
    tmp_path: Path, first_exit: int, starts: int
) -> None:
    runs = tmp_path / "runs"
    wrapper = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "deploy" / "local" / "restarting.py"),
            "-c",
            SERVICE_EXITING_ONCE_FOR_A_RESTART,
            str(runs),
            str(first_exit),
        ],
        cwd=REPO,
        stderr=subprocess.PIPE,
    )
    try:
        if starts == 1:
            assert wrapper.wait(20) == first_exit
        else:
            deadline = time.monotonic() + 20
            while not (runs.exists() and len(runs.read_text()) == starts):
                assert time.monotonic() < deadline, "not restarted"
                time.sleep(0.1)
            assert wrapper.poll() is None
            wrapper.send_signal(signal.SIGTERM)  # to the wrapper alone: it passes it on
            assert wrapper.wait(10) == 0
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
        _, stderr = wrapper.communicate()
    assert len(runs.read_text()) == starts
    assert (b"starting it again" in stderr) is (starts > 1), stderr
