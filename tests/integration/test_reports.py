"""1,000 complaints through the real pipeline (intake, routing, sla, reporting on the real
broker and database), with staff actions, feedback, compensation and late cases: every
report equals the figures computed here, independently, from the raw events on the
topics; the summary as it stood at a past moment too; and a rebuild from offset 0,
swapped in while the API runs, gives the same reports."""

from __future__ import annotations

import asyncio
import csv
import io
import math
import random
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx

from services.intake.cases import feedback_token
from services.intake.settings import IntakeSettings
from services.reporting.rebuild import rebuild
from services.reporting.settings import ReportingSettings
from services.routing.app import build_app as build_routing
from services.sla.app import build_app as build_sla
from shared.contracts import Event, decode_event
from shared.contracts.intake import CaseEvent, ComplaintReceived
from shared.policy import load_packs
from shared.settings import ServiceSettings
from shared.topics import Topics
from tests.support.infra import Infra
from tests.support.intake import running_intake, wait_for
from tests.support.kafka import read_records
from tests.support.processes import REPO
from tests.support.reporting import reporting_client
from tests.support.services import running

COMPLAINTS = 1000
LATE_SHARE = 0.12
TZ = ZoneInfo("Asia/Shanghai")
PACKS = load_packs(REPO / "policy-packs")
SECRET = IntakeSettings().feedback_secret.get_secret_value().encode()


def submissions(rng: random.Random) -> list[dict[str, Any]]:
    packs = sorted(PACKS.packs.values(), key=lambda p: p.pack)
    bodies = []
    for index in range(COMPLAINTS):
        pack = packs[index % len(packs)]
        body: dict[str, Any] = {
            "branch_id": f"{pack.pack}-demo",
            "channel": rng.choice(["phone", "web", "email", "walk_in"]),
            "customer": {"name": f"客户{index}", "type": "end_customer", "language": "zh"},
            "description": f"第{index}号投诉",
            "category": rng.choice(pack.categories).code,
            "severity": rng.choices(["normal", "urgent", "major"], [85, 12, 3])[0],
        }
        if rng.random() < LATE_SHARE:
            body["taken_at"] = (datetime.now(UTC) - timedelta(days=2, hours=index % 24)).isoformat()
        bodies.append(body)
    return bodies


async def in_batches(items: list[Any], work: Any, size: int = 25) -> None:
    for start in range(0, len(items), size):
        await asyncio.gather(*(work(item) for item in items[start : start + size]))


async def act(intake: httpx.AsyncClient, number: str, path: str, actor: str, **body: Any) -> None:
    response = await intake.post(f"/v1/complaints/{number}/{path}", json={"actor": actor, **body})
    assert response.status_code == 200, (path, response.text)


async def walk(intake: httpx.AsyncClient, number: str, plan: str, rng: random.Random) -> None:
    """One case through its life, as the plan says."""
    case = (await intake.get(f"/v1/complaints/{number}")).json()
    pack = PACKS.require(case["pack"])
    actor = case.get("assignee_id") or pack.staff[0].id
    await act(intake, number, "investigation", actor)
    if plan == "escalated":
        await act(intake, number, "escalation", actor, reason="超出部门权限")
    if plan == "not-upheld":
        await act(intake, number, "not-upheld", actor, reason="经核实不属实")
        return
    if plan == "compensated":
        await act(
            intake,
            number,
            "compensation",
            actor,
            compensation_amount=f"{rng.randint(1, 50) * 10}.00",
            loss_amount=f"{rng.randint(5, 90) * 10}.50",
            responsible_department=pack.departments[-1].code,
            share="0.5",
        )
    await act(intake, number, "decision", actor, decision="已处理")
    scores = (
        {"quality": 2, "attitude": 3, "speed": 2}
        if plan == "unhappy"
        else {"quality": rng.randint(3, 5), "attitude": rng.randint(3, 5), "speed": 4}
    )
    answer = await intake.post(
        f"/v1/complaints/{number}/feedback",
        json={"token": feedback_token(SECRET, number), **scores},
    )
    assert answer.status_code == 200, answer.text
    if plan != "unhappy":
        await act(intake, number, "resolution", actor, resolution="客户确认")
        await act(intake, number, "close", actor)


