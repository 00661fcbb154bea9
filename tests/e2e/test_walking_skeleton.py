"""One complaint through all five services, each a real process, over the real broker."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from pathlib import Path
from typing import Any

import httpx

from shared.kafka_admin import ensure_topics
from shared.topics import Topics, all_topic_partitions
from tests.contracts.golden import golden_samples, same_shape
from tests.support.auth import bearer, branch_headers, staff_token
from tests.support.infra import Infra
from tests.support.kafka import read_records
from tests.support.processes import Platform, free_port, platform_env

SERVICES = ("intake", "routing", "sla", "notify", "reporting")
# The branch submits with its API key; a company-wide manager reads the case file and
# the report, as the platform's real users do.
MANAGER = bearer(staff_token("company-manager"))


async def _case_when_complete(reporting: str, complaint_no: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=reporting, timeout=5, headers=MANAGER) as client:
        for _ in range(300):
            response = await client.get(f"/v1/cases/{complaint_no}")
            if response.status_code == 200:
                case = response.json()
                acknowledged = any(
                    n["to_customer"] and n["channel"] == "email" and n["status"] == "sent"
                    for n in case["notifications"]
                )
                if case["status"] == "assigned" and case["clocks"] and acknowledged:
                    return case
            await asyncio.sleep(0.2)
    raise AssertionError(f"case {complaint_no} never completed: {response.text}")


async def test_a_complaint_travels_through_all_five_services(
    infra: Infra, database_url: str, tmp_path: Path
) -> None:
    namespace = f"e2e-{uuid.uuid4().hex[:8]}"
    await ensure_topics(infra.kafka_bootstrap_servers, all_topic_partitions(namespace))
    intake_port, reporting_port, smtp_port, sms_port = (free_port() for _ in range(4))
    mail_dir = tmp_path / "mail"
    platform = Platform(
        platform_env(
            KAFKA_BOOTSTRAP_SERVERS=infra.kafka_bootstrap_servers,
            DATABASE_URL=database_url,
            COMPLAINTS_TOPIC_NAMESPACE=namespace,
            INTAKE_PORT=str(intake_port),
            REPORTING_PORT=str(reporting_port),
            SMTP_PORT=str(smtp_port),
            SMS_GATEWAY_URL=f"http://127.0.0.1:{sms_port}/gateway/send",
            WEBHOOK_BASE_URL=f"http://127.0.0.1:{sms_port}/webhooks",
        ),
        tmp_path,
    )
    intake = f"http://127.0.0.1:{intake_port}"
    reporting = f"http://127.0.0.1:{reporting_port}"
    platform.start(
        "smtp", "deploy/local/smtp_sink.py", "--dir", str(mail_dir), "--port", str(smtp_port)
    )
    platform.start(
        "sms", "deploy/local/sms_sink.py", "--dir", str(tmp_path / "sms"), "--port", str(sms_port)
    )
    for service in SERVICES:
        platform.start(service, "-m", f"services.{service}")
    try:
        platform.wait_http("intake", f"{intake}/openapi.json")
        platform.wait_http("reporting", f"{reporting}/openapi.json")
        async with httpx.AsyncClient(
            base_url=intake, timeout=10, headers=branch_headers("hotel-demo")
        ) as client:
            response = await client.post(
                "/v1/complaints",
                json={
                    "branch_id": "hotel-demo",
                    "channel": "web",
                    "customer": {
                        "name": "Alice Smith",
                        "phone": "+44 20 7946 0958",
                        "email": "alice.smith@example.com",
                        "type": "in_house_guest",
                        "language": "en",
                    },
                    "description": "The air conditioning in room 1208 does not cool.",
                    "category": "facilities",
                    "first_contact_staff": "fo-agent",
                },
            )
        assert response.status_code == 201, response.text
        complaint_no = response.json()["complaint_no"]

        case = await _case_when_complete(reporting, complaint_no)
        assert case["status"] == "assigned"
        assert case["assignment"]["department"] == "engineering"
        assert case["assignment"]["assignee"]["staff_id"] == "eng-manager"
        (clock,) = case["clocks"]
        assert clock["name"] == "resolution"
        assert clock["state"] == "running"
        (acknowledgement,) = [
            n for n in case["notifications"] if n["to_customer"] and n["channel"] == "email"
        ]
        assert acknowledgement["status"] == "sent"
        assert acknowledgement["template"] == "acknowledgement"
        assert acknowledgement["recipient_masked"] == "a***@example.com"
        assert next(e["event_type"] for e in case["timeline"]) == "ComplaintReceived"
        assert "NotificationSent" in [e["event_type"] for e in case["timeline"]]

        to_alice = [
            text
            for text in (
                m.read_text(encoding="utf-8", errors="replace") for m in mail_dir.glob("*.eml")
            )
            if "X-Sink-Rcpt-To: alice.smith@example.com" in text
        ]
        assert len(to_alice) == 1
        assert complaint_no in to_alice[0]

        async with httpx.AsyncClient(base_url=reporting, timeout=5, headers=MANAGER) as client:
            summary = (await client.get("/v1/reports/summary")).json()
        assert summary["total"] == 1
        assert summary["by_status"] == {"assigned": 1}
        assert summary["by_category"] == {"facilities": 1}
        assert summary["by_branch"] == {"hotel-demo": 1}

        # What each producer really emitted has the shape of its golden sample.
        golden = golden_samples()
        emitted = []
        for topic in Topics.in_namespace(namespace).all()[2:]:
            expected = 2 if topic.role == "intake" else 1
            for record in await read_records(
                infra.kafka_bootstrap_servers, topic.name, expected=expected, timeout=5
            ):
                document = json.loads(record.value)
                assert record.key == complaint_no.encode()
                assert same_shape(document, golden[document["event_type"]])
                emitted.append(document["event_type"])
        assert sorted(e for e in emitted if not e.startswith("Notification")) == sorted(
            [
                "ComplaintReceived",
                "ComplaintAssignmentRecorded",
                "ComplaintAssigned",
                "ClockStarted",
            ]
        )
        assert {e for e in emitted if e.startswith("Notification")} <= {
            "NotificationQueued",
            "NotificationSent",
        }
        assert "NotificationSent" in emitted
        for topic in Topics.in_namespace(namespace).all():
            dead = await read_records(
                infra.kafka_bootstrap_servers, topic.dead_letter, expected=0, timeout=0.5
            )
            assert dead == []
    finally:
        exit_codes = platform.stop()

    # uvicorn re-raises SIGTERM after its graceful shutdown; a kill would show as -9.
    graceful = (0, -signal.SIGTERM)
    assert all(code in graceful for code in exit_codes.values()), {
        name: platform.log(name)[-2000:] for name, code in exit_codes.items()
    }
    for service in ("intake", "reporting"):
        assert "Application shutdown complete" in platform.log(service)
    for service in ("routing", "sla", "notify"):
        assert "shut down gracefully" in platform.log(service)
    for service in SERVICES:
        log = platform.log(service)
        assert "alice.smith@example.com" not in log
        assert "7946 0958" not in log
    assert complaint_no in platform.log("intake")
