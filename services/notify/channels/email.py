"""E-mail through SMTP, in two steps so that a crash leaves a clear trail.

SMTP cannot be asked afterwards whether it took a message (RFC 1047): once the data
has gone, a lost reply leaves the outcome unknown. So the sender calls
``before_data`` (which records the hand-over) after the server has accepted sender and
recipient and before the message data goes. A send interrupted before that point
certainly delivered nothing and may be retried; one interrupted after it is reported
unconfirmed rather than sent twice.

Connections are kept for the next message. One the server closed while it sat idle
fails at MAIL FROM, before anything is handed over, and the message goes on a new one.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Awaitable, Callable
from email.message import Message
from email.utils import parseaddr

import aiosmtplib

from services.notify.channels.base import NotSentError, OutcomeUnknownError, RejectedError

_NOT_CONNECTED = (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, OSError)


class SmtpSender:
    name = "smtp"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        start_tls: bool,
        username: str | None,
        password: str | None,
        timeout: float,
        keep_idle: int = 8,
    ) -> None:
        self._host = host
        self._port = port
        self._start_tls = start_tls
        self._username = username
        self._password = password
        self._timeout = timeout
        # aiosmtplib would otherwise look the name up in a thread on every connection.
        self._local_hostname = socket.getfqdn()
        self._keep_idle = keep_idle
        self._idle: list[aiosmtplib.SMTP] = []

    async def send(self, message: Message, before_data: Callable[[], Awaitable[None]]) -> str:
        """Deliver ``message`` to the server; its Message-ID."""
        while self._idle:
            client = self._idle.pop()
            try:
                return await self._converse(client, message, before_data)
            except _StaleConnectionError:
                continue  # the server had closed it while idle; nothing went
        return await self._converse(self._new_client(), message, before_data)

    def _new_client(self) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=self._host,
            port=self._port,
            start_tls=self._start_tls,
            username=self._username,
            password=self._password,
            timeout=self._timeout,
            local_hostname=self._local_hostname,
        )

    async def _converse(
        self,
        client: aiosmtplib.SMTP,
        message: Message,
        before_data: Callable[[], Awaitable[None]],
    ) -> str:
        reused = client.is_connected
        try:
            if not reused:
                await client.connect()
            await client.mail(parseaddr(str(message["From"]))[1])
            await client.rcpt(str(message["To"]))
        except aiosmtplib.SMTPResponseException as exc:
            client.close()
            raise _refusal(exc) from exc
        except (*_NOT_CONNECTED, aiosmtplib.SMTPException) as exc:
            client.close()
            if reused:
                raise _StaleConnectionError from exc
            raise NotSentError(f"{type(exc).__name__}: {exc}") from exc
        try:
            await before_data()  # may refuse: then nothing is handed over
        except BaseException:
            client.close()
            raise
        try:
            await client.data(message.as_bytes())
        except aiosmtplib.SMTPResponseException as exc:
            # A reply to the data is the server's answer: it refused the message.
            client.close()
            raise _refusal(exc) from exc
        except (*_NOT_CONNECTED, aiosmtplib.SMTPException) as exc:
            client.close()
            raise OutcomeUnknownError(f"{type(exc).__name__} after the data was sent") from exc
        # Kept open for the next message: connecting and greeting cost more round trips
        # than the message itself.
        if len(self._idle) < self._keep_idle:
            self._idle.append(client)
        else:
            with contextlib.suppress(*_NOT_CONNECTED, aiosmtplib.SMTPException):
                await client.quit()  # the message is taken; a lost goodbye changes nothing
            client.close()
        return str(message["Message-ID"])

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


class _StaleConnectionError(Exception):
    """An idle connection the server had dropped: nothing was sent on it."""


def _refusal(exc: aiosmtplib.SMTPResponseException) -> NotSentError | RejectedError:
    text = f"{exc.code} {exc.message}"
    return NotSentError(text) if 400 <= exc.code < 500 else RejectedError(text)
