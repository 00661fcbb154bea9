"""Reassignment with an approver, and escalation, across intake and routing."""

from __future__ import annotations

from typing import Any

from services.routing.app import build_app as build_routing
from shared.contracts import ComplaintAssigned, decode_event
from shared.topics import Topics
from tests.integration.test_intake_api import submission
from tests.support.db import scalar
from tests.support.infra import Infra
from tests.support.intake import running_intake, wait_for
from tests.support.kafka import read_records
from tests.support.services import running, settings_for


async def test_an_approved_reassignment_and_an_escalation_move_the_case_and_its_load(
    infra: Infra, database_url: str, topics: Topics
) -> None:
    bootstrap = infra.kafka_bootstrap_servers
    routing = build_routing(settings_for(infra, database_url, topics))
    async with running(routing), running_intake(database_url, bootstrap, topics) as client:
        number = (
            await client.post("/v1/complaints", json=submission(category="facilities"))
        ).json()["complaint_no"]
        base = f"/v1/complaints/{number}"

        async def assignee_is(staff: str) -> bool:
            view: dict[str, Any] = (await client.get(base)).json()
            return view["assignee_id"] == staff

        await wait_for(lambda: assignee_is("eng-manager"))
        refused = await client.post(
            f"{base}/reassignment",
            json={
                "actor": "fo-agent",
                "approver": "fo-agent",
                "to_assignee": "hk-manager",
                "reason": "客房问题",
            },
        )
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["loc"] == ["body", "approver"]
        assert "fo-supervisor" in refused.json()["detail"][0]["msg"]
        approved = await client.post(
            f"{base}/reassignment",
            json={
                "actor": "fo-agent",
                "approver": "fo-supervisor",
                "to_assignee": "fo-agent",
                "reason": "前厅直接处理",
            },
        )
        assert approved.status_code == 200, approved.text
        assert approved.json()["events"] == ["ReassignmentApproved"]
        await wait_for(lambda: assignee_is("fo-agent"))
        view = (await client.get(base)).json()
        assert view["department"] == "front-office"
        assert view["status"] == "assigned"

        escalated = await client.post(
            f"{base}/escalation", json={"actor": "fo-agent", "reason": "客人要求经理出面"}
        )
        assert escalated.status_code == 200
        await wait_for(lambda: assignee_is("fo-supervisor"))

        async def load_moved() -> bool:
            return (
                await scalar(
                    database_url,
                    "SELECT open_cases FROM routing.staff_load WHERE staff_id = 'fo-supervisor'",
                )
                == 1
            )

        await wait_for(load_moved)

    assert await scalar(database_url, "SELECT sum(open_cases) FROM routing.staff_load") == 1
    records = await read_records(bootstrap, topics.routing.name, expected=3)
    decisions = [decode_event(r.value) for r in records]
    assert all(isinstance(d, ComplaintAssigned) for d in decisions)
    first, moved, up = decisions  # type: ignore[misc]
    assert first.previous_assignee is None  # type: ignore[union-attr]
    assert moved.rule == "reassignment:fo-supervisor"  # type: ignore[union-attr]
    assert moved.previous_assignee.staff_id == "eng-manager"  # type: ignore[union-attr]
    assert up.rule == "escalation"  # type: ignore[union-attr]
    assert up.previous_assignee.staff_id == "fo-agent"  # type: ignore[union-attr]
