"""Staff and customers acting on a case over HTTP, against the real database."""

from __future__ import annotations

import asyncpg
import pytest

from services.intake import cases as cases_module
from services.intake.cases import feedback_token
from shared import http as http_module
from shared.contracts import decode_event
from shared.contracts.intake import CaseEvent
from shared.topics import Topics
from tests.integration.test_intake_api import intake_client, submission
from tests.support.logs import captured_logs

TOKEN_SECRET = b"development-only-feedback-secret"
TOPICS = Topics.in_namespace()  # intake_client's


def _token(complaint_no: str) -> str:
    return feedback_token(TOKEN_SECRET, complaint_no)


async def test_a_case_goes_through_its_life_and_every_step_is_an_event(database_url: str) -> None:
    async with intake_client(database_url) as client:
        number = (await client.post("/v1/complaints", json=submission())).json()["complaint_no"]
        base = f"/v1/complaints/{number}"

        async def act(path: str, **body: object) -> dict:  # type: ignore[type-arg]
            response = await client.post(f"{base}/{path}", json={"actor": "fo-supervisor", **body})
            assert response.status_code == 200, response.text
            return response.json()  # type: ignore[no-any-return]

        assert (await act("acknowledge", note="已电话告知"))["status"] == "acknowledged"
        assert (await act("investigation"))["status"] == "investigating"
        assert (await act("hold", reason="awaiting_parts"))["status"] == "on_hold"
        too_early = await client.post(
            f"{base}/decision", json={"actor": "fo-supervisor", "decision": "x"}
        )
        assert too_early.status_code == 409
        refused = too_early.json()
        assert refused["status"] == "on_hold"
        assert "resume" in refused["allowed_actions"]
        assert (await act("resume"))["status"] == "investigating"
        await act("notes", note="配件已到")
        await act(
            "compensation",
            compensation_amount="300.00",
            loss_amount="1200.50",
            responsible_department="engineering",
            share="0.6",
        )
        replied = await act("decision", decision="已更换压缩机，赠送一晚房费。")
        assert replied["status"] == "replied"

        bad_token = await client.post(
            f"{base}/feedback", json={"token": "forged", "quality": 5, "attitude": 5, "speed": 5}
        )
        assert bad_token.status_code == 403
        unhappy = await client.post(
            f"{base}/feedback",
            json={
                "token": _token(number),
                "quality": 2,
                "attitude": 4,
                "speed": 3,
                "comment": "还是不冷",
            },
        )
        assert unhappy.status_code == 200, unhappy.text
        assert unhappy.json()["status"] == "reopened"
        assert unhappy.json()["round"] == 2
        assert unhappy.json()["events"] == ["FeedbackReceived", "ComplaintReopened"]

        await act("investigation")
        await act("decision", decision="更换整机")
        await act("resolution", resolution="客户确认正常")
        visited = await act("return-visits", method="phone", outcome="满意", satisfied=True)
        assert visited["status"] == "return_visited"
        closed = await act("close")
        assert closed["status"] == "closed"
        assert set(closed["allowed_actions"]) == {
            "add_note",
            "record_compensation",
            "reopen",
            "record_feedback",
            "record_return_visit",
            "record_project_delivery",
        }
        view = (await client.get(base)).json()

    history = view["history"]
    assert [h["sequence"] for h in history] == list(range(1, len(history) + 1))
    assert [h["event_type"] for h in history] == [
        "ComplaintReceived",
        "ComplaintAcknowledged",
        "InvestigationStarted",
        "ComplaintPutOnHold",
        "ComplaintResumed",
        "NoteAdded",
        "CompensationRecorded",
        "DecisionCommunicated",
        "FeedbackReceived",
        "ComplaintReopened",
        "InvestigationStarted",
        "DecisionCommunicated",
        "ComplaintResolved",
        "ReturnVisitRecorded",
        "ComplaintClosed",
    ]
    assert history[6]["details"]["loss_amount"] == "1200.50"
    assert view["round"] == 2

    conn = await asyncpg.connect(database_url)
    try:
        payloads = await conn.fetch(
            "SELECT payload FROM intake.outbox WHERE topic = $1 ORDER BY id", TOPICS.intake.name
        )
        reads = await conn.fetchval(
            "SELECT count(*) FROM intake.outbox WHERE topic = $1", TOPICS.record_reads.name
        )
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("DELETE FROM intake.case_history")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("UPDATE intake.case_history SET actor = 'someone'")
    finally:
        await conn.close()
    assert reads == 1  # the view read at the end is audited on its own topic
    events = [decode_event(p["payload"]) for p in payloads]
    assert all(isinstance(e, CaseEvent) for e in events)
    assert [e.event_type for e in events if e] == [h["event_type"] for h in history]
    decision = next(e for e in events if e and e.event_type == "DecisionCommunicated")
    assert decision.feedback_token == _token(number)  # type: ignore[attr-defined]


