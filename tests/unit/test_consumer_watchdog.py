"""The consumer watchdog's judgement (shared/watchdog.py) on subscribers whose consume tasks
are real asyncio tasks that ran, raised, returned or were cancelled from inside, as
aiokafka's dead coordination task makes FastStream's consume loop end."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import traceback
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from faststream.kafka import KafkaBroker

from shared import watchdog
from shared.consumer import subscribe_events
from shared.contracts import Event
from shared.topics import Topics
from shared.watchdog import ConsumingSubscriber, stopped_consumers, watch_consumers
from tests.support.logs import captured_logs


@dataclass
class FakeSubscriber:
    """The parts of a FastStream Kafka subscriber the watchdog reads."""

    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    running: bool = True
    calls: list[object] = field(default_factory=lambda: [object()])
    topic: str = "complaints.intake"

    def get_log_context(self, message: None) -> dict[str, str]:
        return {"topic": self.topic, "group_id": "routing", "message_id": ""}


@dataclass
class FakeBroker:
    subscribers: Sequence[object]
    running: bool = True


async def forever() -> None:
    await asyncio.Event().wait()


async def fetch_from_a_dead_coordinator() -> None:
    # aiokafka's getmany re-raises the CancelledError its coordination task died of.
    raise asyncio.CancelledError


async def fail() -> None:
    raise RuntimeError("handler setup broke")


async def return_early() -> None:
    return None


async def finished(coroutine: Callable[[], Coroutine[Any, Any, None]]) -> asyncio.Task[None]:
    task = asyncio.create_task(coroutine())
    await asyncio.wait([task])
    return task


@pytest.fixture
async def running_task() -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(forever())
    yield task
    task.cancel()


async def test_a_consume_task_cancelled_from_inside_is_a_stopped_consumer_with_its_traceback() -> (
    None
):
    subscriber = FakeSubscriber([await finished(fetch_from_a_dead_coordinator)])

    (stopped,) = stopped_consumers(FakeBroker([subscriber]))

    assert (stopped.topics, stopped.group_id, stopped.ended) == (
        "complaints.intake",
        "routing",
        "cancelled",
    )
    assert isinstance(stopped.error, asyncio.CancelledError)
    frames = [frame.name for frame in traceback.extract_tb(stopped.error.__traceback__)]
    assert "fetch_from_a_dead_coordinator" in frames


async def test_a_task_that_raised_or_returned_and_was_not_replaced_is_stopped() -> None:
    raised = FakeSubscriber([await finished(fail)], topic="a")
    returned = FakeSubscriber([await finished(return_early)], topic="b")

    stopped = stopped_consumers(FakeBroker([raised, returned]))

    assert [(s.topics, s.ended) for s in stopped] == [("a", "raised"), ("b", "returned")]
    assert isinstance(stopped[0].error, RuntimeError)
    assert stopped[1].error is None


async def test_a_failed_task_that_faststream_restarted_is_not_stopped(
    running_task: asyncio.Task[None],
) -> None:
    # FastStream's supervisor keeps the failed task in the list and appends the new one.
    subscriber = FakeSubscriber([await finished(fail), running_task])

    assert stopped_consumers(FakeBroker([subscriber])) == []


async def test_a_consumer_with_one_task_of_several_still_running_is_not_stopped(
    running_task: asyncio.Task[None],
) -> None:
    subscriber = FakeSubscriber([running_task, await finished(fetch_from_a_dead_coordinator)])

    assert stopped_consumers(FakeBroker([subscriber])) == []


async def test_nothing_is_stopped_while_the_broker_starts_or_stops_or_the_subscriber_stops() -> (
    None
):
    dead = [await finished(fetch_from_a_dead_coordinator)]

    assert stopped_consumers(FakeBroker([FakeSubscriber(dead)], running=False)) == []
    assert stopped_consumers(FakeBroker([FakeSubscriber(dead, running=False)])) == []


async def test_subscribers_without_handlers_or_tasks_of_their_own_are_not_watched() -> None:
    dead = [await finished(fetch_from_a_dead_coordinator)]
    without_handlers = FakeSubscriber(dead, calls=[])

    class Publisher:
        running = True

    assert stopped_consumers(FakeBroker([without_handlers, Publisher()])) == []


async def test_the_watch_logs_each_stopped_consumer_and_calls_back_once(
    running_task: asyncio.Task[None], monkeypatch: pytest.MonkeyPatch
) -> None:
    healthy = FakeSubscriber([running_task], topic="complaints.routing")
    dying = FakeSubscriber([asyncio.create_task(forever())])
    broker = FakeBroker([healthy, dying])
    calls: list[None] = []

    with captured_logs(monkeypatch, watchdog) as logs:
        watch = asyncio.create_task(watch_consumers(broker, lambda: calls.append(None), every=0.01))
        await asyncio.sleep(0.05)
        assert calls == []  # both consuming: nothing to say
        dying.tasks[0].cancel()
        await asyncio.wait_for(watch, 1)

    assert calls == [None]
    (line,) = [entry for entry in logs if entry["event"] == "consumer stopped"]
    assert (line["log_level"], line["topics"], line["group_id"], line["ended"]) == (
        "error",
        "complaints.intake",
        "routing",
        "cancelled",
    )


async def test_the_watch_waits_for_the_broker_to_have_started(
    running_task: asyncio.Task[None],
) -> None:
    # start_when_reachable retries while Kafka is away: subscribers started by an attempt
    # that failed are stopped again, and the broker is not running meanwhile.
    broker = FakeBroker([FakeSubscriber([await finished(return_early)])], running=False)
    calls: list[None] = []
    watch = asyncio.create_task(watch_consumers(broker, lambda: calls.append(None), every=0.01))
    try:
        await asyncio.sleep(0.05)
        assert calls == []
        broker.subscribers = [FakeSubscriber([running_task])]
        broker.running = True
        await asyncio.sleep(0.05)
        assert calls == []
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch


async def test_the_platform_s_kafka_subscribers_are_what_the_watchdog_reads() -> None:
    # A FastStream upgrade that moved the consume tasks would leave the watchdog blind.
    broker = KafkaBroker("127.0.0.1:9")

    async def ignore(_: Event) -> None:
        return None

    subscribe_events(broker, [Topics.in_namespace("t").intake], group_id="routing", handle=ignore)
    (subscriber,) = broker.subscribers

    assert isinstance(subscriber, ConsumingSubscriber)
    assert (subscriber.running, list(subscriber.tasks), len(subscriber.calls)) == (False, [], 1)
    # Outside the default namespace the group carries the namespace (consumer_group).
    assert subscriber.get_log_context(None)["group_id"] == "t.routing"
    assert subscriber.get_log_context(None)["topic"] == "t.intake"


def test_ending_for_a_restart_stops_once_and_ends_the_process_if_the_shutdown_hangs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exited = threading.Event()
    codes: list[int] = []

    def fake_exit(code: int) -> None:
        codes.append(code)
        exited.set()

    monkeypatch.setattr(watchdog, "_restart", threading.Event())
    monkeypatch.setattr(watchdog, "SHUTDOWN_DEADLINE_S", 0.05)
    monkeypatch.setattr(os, "_exit", fake_exit)
    stops: list[None] = []

    assert not watchdog.restart_requested()
    watchdog.end_for_restart(lambda: stops.append(None))
    watchdog.end_for_restart(lambda: stops.append(None))

    assert watchdog.restart_requested()
    assert stops == [None]
    assert exited.wait(5)
    assert codes == [watchdog.RESTART_EXIT_CODE]


def test_sigterm_raised_again_after_a_watchdog_stop_exits_with_the_restart_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    restart = threading.Event()
    restart.set()
    monkeypatch.setattr(watchdog, "_restart", restart)

    with pytest.raises(SystemExit) as exiting:
        watchdog.exit_after_sigterm(15, None)

    assert exiting.value.code == watchdog.RESTART_EXIT_CODE
