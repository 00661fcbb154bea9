"""The delivery worker's bookkeeping against a fake database: an outcome the sender knows
is recorded even when the database was away for a moment (RELIABILITY.md, finding 4),
and the reconciler moves a row only from the status and attempt it decided on (finding 5).

The fake keeps one row per notification and applies ``store.move``'s condition as the SQL
does: the status among those named, and, when named, the same attempt.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import Message
from types import TracebackType
from typing import Any, cast

import asyncpg
import pytest

from services.notify import delivery as delivery_module
from services.notify.channels.base import Lookup, RejectedError, SmsMessage
from services.notify.channels.email import SmtpSender
from services.notify.channels.webhook import WebhookSender
from services.notify.delivery import Channels, DeliveryWorker, OutcomeCounters
from services.notify.settings import NotifySettings
from services.notify.store import Notification
from shared.metrics import ServiceMetrics
from tests.support.logs import captured_logs

ADDRESS = "zhang.wei@example.com"
MOVE = "UPDATE notifications SET status"


@dataclass
class Row:
    status: str
    attempts: int


@dataclass
class FakeDatabase:
    rows: dict[uuid.UUID, Row] = field(default_factory=dict)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    # The next this many connections are refused, as PostgreSQL refuses them while it
    # shuts down or restarts.
    away_for: int = 0
    refused: int = 0
    # Another error, not of reachability, for every connection while set.
    broken: Exception | None = None
    # Runs once the reconciler has read a status: another party moving the row meanwhile.
    after_status_read: Callable[[], None] | None = None

    def acquire(self) -> _Acquired:
        if self.broken is not None:
            raise self.broken
        if self.away_for > 0:
            self.away_for -= 1
            self.refused += 1
            raise asyncpg.exceptions.CannotConnectNowError("the database system is shutting down")
        return _Acquired(FakeConnection(self))

    def events(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.outbox if e["event_type"] == event_type]


class _Acquired:
    def __init__(self, conn: FakeConnection) -> None:
        self._conn = conn

    async def __aenter__(self) -> FakeConnection:
        return self._conn

    async def __aexit__(self, *exc: object) -> None:
        return None


class _Transaction:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


class FakeConnection:
    def __init__(self, db: FakeDatabase) -> None:
        self._db = db

    def transaction(self) -> _Transaction:
        return _Transaction()

    async def execute(self, sql: str, *args: Any) -> str:
        if sql.startswith(MOVE):
            notification_id, to_status, from_statuses = args[:3]
            attempt = args[3] if "attempts = $4" in sql else None
            row = self._db.rows[notification_id]
            if row.status not in from_statuses or attempt not in (None, row.attempts):
                return "UPDATE 0"
            row.status = to_status
            return "UPDATE 1"
        if "INSERT INTO outbox" in sql:
            self._db.outbox.append(json.loads(args[3]))
            return "INSERT 0 1"
        if "SET lease_until" in sql:  # an unknown outcome shortens the lease
            return "UPDATE 1"
        raise AssertionError(f"unexpected statement: {sql}")

    async def fetchval(self, sql: str, *args: Any) -> str:
        assert sql.startswith("SELECT status FROM notifications")
        status = self._db.rows[args[0]].status
        if self._db.after_status_read is not None:
            self._db.after_status_read()
            self._db.after_status_read = None
        return status


class FakeSmtp:
    """Takes every message; ``then`` runs once the server's 250 has come."""

    def __init__(self) -> None:
        self.taken: list[Message] = []
        self.then: Callable[[], None] = lambda: None

    async def send(self, message: Message, before_data: Callable[[], Awaitable[None]]) -> str:
        await before_data()
        self.taken.append(message)
        self.then()
        return str(message["Message-ID"])


@dataclass
class FakeGateway:
    """An SMS gateway that drops a repeat of the same reference, and cannot be asked;
    ``then`` runs once it has answered, ``refusal`` is its answer when set."""

    name: str = "gateway"
    deduplicates: bool = True
    can_look_up: bool = False
    refusal: Exception | None = None
    then: Callable[[], None] = lambda: None

    async def send(self, message: SmsMessage) -> str:
        self.then()
        if self.refusal is not None:
            raise self.refusal
        return f"gw-{message.reference}"

    async def lookup(self, message: SmsMessage, provider_id: str | None) -> Lookup:
        raise AssertionError("the gateway cannot be asked")

    async def aclose(self) -> None:
        return None


def notification(channel: str = "email", attempts: int = 1) -> Notification:
    return Notification(
        notification_id=uuid.uuid4(),
        notification_key=f"key-{uuid.uuid4()}",
        complaint_no="261122001",
        branch_id="hotel-demo",
        correlation_id="corr-1",
        source_event_id=uuid.uuid4(),
        channel=channel,
        rule="acknowledge",
        template="acknowledgement",
        language="zh",
        address=ADDRESS if channel == "email" else "+8613800138000",
        recipient_masked="z***@example.com" if channel == "email" else "+86138****8000",
        to_customer=True,
        subject="我们已收到您的投诉",
        body_text="投诉编号 261122001",
        body_html="<p>投诉编号 261122001</p>",
        sms_text="投诉编号 261122001" if channel == "sms" else None,
        params={},
        segments=1 if channel == "sms" else None,
        status="sending",
        attempts=attempts,
    )


@asynccontextmanager
async def worker(
    db: FakeDatabase,
    smtp: FakeSmtp,
    *,
    gateway: FakeGateway | None = None,
    lease_seconds: float = 5.0,
) -> AsyncIterator[DeliveryWorker]:
    channels = Channels(
        email=cast("SmtpSender", smtp),
        sms=gateway or FakeGateway(),
        webhook=cast("WebhookSender", object()),
        webhook_url=str,
    )
    settings = NotifySettings(lease_seconds=lease_seconds, send_attempts=5)
    delivery = DeliveryWorker(
        cast("asyncpg.Pool", db),
        settings,
        channels,
        "t.notify",
        OutcomeCounters.counted_in(ServiceMetrics("notify")),
        rng=random.Random(7),
    )
    try:
        yield delivery
    finally:
        await delivery._outcomes.close()