async def topic_events(infra: Infra, topics: Topics) -> list[Event]:
    seen: dict[Any, Event] = {}
    for role in ("intake", "routing", "sla", "notify"):
        for record in await read_records(
            infra.kafka_bootstrap_servers, topics.by_role(role).name, expected=10**9, timeout=4
        ):
            event = decode_event(record.value)
            if event is not None:
                seen[event.event_id] = event
    return list(seen.values())


class Independent:
    """The reports' figures, computed from the raw events alone."""

    def __init__(self, events: list[Event], as_of: datetime | None = None) -> None:
        self.events = [e for e in events if as_of is None or e.occurred_at <= as_of]
        self.received = {e.complaint_no: e for e in self.events if isinstance(e, ComplaintReceived)}
        latest: dict[str, CaseEvent] = {}
        for event in self.events:
            if isinstance(event, CaseEvent):
                known = latest.get(event.complaint_no)
                if known is None or known.sequence < event.sequence:
                    latest[event.complaint_no] = event
        self.status = {no: latest[no].status.value for no in self.received}

    def of_type(self, event_type: str) -> list[Any]:
        return [e for e in self.events if e.event_type == event_type]

    def summary(self) -> dict[str, Any]:
        received = self.received.values()
        return {
            "total": len(self.received),
            "by_status": dict(Counter(self.status.values())),
            "by_category": dict(Counter(e.category for e in received)),
            "by_branch": dict(Counter(e.branch_id for e in received)),
            "by_pack": dict(Counter(e.pack for e in received)),
            "by_channel": dict(Counter(e.channel.value for e in received)),
            "by_day": dict(
                Counter(e.received_at.astimezone(TZ).date().isoformat() for e in received)
            ),
            "open": sum(1 for s in self.status.values() if s not in ("closed", "not_upheld")),
        }

    def clocks(self) -> dict[str, dict[str, int]]:
        state: dict[Any, tuple[str, str]] = {}
        for event in sorted(
            (e for e in self.events if e.producer == "sla" and hasattr(e, "clock_id")),
            key=lambda e: e.occurred_at,
        ):
            clock_id = event.clock_id  # type: ignore[attr-defined]
            if event.event_type == "ClockStarted":
                if event.return_visit:  # type: ignore[attr-defined]
                    continue
                state[clock_id] = (event.name, "running")  # type: ignore[attr-defined]
            elif clock_id in state:
                name, now = state[clock_id]
                if event.event_type == "ClockBreached":
                    now = "breached"
                elif event.event_type == "ClockStopped":
                    now = event.outcome  # type: ignore[attr-defined]
                state[clock_id] = (name, now)
        result: dict[str, dict[str, int]] = defaultdict(lambda: {"met": 0, "breached": 0})
        for name, now in state.values():
            if now in ("met", "breached"):
                result[name][now] += 1
            else:
                result[name]
        return dict(result)

    def escalations(self) -> dict[str, int]:
        levels = Counter(str(e.level) for e in self.of_type("EscalationRaised"))
        levels.update("staff" for _ in self.of_type("ComplaintEscalated"))
        return dict(levels)

    def satisfaction(self) -> dict[str, Any]:
        scores = [(e.quality + e.attitude + e.speed) / 3 for e in self.of_type("FeedbackReceived")]
        decided = {
            e.complaint_no
            for e in self.events
            if e.event_type
            in ("DecisionCommunicated", "ComplaintAnsweredOnSpot", "ComplaintNotUpheld")
        }
        reopened = {e.complaint_no for e in self.of_type("ComplaintReopened")}
        not_upheld = {e.complaint_no for e in self.of_type("ComplaintNotUpheld")}
        return {
            "count": len(scores),
            "mean": round(sum(scores) / len(scores), 3),
            "distribution": {
                str(s): sum(1 for x in scores if math.floor(x + 0.5) == s) for s in range(1, 6)
            },
            "reopen_rate": round(len(reopened) / len(decided), 4),
            "not_upheld_rate": round(len(not_upheld) / len(decided), 4),
        }

    def compensation_total(self) -> float:
        return round(
            sum(float(e.compensation_amount) for e in self.of_type("CompensationRecorded")), 2
        )


