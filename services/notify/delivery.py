"""The delivery worker: sends queued notifications, exactly once in effect.

Every instance runs one. It takes due rows with SKIP LOCKED (so instances share the
work), counts the attempt and takes a lease before the send, and records the outcome
with its status event in one transaction. What happens next depends on how the send
ended (see channels/base.py):

- sent: ``sent``; an SMS whose provider reports delivery is asked again later.
- certainly not sent: retried with exponential backoff and jitter; after
  ``send_attempts`` the row is dead-lettered (``dead``) until requeued by hand.
- refused for good: ``failed``.
- unknown (a timeout, a 500, a crash): never retried blindly. The lease runs out and
  the reconciler asks the provider (Aliyun, Twilio) whether it has the message, resends
  under the same idempotency key where the provider de-duplicates (the generic gateway,
  webhooks), resends an e-mail whose data never left, and reports an e-mail whose data
  left without a reply ``unconfirmed`` for a person to check.

An outcome the sender knows is worth recording even while the database is away: the
reconciler could only guess it (an e-mail whose reply came would be reported
unconfirmed). So it is written again, with backoff, for up to a lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, make_msgid, parseaddr
from typing import Any, TypeVar

import asyncpg
import structlog
from aiolimiter import AsyncLimiter
from prometheus_client import Counter

from services.notify import store
from services.notify.channels.base import (
    Lookup,
    NotSentError,
    OutcomeUnknownError,
    ProviderState,
    RejectedError,
    SmsMessage,
    SmsProvider,
)
from services.notify.channels.email import SmtpSender
from services.notify.channels.webhook import WebhookSender
from services.notify.domain import retry_delay
from services.notify.planning import WAKE_CHANNEL
from services.notify.settings import NotifySettings
from services.notify.store import Notification
from shared.contracts import (
    NotificationDelivered,
    NotificationEvent,
    NotificationFailed,
    NotificationSent,
    NotificationUnconfirmed,
)
from shared.db import DbConnection, is_connection_error
from shared.group_commit import GroupCommit
from shared.metrics import ServiceMetrics
from shared.outbox import enqueue

BATCH = 100
# Where a sender holds the row: what its lease covers, and what its outcome moves from.
LEASED = ("sending", "handing_over")
# Backoff while recording an outcome waits for the database: the first retries come
# quickly (a dropped connection is replaced at once), later ones every ~2 s at most.
RECORD_RETRY_BASE = 0.1
RECORD_RETRY_CAP = 2.0
log = structlog.get_logger("notify.delivery")
T = TypeVar("T")


def _room(limiter: AsyncLimiter, most: int) -> int:
    """How many sends ``limiter`` lets through now, up to ``most``."""
    return next((n for n in range(most, 0, -1) if limiter.has_capacity(n)), 0)


class LeaseLostError(Exception):
    """The row is no longer this sender's to send."""


@dataclass(frozen=True)
class Channels:
    email: SmtpSender
    sms: SmsProvider
    webhook: WebhookSender
    webhook_url: Callable[[str], str]


@dataclass(frozen=True)
class OutcomeCounters:
    """The counters of messages that ended sent, and that ended failed or dead-lettered."""

    sent: Counter
    failed: Counter

    @classmethod
    def counted_in(cls, metrics: ServiceMetrics) -> OutcomeCounters:
        return cls(
            sent=metrics.counter(
                "notifications_sent_total", "Messages handed to their channel.", "channel"
            ),
            failed=metrics.counter(
                "notifications_failed_total",
                "Messages that failed for good: refused, dead-lettered after every attempt, "
                "or reported undelivered by the SMS provider.",
                "channel",
            ),
        )

    def count(self, channel: str, status: str) -> None:
        if status == "sent":
            self.sent.labels(channel).inc()
        elif status in ("failed", "dead"):
            self.failed.labels(channel).inc()


