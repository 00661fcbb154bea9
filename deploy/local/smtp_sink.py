"""A development SMTP server that delivers nothing: every message becomes a .eml file.

Why: the notify service sends real SMTP, and in development and tests we want to
see what it sent without a mail server, an internet connection or any chance of
mailing a real customer. Each accepted message is written to
<dir>/<UTC timestamp>-<uuid>.eml (default dir: <repo>/.local/mail) atomically, via
a temporary file and os.replace, so a reader polling the folder never sees half a
message. The file holds the raw message exactly as received, preceded by two
header lines recording the SMTP envelope: X-Sink-Mail-From and X-Sink-Rcpt-To.

Any AUTH credentials are accepted (without TLS), so a client configured with a
user name and password works too. The log shows one line per message with the
addresses masked (a***@example.com): logs must not carry customer addresses.

    python deploy/local/smtp_sink.py [--host 127.0.0.1] [--port 8025] [--dir PATH]

Defaults come from SMTP_SINK_HOST and SMTP_SINK_PORT when set. Stops cleanly, with
exit status 0, on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIR = REPO_ROOT / ".local" / "mail"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8025
SERVER_NAME = "smtp-sink.localhost"
DATA_SIZE_LIMIT = 32 * 1024 * 1024

log = logging.getLogger("smtp_sink")


def mask_address(address: str) -> str:
    """a***@example.com: enough to tell messages apart, not enough to identify anyone."""
    local, at, domain = address.strip("<>").rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}" if local else f"***@{domain}"


def message_file_name(now: datetime) -> str:
    return f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{uuid.uuid4()}.eml"


def envelope_headers(envelope: Envelope, content: bytes) -> bytes:
    """The envelope as header lines, with the message's own line ending."""
    newline = b"\r\n" if b"\r\n" in content else b"\n"
    mail_from = envelope.mail_from or ""
    rcpt_to = ", ".join(envelope.rcpt_tos)
    lines = [f"X-Sink-Mail-From: <{mail_from}>", f"X-Sink-Rcpt-To: {rcpt_to}"]
    return b"".join(line.encode("utf-8") + newline for line in lines)


def write_atomically(directory: Path, name: str, data: bytes) -> Path:
    """Write to a hidden temp file in the same folder, fsync, then rename into place."""
    directory.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(dir=directory, prefix=".incoming-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as temp:
            temp.write(data)
            temp.flush()
            os.fsync(temp.fileno())
        target = directory / name
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return target


class MailDirHandler:
    """aiosmtpd handler: store each message in a folder, one file per message."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd hook name
        content = envelope.original_content or b""
        data = envelope_headers(envelope, content) + content
        name = message_file_name(datetime.now(UTC))
        try:
            path = await asyncio.to_thread(write_atomically, self.directory, name, data)
        except OSError:
            log.exception("could not store a message in %s", self.directory)
            return "451 Requested action aborted: could not store the message"
        recipients = ", ".join(mask_address(rcpt) for rcpt in envelope.rcpt_tos)
        sender = mask_address(envelope.mail_from or "")
        log.info("stored %s (%d bytes) from %s to %s", path.name, len(data), sender, recipients)
        return "250 Message accepted for delivery"


def accept_any_login(*_: Any) -> AuthResult:
    """Accept every AUTH attempt: this is a sink, credentials protect nothing here."""
    return AuthResult(success=True)


def make_smtp(handler: MailDirHandler) -> SMTP:
    return SMTP(
        handler,
        hostname=SERVER_NAME,
        data_size_limit=DATA_SIZE_LIMIT,
        enable_SMTPUTF8=True,
        decode_data=False,
        auth_require_tls=False,
        authenticator=accept_any_login,
    )


async def serve(host: str, port: int, directory: Path) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    handler = MailDirHandler(directory)
    server = await loop.create_server(lambda: make_smtp(handler), host=host, port=port)
    log.info("listening on %s:%d, storing messages in %s", host, port, directory)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        server.close()
        await server.wait_closed()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Development SMTP sink: mail becomes .eml files.")
    parser.add_argument("--host", default=os.environ.get("SMTP_SINK_HOST") or DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=None, help=f"default {DEFAULT_PORT}")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="where .eml files go")
    args = parser.parse_args(argv)
    if args.port is None:
        raw = os.environ.get("SMTP_SINK_PORT") or str(DEFAULT_PORT)
        if not raw.isdigit():
            parser.error(f"SMTP_SINK_PORT={raw!r} is not a port number")
        args.port = int(raw)
    return args


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    # aiosmtpd logs every command line, addresses included, at INFO; and it warns about its
    # own deprecated Session.login_data on every successful AUTH.
    smtp_log = logging.getLogger("mail.log")
    smtp_log.setLevel(logging.WARNING)
    smtp_log.addFilter(lambda record: "login_data is deprecated" not in record.getMessage())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging()
    directory = args.dir.resolve()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        log.error("cannot create the mail folder %s: %s", directory, error)
        return 1
    try:
        asyncio.run(serve(args.host, args.port, directory))
    except OSError as error:
        log.error("cannot serve on %s:%d: %s", args.host, args.port, error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
