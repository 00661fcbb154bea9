"""Where notify's messages land in tests: a real SMTP server (aiosmtpd) and the local fake
SMS providers (deploy/local/sms_sink.py), both served inside the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import importlib.util
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import uvicorn
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.processes import REPO, free_port


@dataclass
class MailSink:
    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    refuse_next: int = 0  # answer 451 to this many messages: a server busy for a while
    silent_next: int = 0  # take this many messages, then never answer: the reply is lost

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        if self.refuse_next > 0:
            self.refuse_next -= 1
            return "451 4.3.0 try again later"
        parsed = email.message_from_bytes(
            envelope.original_content or b"", policy=email.policy.default
        )
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        if self.silent_next > 0:
            self.silent_next -= 1
            await asyncio.sleep(3600)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if str(m["To"]) == address]

    def for_complaint(self, complaint_no: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["X-Complaint-No"] == complaint_no]


@asynccontextmanager
async def mail_sink() -> AsyncIterator[MailSink]:
    sink = MailSink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(sink, enable_SMTPUTF8=True, decode_data=False), "127.0.0.1", 0
    )
    sink.port = server.sockets[0].getsockname()[1]
    try:
        yield sink
    finally:
        server.close()
        await server.wait_closed()


@dataclass
class SmsSink:
    url: str
    client: httpx.AsyncClient

    async def messages(self, provider: str | None = None) -> list[dict[str, Any]]:
        params = {"provider": provider} if provider else {}
        answer = await self.client.get(f"{self.url}/_sink/messages", params=params)
        answer.raise_for_status()
        found: list[dict[str, Any]] = answer.json()
        return found

    async def fault(self, provider: str, mode: str, count: int) -> None:
        answer = await self.client.post(
            f"{self.url}/_sink/faults", json={"provider": provider, "mode": mode, "count": count}
        )
        answer.raise_for_status()


def _sms_sink_module() -> ModuleType:
    """deploy/local is scripts, not a package: load the fake by its path."""
    path = REPO / "deploy" / "local" / "sms_sink.py"
    spec = importlib.util.spec_from_file_location("sms_sink", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("sms_sink", module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@asynccontextmanager
async def sms_sink(state_dir: Path, port: int | None = None) -> AsyncIterator[SmsSink]:
    """The fake providers with their development credentials (notify's defaults)."""
    app = _sms_sink_module().create_app(
        state_dir,
        aliyun_secret="dev-access-secret",
        twilio_sid="ACdev0000000000000000000000000000",
        twilio_token="dev-twilio-token",
        webhook_secret="dev-webhook-secret",
    )
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            yield SmsSink(f"http://127.0.0.1:{port}", client)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