class DeliveryWorker:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: NotifySettings,
        channels: Channels,
        topic: str,
        counters: OutcomeCounters,
        rng: random.Random | None = None,
    ) -> None:
        self._pool = pool
        self._counters = counters
        self._settings = settings
        self._channels = channels
        self._topic = topic
        self._rng = rng or random.Random()
        self._slots = asyncio.Semaphore(settings.send_concurrency)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        # Outcomes of concurrent sends commit together rather than one flush each.
        self._outcomes = GroupCommit(pool)
        self._limits = {
            "email": AsyncLimiter(settings.rate_limit_email, 1),
            "sms": AsyncLimiter(settings.rate_limit_sms, 1),
            "webhook": AsyncLimiter(settings.rate_limit_webhook, 1),
        }

    # The loops

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        listener = await self._pool.acquire()
        await listener.add_listener(WAKE_CHANNEL, self._on_wake)
        loops = [
            asyncio.create_task(self._forever(self.send_due, self._settings.poll_seconds)),
            asyncio.create_task(self._forever(self.reconcile, 1.0)),
            asyncio.create_task(self._forever(self.check_statuses, 1.0)),
        ]
        try:
            yield
        finally:
            for loop in loops:
                loop.cancel()
            for loop in loops:
                with contextlib.suppress(asyncio.CancelledError):
                    await loop
            # Sends already handed to a provider finish and record their outcome.
            if self._in_flight:
                _, late = await asyncio.wait(self._in_flight, timeout=self._settings.lease_seconds)
                # Still at it after a lease (the database away): their rows are the
                # reconciler's, as after a crash, and nothing may wait on a closed commit.
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
            await self._outcomes.close()
            with contextlib.suppress(Exception):
                await listener.remove_listener(WAKE_CHANNEL, self._on_wake)
            await self._pool.release(listener)

    def _on_wake(self, *_: object) -> None:
        self._wake.set()

    async def _forever(self, step: Callable[[], Awaitable[int]], pause: float) -> None:
        while True:
            try:
                busy = await step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be away; the rows wait in it
                log.warning("delivery loop interrupted", step=step.__name__, error=repr(exc))
                busy = 0
                await asyncio.sleep(1.0)
            if busy:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)

    async def send_due(self) -> int:
        """Start sending as many due rows as there are free slots; how many were started."""
        free = self._settings.send_concurrency - len(self._in_flight)
        if free <= 0:
            await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            return 1
        # A channel at its rate limit gets no rows, so its queue cannot hold the send
        # slots (and run down the leases) while the other channels' messages wait.
        quotas = {
            channel: _room(limiter, min(free, BATCH)) for channel, limiter in self._limits.items()
        }
        async with self._pool.acquire() as conn, conn.transaction():
            claimed = await store.claim_due(conn, quotas, self._settings.lease_seconds)
        for notification in claimed:
            task = asyncio.create_task(self._send(notification))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return len(claimed)

    # One send

    async def _send(self, n: Notification) -> None:
        structlog.contextvars.bind_contextvars(
            complaint_no=n.complaint_no, correlation_id=n.correlation_id
        )
        try:
            await self._attempt(n)
        except Exception:
            # Nobody awaits a send's task, so this is the last place to hear of it. The
            # outcome is not recorded (the database stayed away for a lease, or a bug):
            # the row keeps its status and lease, and the reconciler settles it.
            log.exception(
                "send outcome not recorded; left to the reconciler",
                notification_id=str(n.notification_id),
                channel=n.channel,
            )
        finally:
            structlog.contextvars.unbind_contextvars("complaint_no", "correlation_id")

    async def _attempt(self, n: Notification) -> None:
        try:
            async with self._limits[n.channel]:
                provider, provider_id = await self._hand_over(n)
        except LeaseLostError:
            # The send took longer than its lease and was reconciled meanwhile: the data
            # has not gone, and the reconciler's decision stands.
            log.warning("lease lost before the e-mail data went; not sent by this attempt")
        except RejectedError as exc:
            await self._fail(n, str(exc), dead=False, from_statuses=LEASED)
        except NotSentError as exc:
            await self._retry_or_bury(n, str(exc))
        except OutcomeUnknownError as exc:
            # The lease decides when the reconciler asks; never resend now.
            await self._after_unknown(n, str(exc))
        except Exception as exc:  # a bug or an unexpected provider answer: treat as unknown
            log.exception("send crashed", notification_id=str(n.notification_id))
            await self._after_unknown(n, f"{type(exc).__name__}: {exc}")
        else:
            await self._sent(n, provider, provider_id, from_statuses=LEASED)

    async def _hand_over(self, n: Notification) -> tuple[str, str | None]:
        if n.channel == "email":

            async def before_data() -> None:
                async with self._pool.acquire() as conn:
                    if not await store.move(
                        conn,
                        n.notification_id,
                        from_statuses=("sending",),
                        to_status="handing_over",
                        attempt=n.attempts,
                    ):
                        raise LeaseLostError

            message_id = await self._channels.email.send(self._email(n), before_data)
            return "smtp", message_id
        if n.channel == "sms":
            sms = self._channels.sms
            return sms.name, await sms.send(self._sms(n))
        url = self._channels.webhook_url(n.address)
        await self._channels.webhook.post(url, self._webhook_payload(n), str(n.notification_id))
        return "webhook", None

    def _email(self, n: Notification) -> Message:
        # Built with the compat32 MIME classes, which encode what they are given instead of
        # parsing every header back into objects: a quarter of EmailMessage's cost, which
        # was the largest part of notify's CPU under load. The bytes say the same.
        message = MIMEMultipart("alternative")
        message["From"] = formataddr(parseaddr(self._settings.mail_from), charset="utf-8")
        message["To"] = n.address
        message["Subject"] = Header(n.subject, "utf-8", header_name="Subject").encode()
        # The same id on every attempt: mail clients fold a duplicate into the original.
        message["Message-ID"] = make_msgid(
            idstring=str(n.notification_id), domain="complaints.local"
        )
        message["X-Complaint-No"] = n.complaint_no
        message["Auto-Submitted"] = "auto-generated"
        message.attach(MIMEText(n.body_text, "plain", "utf-8"))
        message.attach(MIMEText(n.body_html, "html", "utf-8"))
        return message

    @staticmethod
    def _sms(n: Notification) -> SmsMessage:
        return SmsMessage(
            to=n.address,
            text=n.sms_text or n.subject,
            template=n.template,
            language=n.language,
            params=n.params,
            reference=str(n.notification_id),
            created_at=n.first_attempt_at or datetime.now(UTC),
        )

    @staticmethod
    def _webhook_payload(n: Notification) -> dict[str, Any]:
        # WeCom, DingTalk and Feishu group bots read msgtype/text.content; the rest is ours.
        return {
            "msgtype": "text",
            "text": {"content": f"{n.subject}\n\n{n.body_text}"},
            "notification_id": str(n.notification_id),
            "complaint_no": n.complaint_no,
            "template": n.template,
            "subject": n.subject,
        }

    # Outcomes

    def _envelope(self, n: Notification, status: str) -> dict[str, Any]:
        return {
            "event_id": uuid.uuid5(n.notification_id, status),
            "complaint_no": n.complaint_no,
            "branch_id": n.branch_id,
            "correlation_id": n.correlation_id,
            "causation_id": n.source_event_id,
            "producer": "notify",
            "notification_id": n.notification_id,
            "channel": n.channel,
            "recipient_masked": n.recipient_masked,
            "template": n.template,
            "to_customer": n.to_customer,
        }

    async def _record(self, n: Notification, event: NotificationEvent | None, **move: Any) -> bool:
        """Move the row (conditionally: ``move`` names the statuses it may leave, and it
        must still be on ``n``'s attempt) and enqueue ``event``, in one transaction."""

        tries = 0

        async def unit(conn: DbConnection) -> bool:
            nonlocal tries
            tries += 1
            moved = await store.move(conn, n.notification_id, attempt=n.attempts, **move)
            if moved and event is not None:
                await enqueue(conn, self._topic, event)
            return moved

        async def alone() -> bool:
            async with self._pool.acquire() as conn, conn.transaction():
                return await unit(conn)

        moved = await self._patiently(lambda: self._outcomes.run(unit, alone), move["to_status"])
        if moved:
            self._counters.count(n.channel, move["to_status"])
        else:
            # After a try whose connection broke, the row may have "moved on" by that very
            # try: its commit went through and only the reply was lost.
            log.warning(
                "outcome not recorded: the row moved on", to_status=move["to_status"], tries=tries
            )
        return moved

    async def _patiently(self, record: Callable[[], Awaitable[T]], to_status: str) -> T:
        """``record()``, run again with backoff while the database cannot be reached, for
        up to a lease. Past that the reconciler decides; a write of ours that lands even
        later is refused or agrees with it, the move being conditional. A lost commit
        reply that hid a commit is harmless too: the second run finds the row moved."""
        give_up = time.monotonic() + self._settings.lease_seconds
        retries = 0
        while True:
            try:
                result = await record()
            except Exception as exc:
                left = give_up - time.monotonic()
                if not is_connection_error(exc) or left <= 0:
                    raise
                if retries == 0:
                    log.warning(
                        "database unreachable; recording the outcome again until it answers",
                        to_status=to_status,
                        error=repr(exc),
                    )
                retries += 1
                wait = retry_delay(
                    retries, base=RECORD_RETRY_BASE, cap=RECORD_RETRY_CAP, rng=self._rng
                )
                await asyncio.sleep(min(wait, left))
                continue
            if retries:
                log.info(
                    "outcome recorded once the database answered",
                    to_status=to_status,
                    retries=retries,
                )
            return result

    async def _sent(
        self,
        n: Notification,
        provider: str,
        provider_id: str | None,
        *,
        from_statuses: tuple[str, ...],
    ) -> None:
        now = datetime.now(UTC)
        ask_later = n.channel == "sms" and self._channels.sms.can_look_up
        event = NotificationSent(
            event_type=NotificationSent.EVENT_TYPE,
            **self._envelope(n, "sent"),
            language=n.language,
            sent_at=now,
            provider=provider,
            provider_message_id=provider_id,
            attempts=max(n.attempts, 1),
            segments=n.segments,
        )
        if await self._record(
            n,
            event,
            from_statuses=from_statuses,
            to_status="sent",
            sent_at=now,
            provider=provider,
            provider_message_id=provider_id,
            lease_until=None,
            last_error=None,
            next_status_check=(
                now + timedelta(seconds=self._settings.status_check_seconds) if ask_later else None
            ),
        ):
            log.info("notification sent", channel=n.channel, template=n.template)

    async def _fail(
        self, n: Notification, reason: str, *, dead: bool, from_statuses: tuple[str, ...]
    ) -> None:
        event = NotificationFailed(
            event_type=NotificationFailed.EVENT_TYPE,
            **self._envelope(n, "dead" if dead else "failed"),
            reason=reason[:500],
            attempts=max(n.attempts, 1),
            dead_lettered=dead,
        )
        if await self._record(
            n,
            event,
            from_statuses=from_statuses,
            to_status="dead" if dead else "failed",
            last_error=reason[:500],
            lease_until=None,
        ):
            log.warning(
                "notification dead-lettered" if dead else "notification refused",
                channel=n.channel,
                template=n.template,
                attempts=n.attempts,
                error=reason[:200],
            )

    async def _retry_or_bury(self, n: Notification, reason: str) -> None:
        if n.attempts >= self._settings.send_attempts:
            reason = f"gave up after {n.attempts} attempts: {reason}"
            await self._fail(n, reason, dead=True, from_statuses=LEASED)
            return
        wait = retry_delay(
            n.attempts,
            base=self._settings.retry_base_seconds,
            cap=self._settings.retry_cap_seconds,
            rng=self._rng,
        )
        await self._record(
            n,
            None,
            from_statuses=LEASED,
            to_status="queued",
            not_before=datetime.now(UTC) + timedelta(seconds=wait),
            last_error=reason[:500],
            lease_until=None,
        )
        log.info("send failed; retrying", attempt=n.attempts, wait_seconds=round(wait, 2))

    async def _after_unknown(self, n: Notification, reason: str) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                """UPDATE notifications
                   SET lease_until = now() + make_interval(secs => $2), last_error = $3
                   WHERE notification_id = $1 AND status IN ('sending', 'handing_over')
                     AND attempts = $4""",
                n.notification_id,
                self._settings.reconcile_after_seconds,
                reason[:500],
                n.attempts,
            )
        log.warning("send outcome unknown; will reconcile", channel=n.channel, error=reason[:200])

    # Reconciliation

    async def reconcile(self) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            late = await store.claim_expired(conn, BATCH, self._settings.lease_seconds)
        for n in late:
            try:
                await self._reconcile_one(n)
            except NotSentError as exc:  # the provider cannot be asked now; the lease retries
                log.warning("reconciliation postponed", error=str(exc)[:200])
        return len(late)

    async def _reconcile_one(self, n: Notification) -> None:
        status = await self._status_of(n.notification_id)
        if status not in LEASED:
            return  # the sender recorded its outcome after the claim: nothing to settle
        # Every decision below is recorded only from the status it was made on (and on
        # the same attempt): a sender that resumes meanwhile keeps its row. Were "sending"
        # requeued from "handing_over" too, an e-mail whose data had just started going
        # out would be sent again (RELIABILITY.md, finding 5).
        if n.channel == "email":
            if status == "sending":  # the data never left: nothing was delivered
                await self._requeue(n, "interrupted before the message data was sent", status)
            else:
                await self._unconfirmed(n, status)
            return
        if n.channel == "webhook" or not self._channels.sms.can_look_up:
            if n.channel == "webhook" or self._channels.sms.deduplicates:
                # The receiver drops a second request with the same idempotency key.
                await self._requeue(n, "outcome unknown; resending under the same key", status)
            else:
                await self._unconfirmed(n, status)
            return
        found = await self._channels.sms.lookup(self._sms(n), n.provider_message_id)
        await self._settle(n, found, status)

    async def _status_of(self, notification_id: uuid.UUID) -> str:
        async with self._pool.acquire() as conn:
            status: str = await conn.fetchval(
                "SELECT status FROM notifications WHERE notification_id = $1", notification_id
            )
        return status

    async def _settle(self, n: Notification, found: Lookup, status: str) -> None:
        """What the provider says of a message whose send ended without an answer, the
        row read in ``status``."""
        if found.state is ProviderState.NOT_FOUND:
            await self._requeue(n, "the provider never took it", status)
        elif found.state is ProviderState.FAILED:
            reason = f"the provider could not deliver it: {found.detail}"
            await self._fail(n, reason, dead=False, from_statuses=(status,))
        else:
            provider = self._channels.sms.name
            await self._sent(n, provider, found.provider_id, from_statuses=(status,))
            if found.state is ProviderState.DELIVERED:
                await self._delivered(n)

    async def _requeue(self, n: Notification, reason: str, status: str) -> None:
        if n.attempts >= self._settings.send_attempts:
            reason = f"gave up after {n.attempts} attempts: {reason}"
            await self._fail(n, reason, dead=True, from_statuses=(status,))
            return
        if await self._record(
            n,
            None,
            from_statuses=(status,),
            to_status="queued",
            not_before=datetime.now(UTC),
            last_error=reason,
            lease_until=None,
        ):
            log.info("reconciled: sending again", channel=n.channel, reason=reason)

    async def _unconfirmed(self, n: Notification, status: str) -> None:
        reason = (
            "the message data was sent and no reply came; the server cannot be asked "
            "whether it took the message (RFC 1047), so it is not sent again"
        )
        event = NotificationUnconfirmed(
            event_type=NotificationUnconfirmed.EVENT_TYPE,
            **self._envelope(n, "unconfirmed"),
            reason=reason,
        )
        if await self._record(
            n,
            event,
            from_statuses=(status,),
            to_status="unconfirmed",
            last_error=reason,
            lease_until=None,
        ):
            log.warning("notification unconfirmed: a person must check", channel=n.channel)

    # Delivery reports

    async def check_statuses(self) -> int:
        sms = self._channels.sms
        if not sms.can_look_up:
            return 0
        async with self._pool.acquire() as conn, conn.transaction():
            due = await store.claim_status_checks(conn, BATCH, self._settings.status_check_seconds)
        for n in due:
            try:
                found = await sms.lookup(self._sms(n), n.provider_message_id)
            except NotSentError:
                continue
            if found.state is ProviderState.DELIVERED:
                await self._delivered(n)
            elif found.state is ProviderState.FAILED:
                await self._undelivered(n, found.detail)
            elif n.status_checks >= self._settings.status_checks:
                await self._stop_checking(n)
        return len(due)

    async def _delivered(self, n: Notification) -> None:
        now = datetime.now(UTC)
        event = NotificationDelivered(
            event_type=NotificationDelivered.EVENT_TYPE,
            **self._envelope(n, "delivered"),
            provider=self._channels.sms.name,
            delivered_at=now,
        )
        await self._record(
            n,
            event,
            from_statuses=("sent",),
            to_status="delivered",
            delivered_at=now,
            next_status_check=None,
        )

    async def _undelivered(self, n: Notification, detail: str | None) -> None:
        event = NotificationFailed(
            event_type=NotificationFailed.EVENT_TYPE,
            **self._envelope(n, "failed"),
            reason=f"not delivered: {detail}",
            attempts=max(n.attempts, 1),
        )
        await self._record(
            n,
            event,
            from_statuses=("sent",),
            to_status="failed",
            last_error=f"not delivered: {detail}",
            next_status_check=None,
        )

    async def _stop_checking(self, n: Notification) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                "UPDATE notifications SET next_status_check = NULL WHERE notification_id = $1",
                n.notification_id,
            )


async def requeue_dead(conn: DbConnection, ids: list[uuid.UUID] | None) -> int:
    return await store.requeue_dead(conn, ids)
