"""The real reporting service, on the real broker and database, in headless Chromium: the
dashboard asks for a staff token and says when one does not allow reports, shows the live
counts once given one, and a new complaint appears without a reload."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import uvicorn
from aiokafka import AIOKafkaProducer
from selenium import webdriver

from services.reporting.app import build_app
from services.reporting.settings import ReportingSettings
from shared.topics import Topics
from tests.browser.chromium import ARTIFACTS, full_page_screenshot, wait_for, wait_text
from tests.contracts.golden import golden_samples
from tests.support.auth import staff_token
from tests.support.infra import Infra


@pytest.fixture
def reporting_url(infra: Infra, database_url: str, topics: Topics) -> Iterator[str]:
    settings = ReportingSettings(
        database_url=database_url,
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        complaints_topic_namespace=topics.namespace,
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(build_app(settings), log_level="warning", timeout_graceful_shutdown=2)
    )
    thread = threading.Thread(target=asyncio.run, args=(server.serve(sockets=[sock]),), daemon=True)
    thread.start()
    for _ in range(400):
        if server.started:
            break
        thread.join(0.05)
    assert server.started, "reporting did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


def received(complaint_no: str) -> bytes:
    return json.dumps(
        {
            **golden_samples()["ComplaintReceived"],
            "event_id": str(uuid.uuid4()),
            "complaint_no": complaint_no,
            "received_at": datetime.now(UTC).isoformat(),
            "occurred_at": datetime.now(UTC).isoformat(),
        }
    ).encode()


async def test_a_new_complaint_appears_on_the_live_dashboard_without_a_reload(
    infra: Infra, topics: Topics, reporting_url: str, browser: webdriver.Chrome
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for number in ("261122101", "261122102"):
            await producer.send_and_wait(topics.intake.name, received(number), key=number.encode())
        browser.get(f"{reporting_url}/?lang=en")
        wait_text(browser, "#notice", "Enter your staff token to see the figures.")
        # An agent's token does not allow reports; the hotel's manager's does (its
        # complaints are the hotel's: golden_samples).
        use_token(browser, staff_token("hotel/fo-agent"))
        wait_text(
            browser,
            "#notice",
            "Your token does not allow this: "
            "reports are for supervisors, managers, auditors and branch systems",
        )
        use_token(browser, staff_token("hotel/deputy-gm"))
        wait_text(browser, "#total", "2")
        wait_for(
            browser,
            "the notice to go",
            lambda: not browser.find_element("id", "notice").is_displayed(),
        )
        browser.execute_script("window.__marker = 'still here'")
        await producer.send_and_wait(topics.intake.name, received("261122103"), key=b"261122103")
        wait_text(browser, "#total", "3")
        assert browser.execute_script("return window.__marker") == "still here"
        wait_for(browser, "the live indicator", lambda: browser.find_element("id", "live"))
        full_page_screenshot(browser, ARTIFACTS / "dashboard-live.png")
    finally:
        await producer.stop()


def use_token(browser: webdriver.Chrome, token: str) -> None:
    field = browser.find_element("id", "f-token")
    field.send_keys(token)
    browser.find_element("id", "token-save").click()