async def test_every_report_equals_the_figures_from_the_raw_events(
    infra: Infra, database_url: str, topics: Topics
) -> None:
    rng = random.Random(20261122)
    common = {
        "database_url": database_url,
        "kafka_bootstrap_servers": infra.kafka_bootstrap_servers,
        "complaints_topic_namespace": topics.namespace,
    }
    reporting_settings = ReportingSettings(**common)
    async with (
        running_intake(database_url, infra.kafka_bootstrap_servers, topics) as intake,
        running(build_routing(ServiceSettings(**common)), build_sla(ServiceSettings(**common))),
        reporting_client(reporting_settings) as reporting,
    ):
        numbers: list[str] = []

        async def submit(body: dict[str, Any]) -> None:
            response = await intake.post("/v1/complaints", json=body)
            assert response.status_code == 201, response.text
            numbers.append(response.json()["complaint_no"])

        await in_batches(submissions(rng), submit)
        today = datetime.now(TZ).date()
        for branch in sorted({f"{p}-demo" for p in PACKS.packs}):
            for back in range(3):
                day = today - timedelta(days=back)
                answer = await intake.put(
                    f"/v1/branches/{branch}/service-volumes/{day}",
                    json={"services": rng.randint(2000, 9000)},
                )
                assert answer.status_code == 200

        async def assigned() -> bool:
            summary = (await reporting.get("/v1/reports/summary")).json()
            return bool(
                summary["total"] == COMPLAINTS and "unknown" not in summary["by_department"]
            )

        await wait_for(assigned, timeout=180)
        as_of = datetime.now(UTC)
        await asyncio.sleep(0.5)

        plans = ["closed"] * 180 + ["unhappy"] * 40 + ["not-upheld"] * 30
        plans += ["escalated"] * 30 + ["compensated"] * 40
        chosen = rng.sample(numbers, len(plans))
        await in_batches(
            list(zip(chosen, plans, strict=True)),
            lambda pair: walk(intake, pair[0], pair[1], rng),
            size=20,
        )

        await wait_for(lambda: quiet(database_url), timeout=240, interval=0.1)
        events = await topic_events(infra, topics)
        wanted = [e.event_id for e in events]

        async def all_projected() -> bool:
            return bool(await projected(database_url, wanted) == len(wanted))

        await wait_for(all_projected, timeout=60)
        independent = Independent(events)
        reports_now = await all_reports(reporting, today)
        check_against(independent, reports_now)
        await check_rollups_answer_as_the_cases_do(reporting)
        await check_monthly_pages(reporting, reports_now["monthly"])

        # As it stood before any staff action.
        then = (
            await reporting.get("/v1/reports/summary", params={"as_of": as_of.isoformat()})
        ).json()
        expected_then = Independent(events, as_of).summary()
        assert then["total"] == expected_then["total"]
        assert then["by_status"] == expected_then["by_status"]

        # CSV says what JSON says.
        text = (await reporting.get("/v1/reports/summary", params={"format": "csv"})).text
        rows = list(csv.DictReader(io.StringIO(text)))
        assert next(r for r in rows if r["dimension"] == "total")["count"] == str(COMPLAINTS)
        by_status = {r["key"]: int(r["count"]) for r in rows if r["dimension"] == "status"}
        assert by_status == reports_now["summary"]["by_status"]

        # Every report has its CSV form: a header and rows.
        for path in (
            "sla",
            "satisfaction",
            "response-times",
            "complaint-rate",
            "daily",
            "weekly",
            "monthly",
            "late-cases",
        ):
            answer = await reporting.get(f"/v1/reports/{path}", params={"format": "csv"})
            assert answer.status_code == 200, (path, answer.text)
            assert answer.headers["content-type"].startswith("text/csv")
            assert len(list(csv.DictReader(io.StringIO(answer.text)))) > 0, path

        # Filters: one pack's summary is that pack's share.
        hotel = (await reporting.get("/v1/reports/summary", params={"pack": "hotel"})).json()
        assert hotel["total"] == independent.summary()["by_pack"]["hotel"]

        # Rebuilt from offset 0 and swapped in while the API runs: the same reports.
        result = await rebuild(reporting_settings)
        print(
            f"rebuild: {result.events} events in {result.seconds:.1f} s, "
            f"{result.per_second:.0f} events/s"
        )
        assert result.events >= len(events)
        assert await all_reports(reporting, today) == reports_now
        sample = chosen[0]
        rebuilt_case = (await reporting.get(f"/v1/cases/{sample}")).json()
        assert rebuilt_case["status"] == independent.status[sample]


