"""A consumer that has stopped for good ends its process, so that its supervisor restarts it.

aiokafka 0.14.0 can lose a consumer's coordination task to a cancellation (a consumer
held up past max.poll.interval.ms whose late commit fails: RELIABILITY.md, finding 2);
every later fetch then re-raises the ``CancelledError``, FastStream's consume loop ends
cancelled, and FastStream restarts consume tasks that raised but never cancelled ones.
The process would stay up, consuming nothing. So every few seconds the watchdog looks at
each subscriber of the broker: one that has started, has handlers and has no consume
task left running while the broker runs has stopped for good. The watchdog logs it, asks
the process for its ordinary graceful shutdown, and sees that it then ends with
``RESTART_EXIT_CODE``. What the dead consumer had not committed is delivered again to its
successor, which the inbox makes harmless.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable, Sequence, Sized
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any, Protocol, runtime_checkable

import structlog

from shared.tasks import in_background

log = structlog.get_logger(__name__)

# EX_TEMPFAIL: the failure is temporary and a restart is expected to cure it.
RESTART_EXIT_CODE = 75
CHECK_EVERY_S = 5.0
# The graceful shutdown's own bounds (uvicorn's 10 s for connections, the broker's 15 s
# for handlers under way) and room to close the pool and the relay: a shutdown that takes
# longer is hung, possibly on the broken consumer itself, and the process is ended anyway.
SHUTDOWN_DEADLINE_S = 40.0


@runtime_checkable
class ConsumingSubscriber(Protocol):
    """What the watchdog reads of a FastStream subscriber that consumes in tasks of its
    own (``TasksMixin``: every Kafka subscriber). ``running`` turns true once its consumer
    has started and false as soon as it begins to stop; ``tasks`` keeps every consume task
    it started, the ones FastStream restarted after an exception included."""

    @property
    def running(self) -> bool: ...

    @property
    def calls(self) -> Sized: ...

    @property
    def tasks(self) -> Sequence[asyncio.Future[Any]]: ...

    def get_log_context(self, message: None) -> dict[str, str]: ...


class WatchedBroker(Protocol):
    @property
    def running(self) -> bool: ...

    @property
    def subscribers(self) -> Sequence[object]: ...


@dataclass(frozen=True)
class StoppedConsumer:
    topics: str
    group_id: str
    ended: str  # "cancelled", "raised" or "returned"
    error: BaseException | None


def stopped_consumers(broker: WatchedBroker) -> list[StoppedConsumer]:
    """The broker's subscribers that should be consuming and no longer can."""
    if not broker.running:
        return []  # starting, or stopping: its subscribers come and go
    stopped = []
    for subscriber in broker.subscribers:
        if not isinstance(subscriber, ConsumingSubscriber):
            continue
        if not (subscriber.running and subscriber.calls):
            continue
        if not subscriber.tasks or any(not task.done() for task in subscriber.tasks):
            continue
        ended, error = _ending(subscriber.tasks[-1])
        context = subscriber.get_log_context(None)
        stopped.append(
            StoppedConsumer(context.get("topic", ""), context.get("group_id", ""), ended, error)
        )
    return stopped


def _ending(task: asyncio.Future[Any]) -> tuple[str, BaseException | None]:
    """How a finished task ended. A cancellation's own exception, raised inside the task
    rather than by ``cancel()``, carries the traceback of where it came from."""
    try:
        error = task.exception()
    except asyncio.CancelledError as cancelled:
        return "cancelled", cancelled
    return ("raised", error) if error is not None else ("returned", None)


async def watch_consumers(
    broker: WatchedBroker, on_stopped: Callable[[], None], *, every: float = CHECK_EVERY_S
) -> None:
    """Check the broker's consumers every ``every`` seconds; the first time one has
    stopped, log each that has and call ``on_stopped``."""
    while True:
        await asyncio.sleep(every)
        stopped = stopped_consumers(broker)
        if not stopped:
            continue
        for consumer in stopped:
            log.error(
                "consumer stopped",
                topics=consumer.topics,
                group_id=consumer.group_id,
                ended=consumer.ended,
                error=repr(consumer.error) if consumer.error is not None else None,
                exc_info=consumer.error,
            )
        on_stopped()
        return


@asynccontextmanager
async def watchdog(
    broker: WatchedBroker, stop: Callable[[], None], *, every: float = CHECK_EVERY_S
) -> AsyncIterator[None]:
    """The broker's consumers watched while the block runs; should one stop for good,
    ``stop`` starts the process's graceful shutdown and ``end_for_restart`` sees to the
    rest."""
    async with in_background(watch_consumers(broker, lambda: end_for_restart(stop), every=every)):
        yield


_restart = threading.Event()


def end_for_restart(stop: Callable[[], None]) -> None:
    """Shut the process down with ``stop`` and have it end with ``RESTART_EXIT_CODE``:
    whatever runs the service exits with it once the shutdown is over
    (``restart_requested``); should the shutdown hang, the process is ended regardless."""
    if _restart.is_set():
        return
    _restart.set()
    log.error("stopping for a restart", exit_code=RESTART_EXIT_CODE)
    # A thread, so that it fires even when the event loop is stuck.
    deadline = threading.Timer(SHUTDOWN_DEADLINE_S, _exit_now)
    deadline.daemon = True
    deadline.start()
    stop()


def _exit_now() -> None:
    log.error("shutdown hung, exiting", exit_code=RESTART_EXIT_CODE)
    os._exit(RESTART_EXIT_CODE)


def restart_requested() -> bool:
    return _restart.is_set()


def terminate_gracefully() -> None:
    """The shutdown of a service whose server (uvicorn) stops on SIGTERM."""
    signal.raise_signal(signal.SIGTERM)


def exit_after_sigterm(signum: int, _frame: FrameType | None) -> None:
    """SIGTERM's handler under a server that takes the signal over and raises it again
    once its graceful shutdown is over (uvicorn): the process then ends with
    ``RESTART_EXIT_CODE`` when the watchdog stopped it, and dies of the signal as it
    always did otherwise."""
    if restart_requested():
        raise SystemExit(RESTART_EXIT_CODE)
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)
