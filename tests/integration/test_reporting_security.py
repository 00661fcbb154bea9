"""Who reads what in reporting, on the real broker and database: the reports narrowed to
the caller's branches and departments, the case files by the access rules of
shared/auth/access.py with every read and refusal on the audit trail, intake's reads
from the record-reads topic kept once, and the trail listed to auditors only."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from services.reporting import audit
from services.reporting.rebuild import rebuild
from services.reporting.settings import ReportingSettings
from shared.auth.access import Role
from shared.topics import Topics
from tests.contracts.golden import golden_samples
from tests.support.auth import READ_REASON, bearer, branch_headers, issue, staff_token
from tests.support.infra import Infra
from tests.support.intake import wait_for
from tests.support.reporting import reporting_client

HOTEL, FURNITURE = "hotel-demo", "furniture-demo"
DEPARTMENTAL = "261122901"  # hotel, routed to engineering, eng-manager
PERSONAL = "261122902"  # hotel, routed to front-office, fo-agent
COMPANY = "261122903"  # hotel, routed to front-office, fo-agent
UNROUTED = "261122904"  # hotel, not routed yet: the triage department's (front-office)
ELSEWHERE = "261122905"  # furniture, routed to customer-service
NOBODY = "261122999"  # no such complaint
REPORTS = (
    "summary",
    "sla",
    "response-times",
    "satisfaction",
    "complaint-rate",
    "daily",
    "weekly",
    "monthly",
    "late-cases",
    "dashboard",
)
TODAY = datetime.now(ZoneInfo("Asia/Shanghai")).date()


def token_of(
    subject: str, role: Role, branches: tuple[str, ...], *departments: str
) -> dict[str, str]:
    return bearer(issue(subject, role, branches=branches, departments=departments or ("*",)))


AGENT = token_of("fo-agent", Role.AGENT, (HOTEL,), "front-office")
OTHER_AGENT = token_of("fo-agent-2", Role.AGENT, (HOTEL,), "front-office")
ENGINEER = token_of("eng-agent", Role.AGENT, (HOTEL,), "engineering")
DEPARTMENT_MANAGER = token_of("fo-head", Role.MANAGER, (HOTEL,), "front-office")
BRANCH_MANAGER = token_of("hotel-gm", Role.MANAGER, (HOTEL,))
TWO_BRANCHES = token_of("regional", Role.MANAGER, (HOTEL, FURNITURE))
# The company-wide demo staff (shared/auth/dev.py).
COMPANY_MANAGER = bearer(staff_token("company-manager"))
AUDITOR = bearer(staff_token("auditor"))
HOTEL_AUDITOR = token_of("hotel-auditor", Role.AUDITOR, (HOTEL,))
ADMIN = bearer(staff_token("admin"))


@dataclass
class Served:
    client: httpx.AsyncClient
    settings: ReportingSettings

    async def get(
        self, path: str, headers: dict[str, str | bytes] | None, **params: Any
    ) -> httpx.Response:
        """As ``headers`` alone say, not the client's default administrator."""
        request = self.client.build_request("GET", path, params=params)
        for name in ("Authorization", "X-Access-Reason"):
            request.headers.pop(name, None)
        request.headers.update(headers or {})
        # Header values are bytes, a reason's UTF-8 too (as a browser sends it).
        request.headers.encoding = "latin-1"
        return await self.client.send(request)

    async def trail(self) -> list[dict[str, Any]]:
        conn = await asyncpg.connect(self.settings.database_url)
        try:
            rows = await conn.fetch("SELECT * FROM reporting.record_reads ORDER BY read_at")
        finally:
            await conn.close()
        return [dict(row) for row in rows]


def event(name: str, **changes: Any) -> bytes:
    now = datetime.now(UTC).isoformat()
    document = {**golden_samples()[name], "event_id": str(uuid.uuid4()), "occurred_at": now}
    return json.dumps({**document, **changes}).encode()


def received(no: str, branch: str, pack: str, confidentiality: str) -> bytes:
    return event(
        "ComplaintReceived",
        complaint_no=no,
        branch_id=branch,
        pack=pack,
        confidentiality=confidentiality,
        received_at=datetime.now(UTC).isoformat(),
    )


