"""Sending e-mail through SMTP."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Protocol

import aiosmtplib

from services.notify.settings import NotifySettings

TRANSIENT_SMTP_ERRORS = (
    aiosmtplib.SMTPConnectError,
    aiosmtplib.SMTPServerDisconnected,
    aiosmtplib.SMTPTimeoutError,
    OSError,
)


class EmailSender(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class SmtpSender:
    def __init__(self, settings: NotifySettings) -> None:
        self._settings = settings

    async def send(self, message: EmailMessage) -> None:
        password = self._settings.smtp_password
        await aiosmtplib.send(
            message,
            hostname=self._settings.smtp_host,
            port=self._settings.smtp_port,
            start_tls=self._settings.smtp_starttls,
            username=self._settings.smtp_username,
            password=password.get_secret_value() if password else None,
            timeout=self._settings.smtp_timeout,
        )