async def test_actions_name_real_staff_and_departments(database_url: str) -> None:
    async with intake_client(database_url) as client:
        number = (await client.post("/v1/complaints", json=submission())).json()["complaint_no"]
        stranger = await client.post(
            f"/v1/complaints/{number}/acknowledge", json={"actor": "mallory"}
        )
        department = await client.post(
            f"/v1/complaints/{number}/compensation",
            json={
                "actor": "fo-supervisor",
                "compensation_amount": "1",
                "loss_amount": "1",
                "responsible_department": "spa",
                "share": "1",
            },
        )
        typo = await client.post(
            f"/v1/complaints/{number}/acknowledge", json={"actor": "fo-supervisor", "nte": "x"}
        )
        unknown = await client.post(
            "/v1/complaints/999999999/acknowledge", json={"actor": "fo-supervisor"}
        )
    assert stranger.status_code == 422
    assert stranger.json()["detail"][0]["loc"] == ["body", "actor"]
    assert department.status_code == 422
    assert "engineering" in department.json()["detail"][0]["msg"]
    assert typo.status_code == 422
    assert unknown.status_code == 404


async def test_the_survey_link_opens_a_form_that_posts_to_the_feedback_endpoint(
    database_url: str,
) -> None:
    async with intake_client(database_url) as client:
        number = (await client.post("/v1/complaints", json=submission())).json()["complaint_no"]
        page = await client.get(f"/survey/{number}", params={"token": _token(number), "lang": "en"})
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert f"/v1/complaints/{number}/feedback" in page.text
        assert _token(number) in page.text
        assert "How did we do?" in page.text
        chinese = await client.get(f"/survey/{number}", params={"token": _token(number)})
        assert "满意度评价" in chinese.text
        forged = await client.get(f"/survey/{number}", params={"token": "forged"})
        assert forged.status_code == 403


async def test_a_case_action_logs_the_complaint_number_and_its_correlation_id(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with intake_client(database_url) as client:
        with captured_logs(monkeypatch, cases_module, http_module) as logs:
            submitted = await client.post(
                "/v1/complaints", json=submission(), headers={"X-Correlation-Id": "corr-logged"}
            )
            number = submitted.json()["complaint_no"]
            # No header: the action's events, and its lines, carry the complaint's own id.
            acknowledged = await client.post(
                f"/v1/complaints/{number}/acknowledge", json={"actor": "fo-supervisor"}
            )
            assert acknowledged.status_code == 200, acknowledged.text
            # Refused (out of turn): its line still names the case's story.
            too_early = await client.post(
                f"/v1/complaints/{number}/close", json={"actor": "fo-supervisor"}
            )
            assert too_early.status_code == 409, too_early.text

    [action] = [entry for entry in logs if entry["event"] == "case action"]
    assert (action["complaint_no"], action["correlation_id"]) == (number, "corr-logged")
    requests = [
        (entry["route"], entry["status"], entry["complaint_no"], entry["correlation_id"])
        for entry in logs
        if entry["event"] == "request"
    ]
    assert requests == [
        ("/v1/complaints", 201, number, "corr-logged"),
        ("/v1/complaints/{complaint_no}/acknowledge", 200, number, "corr-logged"),
        ("/v1/complaints/{complaint_no}/close", 409, number, "corr-logged"),
    ]