async def check_monthly_pages(reporting: httpx.AsyncClient, whole: dict[str, Any]) -> None:
    """The monthly report two cases at a time: the pages list every case once, in order,
    each page with the whole month's totals; the CSV file lists every case."""
    listed: list[dict[str, Any]] = []
    after = None
    pages = 0
    while True:
        params = {"month": whole["month"], "limit": 2, **({"after": after} if after else {})}
        page = (await reporting.get("/v1/reports/monthly", params=params)).json()
        pages += 1
        assert len(page["rows"]) <= 2
        for key in ("closed", "by_department", "loss_total", "compensation_total"):
            assert page[key] == whole[key], key
        listed += page["rows"]
        after = page["next_after"]
        if after is None:
            break
    assert pages > 2, "too few closed cases to show paging"
    assert listed == whole["rows"]
    assert len(listed) == whole["closed"]
    text = (
        await reporting.get(
            "/v1/reports/monthly", params={"month": whole["month"], "limit": 1, "format": "csv"}
        )
    ).text
    cases = [r for r in csv.DictReader(io.StringIO(text)) if r["section"] == "case"]
    assert [r["complaint_no"] for r in cases] == [r["complaint_no"] for r in listed]


async def check_rollups_answer_as_the_cases_do(reporting: httpx.AsyncClient) -> None:
    """The reports over every day, read from the rollups the projections kept event by
    event, equal the same reports read from the cases (a range of days goes there)."""
    for scope in ({}, {"branch_id": "hotel-demo"}, {"pack": "hotel", "department": "engineering"}):
        for path in ("summary", "sla", "response-times", "satisfaction", "complaint-rate"):
            answers = []
            for days in ({}, {"date_from": "2000-01-01"}):
                response = await reporting.get(f"/v1/reports/{path}", params={**scope, **days})
                assert response.status_code == 200, (path, response.text)
                answers.append(response.json())
            if path == "summary":
                for answer in answers:
                    answer["backlog"].pop("oldest_hours")
            if path == "sla":
                for answer in answers:
                    for clock in answer["clocks"]:
                        clock.pop("overdue")
            assert answers[0] == answers[1], (path, scope)


async def projected(database_url: str, event_ids: list[Any]) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM reporting.processed_events WHERE event_id = ANY($1)",
                event_ids,
            )
        )
    finally:
        await conn.close()


async def quiet(database_url: str, seconds: float = 3.0) -> bool:
    """Reporting has projected nothing new for a few seconds: the pipeline has settled."""
    conn = await asyncpg.connect(database_url)
    try:
        count = "SELECT count(*) FROM reporting.processed_events"
        before = await conn.fetchval(count)
        await asyncio.sleep(seconds)
        return bool(await conn.fetchval(count) == before)
    finally:
        await conn.close()


async def all_reports(reporting: httpx.AsyncClient, today: date) -> dict[str, Any]:
    reports = {}
    for name, path, params in (
        ("summary", "/v1/reports/summary", {}),
        ("sla", "/v1/reports/sla", {}),
        ("satisfaction", "/v1/reports/satisfaction", {}),
        ("response", "/v1/reports/response-times", {}),
        ("rate", "/v1/reports/complaint-rate", {}),
        ("daily", "/v1/reports/daily", {"day": today.isoformat()}),
        (
            "weekly",
            "/v1/reports/weekly",
            {"week_start": (today - timedelta(days=today.weekday())).isoformat()},
        ),
        ("monthly", "/v1/reports/monthly", {"month": today.strftime("%Y-%m")}),
    ):
        response = await reporting.get(path, params=params)
        assert response.status_code == 200, (path, response.text)
        reports[name] = response.json()
    late = await reporting.get("/v1/reports/late-cases", params={"limit": 20})
    reports["late"] = late.json()
    dashboard = (await reporting.get("/v1/reports/dashboard")).json()
    # Ages and time-to-due move with the clock; the rest must not.
    for both in (reports, dashboard):
        both["summary"]["backlog"].pop("oldest_hours")
        for clock in both["sla"]["clocks"]:
            clock.pop("overdue")
    for case in reports["late"] + dashboard["late_cases"]:
        case.pop("overdue_hours")
    # The dashboard reads its reports side by side; it must show what they do alone.
    for part in ("summary", "sla", "satisfaction"):
        assert dashboard[part] == reports[part], part
    assert dashboard["late_cases"] == reports["late"]
    return reports


