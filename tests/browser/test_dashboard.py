"""The live dashboard (services/reporting/static/dashboard.html) in a real headless Chromium.

A small FastAPI app stands in for reporting: it serves the real page at /, and fake
/v1/reports/dashboard, /v1/cases/{no} and /v1/stream (server-sent events) whose payloads
are built from reporting's own pydantic models, so a change of the contract breaks this
test. Like reporting, it answers them only to the staff token the page's token field puts
in the ``staff_token`` cookie, and the case file only with a reason. The test pushes
dashboard messages down the stream and watches the page follow them without reloading.

Needs Debian's chromium and chromium-driver (deploy/local/ensure_chromium.sh installs
them); CHROMIUM_BINARY and CHROMEDRIVER point elsewhere. Without them the test fails.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import FileResponse, StreamingResponse
from selenium import webdriver
from selenium.webdriver.common.by import By

from services.reporting.api import (
    AssigneeView,
    AssignmentView,
    Backlog,
    CaseFile,
    ClockStats,
    ClockView,
    Dashboard,
    LateCase,
    NotificationView,
    SatisfactionReport,
    ScoreStats,
    SlaReport,
    Summary,
    TimelineEntry,
)
from tests.browser.chromium import (
    ARTIFACTS,
    full_page_screenshot,
    live_state,
    text,
    wait_for,
    wait_text,
)

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "services" / "reporting" / "static" / "dashboard.html"
NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)

FIRST_LATE = "261120003"
NEW_LATE = "261122004"
TOKEN = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJl"  # its shape; reporting checks it
REFUSED = "only the record's holder and their managers may read it"


# --- Payloads, built from reporting's models ----------------------------------------------


def late_case(no: str, *, status: str, clock: str, overdue_hours: float) -> LateCase:
    return LateCase(
        complaint_no=no,
        branch_id="hotel-demo",
        category="service_attitude",
        status=status,
        assignee_name="李静",
        clock=clock,
        due_at=NOW - timedelta(hours=overdue_hours),
        overdue_hours=overdue_hours,
    )


def dashboard(total: int, late: list[LateCase], *, minute: int = 0) -> Dashboard:
    open_cases = total - 1
    by_day = {(NOW - timedelta(days=d)).date().isoformat(): (d * 7) % 4 for d in range(1, 10)}
    by_day[NOW.date().isoformat()] = total - sum(by_day.values()) if total > 12 else 1
    return Dashboard(
        generated_at=NOW + timedelta(minutes=minute),
        summary=Summary(
            as_of=None,
            total=total,
            by_status={"received": 1, "assigned": open_cases - 1, "closed": 1},
            by_category={"service_attitude": total - 1, "billing": 1},
            by_branch={"hotel-demo": total},
            by_pack={"hotel": total},
            by_department={"front-office": total},
            by_channel={"phone": total},
            by_day=by_day,
            backlog=Backlog(
                open=open_cases,
                by_age={"<1d": 1, "1-3d": open_cases - 2, "3-7d": 1, ">7d": 0},
                oldest_hours=80.5,
            ),
        ),
        sla=SlaReport(
            clocks=[
                ClockStats(
                    clock="acknowledgement",
                    stopped=10,
                    met=9,
                    breached=1,
                    on_time_rate=0.9,
                    running=1,
                    overdue=0,
                ),
                ClockStats(
                    clock="resolution",
                    stopped=4,
                    met=3,
                    breached=1,
                    on_time_rate=0.75,
                    running=2,
                    overdue=len(late),
                ),
                ClockStats(
                    clock="return_visit",
                    stopped=0,
                    met=0,
                    breached=0,
                    on_time_rate=None,
                    running=1,
                    overdue=0,
                ),
            ],
            breaches=2,
            escalations_by_level={"1": 2},
        ),
        satisfaction=SatisfactionReport(
            overall=ScoreStats(count=6, mean=4.17, distribution={"3": 1, "4": 3, "5": 2}),
            by_branch={},
            by_department={},
            by_person={},
            reopen_rate=0.125,
            not_upheld_rate=0.05,
            return_visits_due=2,
            return_visits_done=1,
            return_visit_completion=0.5,
        ),
        late_cases=late,
    )


def case_file(no: str, status: str) -> CaseFile:
    received = NOW - timedelta(hours=30)
    return CaseFile(
        complaint_no=no,
        status=status,
        branch_id="hotel-demo",
        pack="hotel",
        category="service_attitude",
        channel="phone",
        severity="major",
        region=None,
        customer_type="in_house_guest",
        first_contact_staff="fo-agent",
        received_at=received,
        assignment=AssignmentView(
            department="front-office",
            assignee=AssigneeView(staff_id="fo-agent", name="李静"),
            assigned_at=received + timedelta(minutes=5),
        ),
        clocks=[
            ClockView(
                clock_id=uuid.uuid4(),
                name="resolution",
                rule="in-house-guest-24h",
                state="running",
                started_at=received,
                due_at=received + timedelta(hours=24),
                target_seconds=24 * 3600,
                calendar="elapsed",
                round=1,
                return_visit=False,
                paused_seconds=0,
                remaining_seconds=-6 * 3600,
                stopped_at=None,
            )
        ],
        notifications=[
            NotificationView(
                notification_id=uuid.uuid4(),
                channel="sms",
                recipient_masked="138****0000",
                template="acknowledgement",
                status="delivered",
                occurred_at=received + timedelta(minutes=1),
                reason=None,
                to_customer=True,
                dead_lettered=False,
            )
        ],
        timeline=[
            TimelineEntry(
                event_id=uuid.uuid4(),
                event_type=event_type,
                producer=producer,
                occurred_at=received + timedelta(minutes=minutes),
                details={},
            )
            for event_type, producer, minutes in [
                ("ComplaintReceived", "intake", 0),
                ("ComplaintAssigned", "routing", 5),
                ("SlaBreached", "sla", 24 * 60),
                ("ComplaintEscalated", "sla", 24 * 60 + 1),
            ]
        ],
    )


# --- A fake reporting service ----------------------------------------------------------------


class Hub:
    """What the fake service answers, and the open streams; the test drives it from its thread."""

    def __init__(self, first: Dashboard) -> None:
        self.current = first
        self.cases: dict[str, CaseFile] = {}
        self.refused: set[str] = set()
        self.reasons: list[str] = []
        self.stream_queries: list[dict[str, str]] = []
        self.dashboard_queries: list[dict[str, str]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: set[asyncio.Queue[Dashboard | None]] = set()
        self._open = asyncio.Event()
        self._open.set()

    def _in_loop(self, fn: Callable[[], object]) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(fn)

    def publish(self, message: Dashboard) -> None:
        """Send one dashboard message down every open stream (and answer it from now on)."""
        self.current = message
        self._in_loop(lambda: [q.put_nowait(message) for q in self._subscribers])

    def drop_streams(self) -> None:
        self._in_loop(lambda: [q.put_nowait(None) for q in self._subscribers])

    def hold_connections(self) -> None:
        self._in_loop(self._open.clear)

    def release_connections(self) -> None:
        self._in_loop(self._open.set)

    async def wait_open(self) -> None:
        await self._open.wait()

    @property
    def streams(self) -> int:
        return len(self._subscribers)

    def subscribe(self) -> asyncio.Queue[Dashboard | None]:
        queue: asyncio.Queue[Dashboard | None] = asyncio.Queue()
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Dashboard | None]) -> None:
        self._subscribers.discard(queue)

    def close(self) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.drop_streams()


def sse(message: Dashboard) -> str:
    return f"event: dashboard\ndata: {message.model_dump_json()}\n\n"


def signed_in(request: Request) -> None:
    if request.cookies.get("staff_token") != TOKEN:
        raise HTTPException(status_code=401, detail="send a staff token")


def fake_reporting(hub: Hub) -> FastAPI:
    app = FastAPI()

    @app.get("/")
    async def page() -> FileResponse:
        return FileResponse(PAGE, media_type="text/html")

    @app.get("/v1/reports/dashboard", response_model=Dashboard)
    async def get_dashboard(request: Request) -> Dashboard:
        signed_in(request)
        hub.dashboard_queries.append(dict(request.query_params))
        return hub.current

    @app.get("/v1/cases/{complaint_no}", response_model=CaseFile)
    async def get_case(
        request: Request, complaint_no: str, reason: str = Header(alias="X-Access-Reason")
    ) -> CaseFile:
        signed_in(request)
        hub.reasons.append(reason.encode("latin-1").decode())  # the bytes, as UTF-8
        if complaint_no in hub.refused:
            raise HTTPException(status_code=403, detail=REFUSED)
        if complaint_no not in hub.cases:
            raise HTTPException(status_code=404, detail="no such case")
        return hub.cases[complaint_no]

    @app.get("/v1/stream")
    async def stream(request: Request) -> StreamingResponse:
        signed_in(request)
        await hub.wait_open()
        hub.stream_queries.append(dict(request.query_params))
        queue = hub.subscribe()

        async def frames() -> AsyncIterator[str]:
            try:
                yield "retry: 300\n\n"
                yield sse(hub.current)
                while (message := await queue.get()) is not None:
                    yield sse(message)
            finally:
                hub.unsubscribe(queue)

        return StreamingResponse(
            frames(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return app


@dataclass
class Served:
    url: str
    hub: Hub


@pytest.fixture
def served() -> Iterator[Served]:
    hub = Hub(
        dashboard(
            3, [late_case(FIRST_LATE, status="assigned", clock="resolution", overdue_hours=2.5)]
        )
    )
    hub.cases[FIRST_LATE] = case_file(FIRST_LATE, "assigned")
    hub.cases[NEW_LATE] = case_file(NEW_LATE, "escalated")

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        fake_reporting(hub), log_level="warning", lifespan="off", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)

    async def serve() -> None:
        hub.loop = asyncio.get_running_loop()
        await server.serve(sockets=[sock])

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        thread.join(0.025)
    assert server.started, "the fake reporting service did not start"
    try:
        yield Served(f"http://127.0.0.1:{port}", hub)
    finally:
        hub.close()
        server.should_exit = True
        thread.join(10)
        sock.close()


# --- The test --------------------------------------------------------------------------------


def test_dashboard_follows_the_stream(served: Served, browser: webdriver.Chrome) -> None:
    hub = served.hub
    browser.get(f"{served.url}/?lang=zh")

    # Without a token the figures are refused, and the page says what to do.
    wait_text(browser, "#notice", "请输入员工令牌以查看数据。")
    assert live_state(browser) == "offline"
    assert not browser.find_element(By.ID, "total").is_displayed()
    assert text(browser, "#token-state") == "尚未保存令牌。"
    browser.find_element(By.ID, "f-token").send_keys(TOKEN)
    browser.find_element(By.ID, "token-save").click()
    assert browser.get_cookie("staff_token")["value"] == TOKEN
    assert browser.get_cookie("staff_token")["sameSite"] == "Strict"
    assert browser.find_element(By.ID, "f-token").get_attribute("value") == ""
    wait_for(
        browser,
        "the notice to go",
        lambda: not browser.find_element(By.ID, "notice").is_displayed(),
    )

    # The first message: three complaints, one late case, and the stream is live.
    wait_text(browser, "#total", "3")
    wait_for(browser, "the live indicator", lambda: live_state(browser) == "live")
    assert text(browser, "#live") == "实时"
    assert text(browser, "#backlog") == "2"
    assert text(browser, "#on-time") == "85.7%"  # (9 + 3) met of (10 + 4) ended
    assert text(browser, "#breaches") == "2"
    assert text(browser, "#reopen-rate") == "12.5%"
    assert text(browser, "#satisfaction").startswith("4.17")
    rows = browser.find_elements(By.CSS_SELECTOR, "#late-cases tr[data-complaint-no]")
    assert [row.get_attribute("data-complaint-no") for row in rows] == [FIRST_LATE]
    for chart in ["backlog", "by-day", "sla", "satisfaction", "status"]:
        assert browser.find_elements(
            By.CSS_SELECTOR, f"#chart-{chart} svg rect, #chart-{chart} svg circle"
        ), chart

    # A second message, one more complaint and a new late case: the page follows, no reload.
    browser.execute_script("window.__marker = 1")
    wait_for(browser, "the stream to be subscribed", lambda: hub.streams)
    hub.publish(
        dashboard(
            4,
            [
                late_case(NEW_LATE, status="escalated", clock="resolution", overdue_hours=6),
                late_case(FIRST_LATE, status="assigned", clock="resolution", overdue_hours=2.5),
            ],
            minute=1,
        )
    )
    wait_text(browser, "#total", "4")
    assert browser.execute_script("return window.__marker") == 1, "the page reloaded"
    new_row = browser.find_element(
        By.CSS_SELECTOR, f'#late-cases tr[data-complaint-no="{NEW_LATE}"]'
    )
    assert "escalated" in new_row.text
    assert "6.0" in new_row.text
    full_page_screenshot(browser, ARTIFACTS / "dashboard-zh.png")

    # Its complaint number opens the case file in the side panel, once a reason is given
    # (in Chinese: it travels as its UTF-8 bytes).
    new_row.find_element(By.CSS_SELECTOR, "a").click()
    reason = browser.find_element(By.ID, "case-reason")
    assert reason.get_attribute("required") is not None
    browser.find_element(By.ID, "case-open").click()  # no reason: the form stops it
    assert hub.reasons == []
    reason.send_keys("回访客户")
    browser.find_element(By.ID, "case-open").click()
    wait_text(browser, "#case-status", "escalated")
    assert hub.reasons == ["回访客户"]
    panel = browser.find_element(By.ID, "case-panel")
    assert panel.is_displayed()
    assert NEW_LATE in text(browser, "#case-title")
    assert "ComplaintEscalated" in panel.text
    assert "李静" in panel.text
    assert "处理记录" in panel.text

    # The language switch relabels the page, the open panel included.
    assert text(browser, "[data-i18n=tile_total]") == "投诉总数"
    browser.find_element(By.ID, "lang-en").click()
    wait_text(browser, "[data-i18n=tile_total]", "Total complaints")
    assert text(browser, "#live") == "Live"
    assert "timeline" in panel.text.lower()
    assert browser.find_element(By.ID, "lang-en").get_attribute("aria-pressed") == "true"
    assert browser.execute_script("return document.documentElement.lang") == "en"
    full_page_screenshot(browser, ARTIFACTS / "dashboard-case.png")
    browser.find_element(By.ID, "case-close").click()
    wait_for(browser, "the case panel to close", lambda: not panel.is_displayed())

    # A record beyond the token's clearance: the panel says why, with the last reason kept.
    hub.refused.add(FIRST_LATE)
    browser.find_element(
        By.CSS_SELECTOR, f'#late-cases a[data-complaint-no="{FIRST_LATE}"]'
    ).click()
    assert browser.find_element(By.ID, "case-reason").get_attribute("value") == "回访客户"
    browser.find_element(By.ID, "case-open").click()
    wait_text(browser, "#case-body .error", f"Your token does not allow this: {REFUSED}")
    browser.find_element(By.ID, "case-close").click()

    # The stream drops: the page says so, reconnects by itself and catches up.
    hub.hold_connections()
    hub.drop_streams()
    wait_for(browser, "'reconnecting'", lambda: live_state(browser) == "reconnecting")
    assert "Reconnecting" in text(browser, "#live")
    hub.current = dashboard(5, hub.current.late_cases, minute=2)
    hub.release_connections()
    wait_text(browser, "#total", "5")
    wait_for(browser, "the live indicator", lambda: live_state(browser) == "live")
    assert browser.execute_script("return window.__marker") == 1, "the page reloaded"

    # The filters reopen the stream with their query parameters.
    branch = browser.find_element(By.ID, "f-branch")
    branch.send_keys("hotel-demo")
    browser.find_element(By.ID, "f-department").send_keys("front-office")
    browser.find_element(By.ID, "f-apply").click()
    wanted = {"branch_id": "hotel-demo", "department": "front-office"}
    wait_for(browser, "a filtered stream", lambda: hub.stream_queries[-1] == wanted)
    assert wanted in hub.dashboard_queries
    assert "branch_id=hotel-demo" in browser.current_url
    wait_for(browser, "the live indicator", lambda: live_state(browser) == "live")
    full_page_screenshot(browser, ARTIFACTS / "dashboard.png")

    # Forgetting the token stops the figures, and the page says so.
    browser.find_element(By.ID, "token-clear").click()
    assert browser.get_cookie("staff_token") is None
    wait_text(browser, "#notice", "Enter your staff token to see the figures.")
    wait_for(browser, "the stream to stop", lambda: live_state(browser) == "offline")
    assert not browser.find_element(By.ID, "total").is_displayed()  # nothing left on screen
