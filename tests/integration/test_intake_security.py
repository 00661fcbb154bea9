"""Who may call intake, and what each caller may submit, read and do; every read of a
customer record audited, in the database and on the record-reads topic."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from services.intake.cases import feedback_token
from shared.auth.access import Role
from shared.auth.credentials import TokenIssuer
from shared.contracts import ComplaintAssigned, CustomerRecordRead, decode_event
from shared.contracts.routing import Assignee
from shared.topics import Topics
from tests.integration.test_intake_api import submission
from tests.support.auth import (
    admin_headers,
    bearer,
    branch_headers,
    credentials,
    issue,
    staff_token,
)
from tests.support.db import scalar
from tests.support.infra import Infra
from tests.support.intake import running_intake, wait_for
from tests.support.kafka import read_records

HOTEL = "hotel-demo"
BRANCH = branch_headers(HOTEL)
OTHER_BRANCH = branch_headers("fitness-club-demo")
ADMIN = admin_headers()
AUDITOR = bearer(staff_token("auditor"))
COMPANY_MANAGER = bearer(staff_token("company-manager"))
DEPUTY_GM = bearer(staff_token("hotel/deputy-gm"))  # manages the whole hotel, not the company
FRONT_OFFICE_HEAD = bearer(
    issue("fo-head", Role.MANAGER, branches=(HOTEL,), departments=("front-office",))
)
FO_AGENT = bearer(staff_token("hotel/fo-agent"))
SUPERVISOR = bearer(
    issue("fo-supervisor", Role.SUPERVISOR, branches=(HOTEL,), departments=("front-office",))
)
OTHER_AGENT = bearer(
    issue("fo-agent-2", Role.AGENT, branches=(HOTEL,), departments=("front-office",))
)
HOUSEKEEPING_AGENT = bearer(
    issue("hk-agent", Role.AGENT, branches=(HOTEL,), departments=("housekeeping",))
)
NOT_ISSUED = "999999999"


@asynccontextmanager
async def intake(
    infra: Infra, database_url: str, topics: Topics
) -> AsyncIterator[httpx.AsyncClient]:
    """Intake with a client that carries no credentials of its own: each request says who."""
    async with running_intake(database_url, infra.kafka_bootstrap_servers, topics) as client:
        del client.headers["Authorization"]
        del client.headers["X-Access-Reason"]
        yield client


async def _submit(client: httpx.AsyncClient, **overrides: Any) -> str:
    response = await client.post("/v1/complaints", json=submission(**overrides), headers=BRANCH)
    assert response.status_code == 201, response.text
    return str(response.json()["complaint_no"])


async def test_a_request_without_valid_credentials_is_answered_401_and_records_nothing(
    infra: Infra, database_url: str, topics: Topics
) -> None:
    expired = credentials().issuer().issue("admin", (Role.ADMIN,), valid_for=timedelta(seconds=-1))
    forged = TokenIssuer.generate().issue("admin", (Role.ADMIN,))
    refused: dict[str, tuple[dict[str, str], str]] = {
        "nothing": ({}, "send a branch API key (X-Api-Key) or a staff token (Bearer)"),
        "a bad key": ({"X-Api-Key": "cbk_0123456789ab_not-a-key"}, "the API key is not valid"),
        "a forged token": (bearer(forged), "the staff token is not valid"),
        "an expired token": (bearer(expired), "has expired"),
        "not a token": ({"Authorization": "Bearer nonsense"}, "the staff token is not valid"),
    }
    async with intake(infra, database_url, topics) as client:
        number = await _submit(client)
        for what, (headers, reason) in refused.items():
            submitted = await client.post("/v1/complaints", json=submission(), headers=headers)
            read = await client.get(
                f"/v1/complaints/{number}", headers={**headers, "X-Access-Reason": "test"}
            )
            acted = await client.post(
                f"/v1/complaints/{number}/acknowledge", json={}, headers=headers
            )
            for response in (submitted, read, acted):
                assert response.status_code == 401, (what, response.text)
                assert response.headers["WWW-Authenticate"] == "Bearer"
                assert reason in response.json()["detail"], what
        # The customer's survey page needs no credentials: its link's token is one.
        link = feedback_token(b"development-only-feedback-secret", number)
        survey = await client.get(f"/survey/{number}", params={"token": link})
        assert survey.status_code == 200
    assert await scalar(database_url, "SELECT count(*) FROM intake.complaints") == 1
    assert await scalar(database_url, "SELECT count(*) FROM intake.record_reads") == 0
    assert await scalar(database_url, "SELECT count(*) FROM intake.case_history") == 1


async def test_a_branch_submits_and_sees_only_its_own_branch(
    infra: Infra, database_url: str, topics: Topics
) -> None:
    elsewhere = bearer(issue("fc-agent", Role.AGENT, branches=("fitness-club-demo",)))
    async with intake(infra, database_url, topics) as client:
        await _submit(client)
        other = await client.post(
            "/v1/complaints", json=submission(branch_id="fitness-club-demo"), headers=BRANCH
        )
        not_theirs = await client.post("/v1/complaints", json=submission(), headers=elsewhere)
        auditor = await client.post("/v1/complaints", json=submission(), headers=AUDITOR)
        own_form = await client.get(f"/v1/branches/{HOTEL}", headers=BRANCH)
        other_form = await client.get(f"/v1/branches/{HOTEL}", headers=OTHER_BRANCH)
        staff_elsewhere = await client.get(f"/v1/branches/{HOTEL}", headers=elsewhere)
        unknown = await client.get("/v1/branches/nowhere", headers=ADMIN)
    assert other.status_code == 403
    assert other.json()["detail"] == (
        "this API key is branch hotel-demo's: it submits for that branch only, "
        "not for fitness-club-demo"
    )
    assert not_theirs.status_code == 403
    assert "does not cover branch hotel-demo" in not_theirs.json()["detail"]
    assert auditor.status_code == 403
    assert own_form.status_code == 200
    # Another branch's form is answered like a branch that does not exist.
    for hidden in (other_form, staff_elsewhere):
        assert hidden.status_code == 404
        assert hidden.json() == {"detail": f"no branch {HOTEL}"}
    assert unknown.json() == {"detail": "no branch nowhere"}
    assert await scalar(database_url, "SELECT count(*) FROM intake.complaints") == 1
    assert await scalar(database_url, "SELECT count(*) FROM intake.outbox") == 1


async def _assign(bootstrap: str, topics: Topics, number: str, staff_id: str) -> None:
    """What routing would publish: the case goes to ``staff_id`` in the front office."""
    assigned = ComplaintAssigned(
        event_type=ComplaintAssigned.EVENT_TYPE,
        complaint_no=number,
        branch_id=HOTEL,
        correlation_id=f"assign-{number}",
        producer="routing",
        department="front-office",
        assignee=Assignee(staff_id=staff_id, name=staff_id),
        rule="test",
        pack="hotel",
        pack_version="test",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.routing.name, assigned.model_dump_json().encode(), key=number.encode()
        )
    finally:
        await producer.stop()


async def test_reads_follow_scope_and_clearance_contacts_only_for_those_who_call_and_all_audited(
    infra: Infra, database_url: str, topics: Topics
) -> None:
    expected: list[tuple[str, str, str, bool]] = []  # complaint, reader, outcome, contacts

    async with intake(infra, database_url, topics) as client:
        department = await _submit(client)
        personal = await _submit(client, confidentiality="personal")
        company = await _submit(client, confidentiality="company")
        await _assign(infra.kafka_bootstrap_servers, topics, personal, "fo-agent")

        async def assigned() -> bool:
            query = "SELECT count(*) FROM intake.complaints WHERE assignee_id = 'fo-agent'"
            return await scalar(database_url, query) == 1

        await wait_for(assigned)

        async def read(number: str, headers: dict[str, str], reader: str) -> httpx.Response:
            response = await client.get(f"/v1/complaints/{number}", headers=headers)
            if response.status_code == 200:
                shown = response.json()["customer"]["phone"] == "+86 138 0013 8000"
                expected.append((number, reader, "read", shown))
            else:
                expected.append((number, reader, "refused", False))
            return response

        # A department file: the department reads it; who calls the customer sees contacts.
        for headers, reader in (
            (FO_AGENT, "staff:fo-agent"),
            (SUPERVISOR, "staff:fo-supervisor"),
            (BRANCH, "branch:hotel-demo"),
        ):
            view = await read(department, headers, reader)
            assert view.status_code == 200, view.text
            assert view.json()["customer"]["email"] == "zhang.wei@example.com"
            assert view.json()["confidentiality"] == "department"
        for headers, reader in (
            (FRONT_OFFICE_HEAD, "staff:fo-head"),
            (AUDITOR, "staff:auditor"),
            (ADMIN, "staff:admin"),
        ):
            view = await read(department, headers, reader)
            assert view.status_code == 200, view.text
            case = view.json()
            assert case["customer"]["phone"] == "***8000"
            assert case["customer"]["email"] == "z***@example.com"
            assert case["history"][0]["details"]["customer"]["phone"] == "***8000"
        # Outside the caller's branch or department, the complaint does not exist.
        missing = await client.get(f"/v1/complaints/{NOT_ISSUED}", headers=ADMIN)
        assert missing.json() == {"detail": f"no complaint {NOT_ISSUED}"}
        for headers, reader in (
            (OTHER_BRANCH, "branch:fitness-club-demo"),
            (HOUSEKEEPING_AGENT, "staff:hk-agent"),
        ):
            hidden = await read(department, headers, reader)
            assert hidden.status_code == missing.status_code == 404
            assert hidden.json() == {"detail": f"no complaint {department}"}
            assert hidden.headers["content-type"] == missing.headers["content-type"]

        # A personal file: the person handling it and the supervisors, no other agent.
        assert (await read(personal, FO_AGENT, "staff:fo-agent")).status_code == 200
        assert (await read(personal, SUPERVISOR, "staff:fo-supervisor")).status_code == 200
        refused = await read(personal, OTHER_AGENT, "staff:fo-agent-2")
        assert refused.status_code == 403
        assert refused.json()["detail"].startswith(
            "reading this customer's record needs personal clearance"
        )
        assert refused.json()["detail"].endswith("ask for approval")

        # A company file: only a manager of the whole company.
        view = await read(company, COMPANY_MANAGER, "staff:company-manager")
        assert view.status_code == 200
        assert view.json()["customer"]["phone"] == "***8000"
        assert (await read(company, DEPUTY_GM, "staff:deputy-gm")).status_code == 403
        assert (await read(company, FO_AGENT, "staff:fo-agent")).status_code == 403

        # A reason in Chinese, and the caller's correlation id, travel with the read.
        traced = {
            **FO_AGENT,
            "X-Access-Reason": "回访客户前核对投诉内容".encode(),  # type: ignore[dict-item]
            "X-Correlation-Id": "corr-audit-1",
        }
        assert (await client.get(f"/v1/complaints/{department}", headers=traced)).status_code == 200
        expected.append((department, "staff:fo-agent", "read", True))

    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT * FROM intake.record_reads")
    finally:
        await conn.close()
    recorded = [(r["complaint_no"], r["reader"], r["outcome"], r["contacts_shown"]) for r in rows]
    assert Counter(recorded) == Counter(expected)
    assert len(rows) == 15  # the number never issued is not a customer record: no entry

    records = await read_records(
        infra.kafka_bootstrap_servers, topics.record_reads.name, expected=len(rows)
    )
    events = [decode_event(record.value) for record in records]
    assert all(isinstance(event, CustomerRecordRead) for event in events)
    assert sorted(str(e.event_id) for e in events) == sorted(str(r["event_id"]) for r in rows)
    (chinese,) = [e for e in events if e.correlation_id == "corr-audit-1"]
    assert isinstance(chinese, CustomerRecordRead)
    assert chinese.reason == "回访客户前核对投诉内容"
    assert (chinese.reader, chinese.reader_roles) == ("staff:fo-agent", ("agent",))
    assert (chinese.complaint_no, chinese.branch_id) == (department, HOTEL)
    assert (chinese.outcome, chinese.contacts_shown) == ("read", True)
    assert (chinese.service, chinese.producer) == ("intake", "intake")
    assert all(r.key == e.complaint_no.encode() for r, e in zip(records, events, strict=True))
    by_id = {str(e.event_id): e for e in events}
    refusal = next(r for r in rows if r["reader"] == "staff:fo-agent-2")
    assert by_id[str(refusal["event_id"])].outcome == "refused"
    assert refusal["reason"] == "automated test"


async def test_a_read_needs_a_reason_and_one_without_is_not_served(
    infra: Infra, database_url: str, topics: Topics
) -> None:
    async with intake(infra, database_url, topics) as client:
        number = await _submit(client)
        no_reason = await client.get(
            f"/v1/complaints/{number}", headers={"Authorization": FO_AGENT["Authorization"]}
        )
        blank = await client.get(
            f"/v1/complaints/{number}", headers={**FO_AGENT, "X-Access-Reason": "   "}
        )
    for response in (no_reason, blank):
        assert response.status_code == 422
        (error,) = response.json()["detail"]
        assert error["loc"] == ["header", "x-access-reason"]
        assert "give the reason" in error["msg"]
    assert await scalar(database_url, "SELECT count(*) FROM intake.record_reads") == 0


async def test_staff_act_as_themselves_within_their_scope_and_reassignment_needs_a_supervisor(
    infra: Infra, database_url: str, topics: Topics
) -> None:
    async with intake(infra, database_url, topics) as client:
        number = await _submit(client)
        base = f"/v1/complaints/{number}"

        async def act(path: str, headers: dict[str, str], **body: Any) -> httpx.Response:
            return await client.post(f"{base}/{path}", json=body, headers=headers)

        impersonating = await act("acknowledge", FO_AGENT, actor="fo-supervisor")
        assert impersonating.status_code == 403
        assert "you act as yourself" in impersonating.json()["detail"]
        assert (await act("acknowledge", FO_AGENT)).status_code == 200
        on_behalf = await act("notes", ADMIN, actor="fo-supervisor", note="客户来电，已记录")
        assert on_behalf.status_code == 200, on_behalf.text
        branch = await act("notes", BRANCH, note="x")
        assert branch.status_code == 403
        assert "branch API key" in branch.json()["detail"]
        hidden = await act("notes", HOUSEKEEPING_AGENT, note="x")
        assert hidden.status_code == 404
        assert hidden.json() == {"detail": f"no complaint {number}"}
        assert (await act("notes", AUDITOR, actor="auditor", note="x")).status_code == 403

        reassignment = {"approver": "fo-supervisor", "to_assignee": "fo-agent", "reason": "前厅"}
        by_agent = await act("reassignment", FO_AGENT, **reassignment)
        assert by_agent.status_code == 403
        assert "supervisor or manager" in by_agent.json()["detail"]
        by_supervisor = await act("reassignment", SUPERVISOR, **reassignment)
        assert by_supervisor.status_code == 200, by_supervisor.text
        assert by_supervisor.json()["events"] == ["ReassignmentApproved"]

    conn = await asyncpg.connect(database_url)
    try:
        history = await conn.fetch(
            "SELECT event_type, actor FROM intake.case_history ORDER BY sequence"
        )
    finally:
        await conn.close()
    assert [(h["event_type"], h["actor"]) for h in history] == [
        ("ComplaintReceived", None),
        ("ComplaintAcknowledged", "fo-agent"),
        ("NoteAdded", "fo-supervisor"),  # the admin entered it on their behalf
        ("ReassignmentApproved", "fo-supervisor"),
    ]


async def test_service_volumes_are_recorded_by_the_branch_or_its_managers(
    infra: Infra, database_url: str, topics: Topics
) -> None:
    path = f"/v1/branches/{HOTEL}/service-volumes/2026-11-21"
    async with intake(infra, database_url, topics) as client:
        other_branch = await client.put(path, json={"services": 1}, headers=OTHER_BRANCH)
        agent = await client.put(path, json={"services": 2}, headers=FO_AGENT)
        own = await client.put(path, json={"services": 412}, headers=BRANCH)
        manager = await client.put(path, json={"services": 420}, headers=DEPUTY_GM)
    assert other_branch.status_code == 404
    assert other_branch.json() == {"detail": f"no branch {HOTEL}"}
    assert agent.status_code == 403
    assert "its own API key or its managers" in agent.json()["detail"]
    assert own.status_code == 200
    assert manager.json()["changed"] is True
    assert await scalar(database_url, "SELECT services FROM intake.service_volumes") == 420


async def test_no_key_token_phone_or_email_reaches_the_log(
    infra: Infra, database_url: str, topics: Topics, capsys: pytest.CaptureFixture[str]
) -> None:
    forged = TokenIssuer.generate().issue("admin", (Role.ADMIN,))
    async with intake(infra, database_url, topics) as client:
        number = await _submit(client)
        for headers in (FO_AGENT, FRONT_OFFICE_HEAD, bearer(forged), OTHER_BRANCH):
            await client.get(f"/v1/complaints/{number}", headers=headers)
        await client.post("/v1/complaints", json=submission(), headers={"X-Api-Key": "cbk_x"})
    log = capsys.readouterr().err
    assert "customer record read" in log  # the capture saw intake's log
    secrets = [BRANCH["X-Api-Key"], OTHER_BRANCH["X-Api-Key"], forged]
    secrets += [FO_AGENT["Authorization"][7:], FRONT_OFFICE_HEAD["Authorization"][7:]]
    for secret in [*secrets, "cbk_x", "0013 8000", "13800138000", "zhang.wei@example.com"]:
        assert secret not in log