def check_against(independent: Independent, reports: dict[str, Any]) -> None:
    expected = independent.summary()
    summary = reports["summary"]
    for key in (
        "total",
        "by_status",
        "by_category",
        "by_branch",
        "by_pack",
        "by_channel",
        "by_day",
    ):
        assert summary[key] == expected[key], key
    assert summary["backlog"]["open"] == expected["open"]

    clocks = {c["clock"]: c for c in reports["sla"]["clocks"]}
    for name, counts in independent.clocks().items():
        assert clocks[name]["met"] == counts["met"], name
        assert clocks[name]["breached"] == counts["breached"], name
    assert reports["sla"]["breaches"] == sum(c["breached"] for c in independent.clocks().values())
    assert reports["sla"]["breaches"] > 0  # the complaints taken two days ago are late
    assert reports["sla"]["escalations_by_level"] == independent.escalations()

    satisfaction = reports["satisfaction"]
    wanted = independent.satisfaction()
    assert satisfaction["overall"]["count"] == wanted["count"]
    assert satisfaction["overall"]["mean"] == wanted["mean"]
    assert satisfaction["overall"]["distribution"] == wanted["distribution"]
    assert satisfaction["reopen_rate"] == wanted["reopen_rate"]
    assert satisfaction["not_upheld_rate"] == wanted["not_upheld_rate"]

    closed_this_month = reports["monthly"]["closed"]
    assert closed_this_month == sum(1 for s in independent.status.values() if s == "closed")
    assert reports["monthly"]["compensation_total"] == independent.compensation_total()

    daily = reports["daily"]
    today = daily["day"]
    assert daily["total"] == expected["by_day"].get(today, 0)

    assert reports["response"]["first_contact"]["count"] > 0
    for row in reports["rate"]:
        assert row["services"] > 0
        assert 0 <= row["complaints"] <= expected["by_branch"][row["branch_id"]]
    hotel = next(r for r in reports["rate"] if r["branch_id"] == "hotel-demo")
    assert hotel["target"] == 0.01


async def test_bad_report_parameters_get_a_clear_error(
    infra: Infra, database_url: str, topics: Topics
) -> None:
    settings = ReportingSettings(
        database_url=database_url,
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        complaints_topic_namespace=topics.namespace,
    )
    async with reporting_client(settings) as reporting:
        for path, params in (
            ("/v1/reports/monthly", {"month": "2026-13"}),
            ("/v1/reports/monthly", {"month": "November"}),
            ("/v1/reports/monthly", {"after": "yesterday|202611010001"}),
            ("/v1/reports/monthly", {"after": "2026-11-01T08:00:00|202611010001"}),  # no zone
            ("/v1/reports/monthly", {"after": "2026-11-01T08:00:00+00:00|HT-1"}),
            ("/v1/reports/monthly", {"after": "2026-11-01T08:00:00+00:00"}),  # no number
            ("/v1/reports/monthly", {"after": "0001-01-01T00:00:00+01:00|202611010001"}),
            ("/v1/reports/monthly", {"limit": "0"}),
            ("/v1/reports/daily", {"day": "yesterday"}),
            ("/v1/reports/summary", {"as_of": "soon"}),
            ("/v1/reports/summary", {"as_of": "0001-01-01T23:46:59Z"}),  # ages a week back
            ("/v1/reports/summary", {"as_of": "9999-12-31T23:00:00-05:00"}),  # past year 9999
            ("/v1/reports/summary", {"format": "xml"}),
            ("/v1/reports/late-cases", {"limit": "0"}),
            ("/v1/reports/summary", {"department": "front\x00office"}),
        ):
            answer = await reporting.get(path, params=params)
            assert answer.status_code == 422, (path, params, answer.text)
            assert answer.json()["detail"]
        empty = (await reporting.get("/v1/reports/summary")).json()
        assert empty["total"] == 0