def leased(db: FakeDatabase, n: Notification, status: str = "sending") -> Notification:
    db.rows[n.notification_id] = Row(status, n.attempts)
    return n


# Finding 4: an outcome known while the database is away


async def test_an_email_accepted_as_the_database_goes_away_is_recorded_sent_once_it_answers() -> (
    None
):
    db, smtp = FakeDatabase(), FakeSmtp()
    n = leased(db, notification())

    def database_goes_away() -> None:
        db.away_for = 3

    smtp.then = database_goes_away
    async with worker(db, smtp) as delivery:
        await delivery._send(n)

    assert db.refused == 3
    assert len(smtp.taken) == 1
    assert db.rows[n.notification_id].status == "sent"
    sent = db.events("NotificationSent")
    assert [e["notification_id"] for e in sent] == [str(n.notification_id)]
    assert not db.events("NotificationUnconfirmed")


async def test_a_refusal_known_while_the_database_is_away_is_recorded_too() -> None:
    db, smtp = FakeDatabase(), FakeSmtp()
    n = leased(db, notification(channel="sms"))
    gateway = FakeGateway(refusal=RejectedError("400 invalid number"))
    gateway.then = lambda: setattr(db, "away_for", 2)

    async with worker(db, smtp, gateway=gateway) as delivery:
        await delivery._send(n)

    assert db.rows[n.notification_id].status == "failed"
    assert len(db.events("NotificationFailed")) == 1


@pytest.fixture
def delivery_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[MutableMapping[str, Any]]]:
    """What notify.delivery logs during the test."""
    with captured_logs(monkeypatch, delivery_module) as logs:
        yield logs


async def test_a_database_away_longer_than_the_lease_leaves_the_row_to_the_reconciler(
    delivery_logs: list[MutableMapping[str, Any]],
) -> None:
    db, smtp = FakeDatabase(), FakeSmtp()
    n = leased(db, notification())

    def database_goes_away() -> None:
        db.away_for = 10**6

    smtp.then = database_goes_away
    async with worker(db, smtp, lease_seconds=0.3) as delivery:
        await delivery._send(n)  # it returns: nothing is left for "never retrieved"
    logs = delivery_logs

    assert db.rows[n.notification_id].status == "handing_over"
    assert not db.outbox
    assert db.refused > 2, "it tried again for the lease"
    given_up = [
        e for e in logs if e["event"] == "send outcome not recorded; left to the reconciler"
    ]
    assert len(given_up) == 1
    assert given_up[0]["log_level"] == "error"
    assert ADDRESS not in repr(logs)


async def test_an_error_other_than_unreachability_is_not_waited_out(
    delivery_logs: list[MutableMapping[str, Any]],
) -> None:
    db, smtp = FakeDatabase(), FakeSmtp()
    n = leased(db, notification())

    def database_breaks() -> None:
        db.broken = asyncpg.exceptions.UndefinedTableError('relation "outbox" does not exist')

    smtp.then = database_breaks
    async with worker(db, smtp) as delivery:
        await delivery._send(n)
    logs = delivery_logs

    assert db.rows[n.notification_id].status == "handing_over"
    assert db.refused == 0
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "send outcome not recorded; left to the reconciler"
    ]


# Finding 5: the reconciler moves a row only from what it read


@dataclass(frozen=True)
class Race:
    """A row whose lease ran out, as the reconciler reads it, and what happens between
    that read and the reconciler's decision."""

    name: str
    channel: str
    read: str
    meanwhile: Callable[[Row], None] | None
    ends: str
    events: tuple[str, ...]


def _resumes_handing_over(row: Row) -> None:
    row.status = "handing_over"  # the sender resumed: the data is going out


def _records_sent(row: Row) -> None:
    row.status = "sent"  # its outcome event is the sender's to enqueue, not the reconciler's


def _claimed_again(row: Row) -> None:
    row.attempts += 1  # requeued and claimed again by another sender: a new attempt


RACES = [
    Race("email data never left", "email", "sending", None, "queued", ()),
    Race("email sender resumes", "email", "sending", _resumes_handing_over, "handing_over", ()),
    Race("email no reply", "email", "handing_over", None, "unconfirmed", ("Unconfirmed",)),
    Race("email reply recorded", "email", "handing_over", _records_sent, "sent", ()),
    Race("email next attempt", "email", "sending", _claimed_again, "sending", ()),
    Race("sms resent under its key", "sms", "sending", None, "queued", ()),
    Race("sms recorded meanwhile", "sms", "sending", _records_sent, "sent", ()),
    Race("sms next attempt", "sms", "sending", _claimed_again, "sending", ()),
    Race("sms already settled", "sms", "sent", None, "sent", ()),
]


@pytest.mark.parametrize("race", RACES, ids=[r.name for r in RACES])
async def test_the_reconciler_moves_a_row_only_from_the_status_and_attempt_it_read(
    race: Race,
) -> None:
    db, smtp = FakeDatabase(), FakeSmtp()
    n = leased(db, notification(channel=race.channel), race.read)
    row = db.rows[n.notification_id]
    if race.meanwhile is not None:
        meanwhile = race.meanwhile
        db.after_status_read = lambda: meanwhile(row)

    async with worker(db, smtp) as delivery:
        await delivery._reconcile_one(n)

    assert row.status == race.ends
    assert [e["event_type"] for e in db.outbox] == [f"Notification{e}" for e in race.events]