def assigned(no: str, branch: str, pack: str, department: str, staff_id: str) -> bytes:
    assignee = {"staff_id": staff_id, "name": staff_id}
    return event(
        "ComplaintAssigned",
        complaint_no=no,
        branch_id=branch,
        pack=pack,
        department=department,
        assignee=assignee,
    )


def volume(branch: str) -> bytes:
    return event(
        "ServiceVolumeRecorded",
        complaint_no=f"{branch}/{TODAY}",
        branch_id=branch,
        day=TODAY.isoformat(),
        services=1000,
    )


async def publish(bootstrap: str, messages: list[tuple[str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic, value in messages:
            key = json.loads(value)["complaint_no"].encode()
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


@pytest.fixture
async def served(infra: Infra, database_url: str, topics: Topics) -> AsyncIterator[Served]:
    """Reporting with four hotel complaints and one furniture complaint projected."""
    settings = ReportingSettings(
        database_url=database_url,
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        complaints_topic_namespace=topics.namespace,
    )
    async with reporting_client(settings) as client:
        intake, routing = topics.intake.name, topics.routing.name
        await publish(
            infra.kafka_bootstrap_servers,
            [
                (intake, received(DEPARTMENTAL, HOTEL, "hotel", "department")),
                (routing, assigned(DEPARTMENTAL, HOTEL, "hotel", "engineering", "eng-manager")),
                (intake, received(PERSONAL, HOTEL, "hotel", "personal")),
                (routing, assigned(PERSONAL, HOTEL, "hotel", "front-office", "fo-agent")),
                (intake, received(COMPANY, HOTEL, "hotel", "company")),
                (routing, assigned(COMPANY, HOTEL, "hotel", "front-office", "fo-agent")),
                (intake, received(UNROUTED, HOTEL, "hotel", "department")),
                (intake, received(ELSEWHERE, FURNITURE, "furniture", "department")),
                (
                    routing,
                    assigned(ELSEWHERE, FURNITURE, "furniture", "customer-service", "cs-clerk"),
                ),
                (intake, volume(HOTEL)),
                (intake, volume(FURNITURE)),
            ],
        )

        async def projected() -> bool:
            conn = await asyncpg.connect(database_url)
            try:
                return bool(
                    await conn.fetchval(
                        """SELECT count(*) FILTER (WHERE received_at IS NOT NULL) = 5
                              AND count(department) = 4 FROM reporting.cases"""
                    )
                    and await conn.fetchval("SELECT count(*) = 2 FROM reporting.service_volumes")
                )
            finally:
                await conn.close()

        await wait_for(projected, timeout=60)
        yield Served(client, settings)


async def test_reports_answer_each_caller_within_their_scope(served: Served) -> None:
    # Who may not: nobody anonymous, no forged token, no agent.
    assert (await served.get("/v1/reports/summary", None)).status_code == 401
    forged = {"Authorization": "Bearer not-a-token"}
    assert (await served.get("/v1/reports/summary", forged)).status_code == 401
    for report in REPORTS:
        answer = await served.get(f"/v1/reports/{report}", AGENT)
        assert answer.status_code == 403, (report, answer.text)
    assert (await served.get("/v1/stream", AGENT)).status_code == 403
    assert (await served.get("/v1/stream", None)).status_code == 401
    # The page holds no data: anyone may load it.
    assert (await served.get("/", None)).status_code == 200

    # A manager of one branch: that branch's figures when naming none, 404 for another.
    summary = (await served.get("/v1/reports/summary", BRANCH_MANAGER)).json()
    assert summary["by_branch"] == {HOTEL: 4}
    elsewhere = await served.get("/v1/reports/summary", BRANCH_MANAGER, branch_id=FURNITURE)
    assert (elsewhere.status_code, elsewhere.json()) == (404, {"detail": f"no branch {FURNITURE}"})
    for report in REPORTS:
        answer = await served.get(f"/v1/reports/{report}", BRANCH_MANAGER)
        assert answer.status_code == 200, (report, answer.text)
    rates = (await served.get("/v1/reports/complaint-rate", BRANCH_MANAGER)).json()
    assert [row["branch_id"] for row in rates] == [HOTEL]
    assert (await served.get("/v1/stream", BRANCH_MANAGER, branch_id=FURNITURE)).status_code == 404

    # A manager of a department: its cases only; another department is out of scope.
    front_office = (await served.get("/v1/reports/summary", DEPARTMENT_MANAGER)).json()
    assert front_office["by_department"] == {"front-office": 2}
    other = await served.get("/v1/reports/sla", DEPARTMENT_MANAGER, department="engineering")
    assert other.status_code == 404

    # Two branches but not all: a report over "all" would include only some; name one.
    vague = await served.get("/v1/reports/summary", TWO_BRANCHES)
    assert vague.status_code == 422
    (error,) = vague.json()["detail"]
    assert error["loc"] == ["query", "branch_id"]
    assert "name one with branch_id" in error["msg"]
    named = await served.get("/v1/reports/summary", TWO_BRANCHES, branch_id=FURNITURE)
    assert named.json()["by_branch"] == {FURNITURE: 1}

    # A branch system: its own figures, whatever it asks.
    branch = branch_headers(HOTEL)
    assert (await served.get("/v1/reports/summary", branch)).json()["by_branch"] == {HOTEL: 4}
    rates = (await served.get("/v1/reports/complaint-rate", branch)).json()
    assert [row["branch_id"] for row in rates] == [HOTEL]
    other_branch = await served.get("/v1/reports/late-cases", branch, branch_id=FURNITURE)
    assert other_branch.status_code == 404

    # Company-wide callers see every branch.
    everything = (await served.get("/v1/reports/summary", COMPANY_MANAGER)).json()
    assert everything["by_branch"] == {HOTEL: 4, FURNITURE: 1}
    rates = (await served.get("/v1/reports/complaint-rate", AUDITOR)).json()
    assert [row["branch_id"] for row in rates] == [FURNITURE, HOTEL]

    # Reports read no customer record: nothing on the trail.
    assert await served.trail() == []


async def test_the_case_file_follows_the_access_rules_and_every_attempt_is_audited(
    served: Served,
) -> None:
    attempts: list[tuple[str, str, str]] = []  # (reader, outcome, complaint) as audited

    async def case(no: str, who: dict[str, str], *, reader: str, expected: int) -> httpx.Response:
        answer = await served.get(f"/v1/cases/{no}", who)
        assert answer.status_code == expected, (no, reader, answer.text)
        outcome = "read" if expected == 200 else "refused"
        attempts.append((reader, outcome, no))
        return answer

    # A complaint out of scope answers exactly as one that does not exist (not audited).
    missing = await served.get(f"/v1/cases/{NOBODY}", AGENT)
    hidden = await case(ELSEWHERE, AGENT, reader="staff:fo-agent", expected=404)
    assert missing.status_code == 404
    assert hidden.json()["detail"].replace(ELSEWHERE, NOBODY) == missing.json()["detail"]
    assert hidden.headers.keys() == missing.headers.keys()
    await case(DEPARTMENTAL, AGENT, reader="staff:fo-agent", expected=404)  # engineering's
    await case(DEPARTMENTAL, branch_headers(FURNITURE), reader=f"branch:{FURNITURE}", expected=404)

    # Department files: the department's staff.
    await case(DEPARTMENTAL, ENGINEER, reader="staff:eng-agent", expected=200)
    # Not routed yet: the triage department's.
    await case(UNROUTED, AGENT, reader="staff:fo-agent", expected=200)
    await case(UNROUTED, ENGINEER, reader="staff:eng-agent", expected=404)

    # Personal files: the person who holds it and their managers, not their colleagues.
    await case(PERSONAL, AGENT, reader="staff:fo-agent", expected=200)
    refused = await case(PERSONAL, OTHER_AGENT, reader="staff:fo-agent-2", expected=403)
    assert "personal" in refused.json()["detail"]
    await case(PERSONAL, DEPARTMENT_MANAGER, reader="staff:fo-head", expected=200)

    # Company files: the company's managers, auditors, the branch that took it.
    await case(COMPANY, AGENT, reader="staff:fo-agent", expected=403)
    await case(COMPANY, DEPARTMENT_MANAGER, reader="staff:fo-head", expected=403)
    await case(COMPANY, BRANCH_MANAGER, reader="staff:hotel-gm", expected=403)
    await case(COMPANY, COMPANY_MANAGER, reader="staff:company-manager", expected=200)
    await case(COMPANY, AUDITOR, reader="staff:auditor", expected=200)
    await case(COMPANY, branch_headers(HOTEL), reader=f"branch:{HOTEL}", expected=200)

    # No reason, no read, and nothing audited.
    no_reason = {"Authorization": AGENT["Authorization"]}
    unreasoned = await served.get(f"/v1/cases/{PERSONAL}", no_reason)
    assert unreasoned.status_code == 422
    assert unreasoned.json()["detail"][0]["loc"] == ["header", "X-Access-Reason"]
    assert (await served.get(f"/v1/cases/{PERSONAL}", None)).status_code == 401

    trail = await served.trail()
    audited = Counter((row["reader"], row["outcome"], row["complaint_no"]) for row in trail)
    assert audited == Counter(attempts)
    assert {row["reason"] for row in trail} == {READ_REASON}
    assert {(row["service"], row["contacts_shown"]) for row in trail} == {("reporting", False)}
    by_reader = {row["reader"]: row for row in trail}
    assert by_reader["staff:fo-head"]["reader_roles"] == ["manager"]
    assert by_reader[f"branch:{HOTEL}"]["reader_roles"] == []
    assert {row["branch_id"] for row in trail if row["complaint_no"] == ELSEWHERE} == {FURNITURE}

    # A reason typed in Chinese arrives as its UTF-8 bytes (as the dashboard sends it).
    chinese = {"Authorization": AGENT["Authorization"], "X-Access-Reason": "回访客户".encode()}
    assert (await served.get(f"/v1/cases/{PERSONAL}", chinese)).status_code == 200
    assert (await served.trail())[-1]["reason"] == "回访客户"


async def test_a_read_intake_published_is_listed_once_though_delivered_twice(
    infra: Infra, topics: Topics, served: Served
) -> None:
    read = event(
        "CustomerRecordRead",
        complaint_no=PERSONAL,
        branch_id=HOTEL,
        reader="staff:fo-agent",
        reason="calling back",
    )
    later = event("CustomerRecordRead", complaint_no=COMPANY, branch_id=HOTEL, reason="later")
    name = topics.record_reads.name
    await publish(infra.kafka_bootstrap_servers, [(name, read), (name, read), (name, later)])

    async def both_listed() -> bool:
        listed = (await served.get("/v1/audit/record-reads", AUDITOR)).json()["reads"]
        return len({entry["reason"] for entry in listed} & {"calling back", "later"}) == 2

    await wait_for(both_listed, timeout=60)
    listed = (await served.get("/v1/audit/record-reads", AUDITOR, complaint_no=PERSONAL)).json()
    (entry,) = listed["reads"]
    assert entry["event_id"] == json.loads(read)["event_id"]
    assert (entry["service"], entry["reader"], entry["outcome"]) == (
        "intake",
        "staff:fo-agent",
        "read",
    )
    # Reads of a record are not news to the case's timeline.
    file = (await served.get(f"/v1/cases/{PERSONAL}", ADMIN)).json()
    assert "CustomerRecordRead" not in {step["event_type"] for step in file["timeline"]}


async def test_a_rebuild_keeps_the_trail_reporting_alone_holds(
    infra: Infra, topics: Topics, served: Served
) -> None:
    assert (await served.get(f"/v1/cases/{PERSONAL}", AGENT)).status_code == 200
    assert (await served.get(f"/v1/cases/{PERSONAL}", OTHER_AGENT)).status_code == 403
    from_intake = event("CustomerRecordRead", complaint_no=COMPANY, branch_id=HOTEL)
    await publish(infra.kafka_bootstrap_servers, [(topics.record_reads.name, from_intake)])

    async def listed() -> list[dict[str, Any]]:
        answer = await served.get("/v1/audit/record-reads", AUDITOR)
        return list(answer.json()["reads"])

    async def three() -> bool:
        return len(await listed()) == 3

    await wait_for(three, timeout=60)
    before = await listed()
    await rebuild(served.settings)
    # Reporting's own reads are on no topic: the rebuilt schema has them all the same.
    assert await listed() == before
    assert {entry["service"] for entry in before} == {"reporting", "intake"}


async def test_the_audit_listing_is_for_auditors_pages_and_scopes_by_branch(
    served: Served,
) -> None:
    path = "/v1/audit/record-reads"
    for who in (AGENT, DEPARTMENT_MANAGER, BRANCH_MANAGER, COMPANY_MANAGER, branch_headers(HOTEL)):
        assert (await served.get(path, who)).status_code == 403
    assert (await served.get(path, None)).status_code == 401

    entries = await fill_trail(served.settings.database_url)
    everything = await all_pages(served, AUDITOR, limit=4)
    assert everything == newest_first(entries)
    assert len(everything) == 25

    hotel = await all_pages(served, HOTEL_AUDITOR, limit=7)
    assert hotel == newest_first([e for e in entries if e.branch_id == HOTEL])
    scoped = await served.get(path, HOTEL_AUDITOR, complaint_no=ELSEWHERE)
    assert scoped.json() == {"reads": [], "next_after": None}

    one = await all_pages(served, ADMIN, limit=2, complaint_no=ELSEWHERE)
    assert one == newest_first([e for e in entries if e.complaint_no == ELSEWHERE])
    by_reader = await all_pages(served, AUDITOR, limit=3, reader="staff:reader-1")
    assert by_reader == newest_first([e for e in entries if e.reader == "staff:reader-1"])
    start = min(e.read_at for e in entries)
    since, until = start + timedelta(minutes=4), start + timedelta(minutes=9)
    window = await all_pages(
        served, AUDITOR, limit=5, since=since.isoformat(), until=until.isoformat()
    )
    assert window == newest_first([e for e in entries if since <= e.read_at < until])
    assert window

    for params in (
        {"limit": 0},
        {"limit": 1001},
        {"after": "yesterday|x"},
        {"after": f"2026-11-22T08:00:00|{uuid.uuid4()}"},  # no zone
        {"since": "2026-11-22T08:00:00"},  # no zone
        {"until": "9999-12-31T23:00:00-05:00"},  # past the last instant Python holds
        {"after": f"0001-01-01T00:00:00+01:00|{uuid.uuid4()}"},  # before the first
        {"complaint_no": "HT-1"},
        {"reader": "staff:\x00"},  # text holds no NUL
    ):
        answer = await served.get(path, AUDITOR, **params)
        assert answer.status_code == 422, (params, answer.text)


async def fill_trail(database_url: str) -> list[audit.ReadEntry]:
    """25 reads over 12 minutes, two branches, three readers; some at the same moment."""
    start = datetime(2026, 11, 22, 8, tzinfo=UTC)
    entries = [
        audit.ReadEntry(
            event_id=uuid.uuid4(),
            read_at=start + timedelta(minutes=index // 2),
            service="intake" if index % 3 else "reporting",
            reader=f"staff:reader-{index % 3}",
            reader_roles=("agent",),
            reason=f"reason {index}",
            outcome="read" if index % 4 else "refused",
            contacts_shown=index % 2 == 0,
            complaint_no=ELSEWHERE if index % 5 == 0 else PERSONAL,
            branch_id=FURNITURE if index % 5 == 0 else HOTEL,
        )
        for index in range(25)
    ]
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "reporting"})
    try:
        await audit.record(conn, entries)
    finally:
        await conn.close()
    return entries


def newest_first(entries: list[audit.ReadEntry]) -> list[str]:
    ordered = sorted(entries, key=lambda e: (e.read_at, e.event_id), reverse=True)
    return [str(e.event_id) for e in ordered]


async def all_pages(served: Served, who: dict[str, str], limit: int, **params: Any) -> list[str]:
    """Every page's event ids, each page ``limit`` at most and the last one saying so."""
    listed: list[str] = []
    after = None
    while True:
        query = {**params, "limit": limit, **({"after": after} if after else {})}
        answer = await served.get("/v1/audit/record-reads", who, **query)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert len(page["reads"]) <= limit
        listed += [entry["event_id"] for entry in page["reads"]]
        after = page["next_after"]
        if after is None:
            return listed
        assert len(page["reads"]) == limit
