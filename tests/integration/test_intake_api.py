from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import asyncpg
import httpx

from services.intake import store
from services.intake.app import MIGRATIONS, build_app
from services.intake.settings import IntakeSettings
from shared.contracts import ComplaintReceived, decode_event
from shared.db import apply_migrations
from tests.support.auth import admin_headers
from tests.support.db import scalar
from tests.support.tcp_proxy import TcpProxy


def _unreachable_kafka() -> str:
    # Kafka is "down" for these tests: intake must accept regardless, the outbox holds events.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


@asynccontextmanager
async def intake_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(
        IntakeSettings(database_url=database_url, kafka_bootstrap_servers=_unreachable_kafka())
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://intake",
            headers=admin_headers(),
        ) as client,
    ):
        yield client


def submission(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "branch_id": "hotel-demo",
        "channel": "phone",
        "customer": {
            "name": "张伟",
            "phone": "+86 138 0013 8000",
            "email": "zhang.wei@example.com",
            "type": "in_house_guest",
        },
        "description": "房间空调不制冷",
        "category": "facilities",
    }
    body.update(overrides)
    return body


async def test_a_complaint_is_numbered_stored_and_its_event_held_in_the_outbox(
    database_url: str,
) -> None:
    async with intake_client(database_url) as client:
        response = await client.post(
            "/v1/complaints", json=submission(), headers={"X-Correlation-ID": "corr-42"}
        )
    assert response.status_code == 201, response.text
    body = response.json()
    today = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).strftime("%y%m%d")
    assert body["complaint_no"] == f"{today}001"
    assert body["status"] == "received"
    assert body["correlation_id"] == "corr-42"

    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT * FROM intake.complaints")
        assert row is not None
        assert row["complaint_no"] == body["complaint_no"]
        outbox = await conn.fetch("SELECT * FROM intake.outbox")
    finally:
        await conn.close()
    assert len(outbox) == 1
    assert outbox[0]["published_at"] is None
    assert outbox[0]["key"] == body["complaint_no"].encode()
    event = decode_event(outbox[0]["payload"])
    assert isinstance(event, ComplaintReceived)
    assert event.complaint_no == body["complaint_no"]
    assert event.correlation_id == "corr-42"
    assert event.pack == "hotel"
    assert event.customer.email == "zhang.wei@example.com"


async def test_invalid_fields_are_each_named_and_nothing_is_stored(database_url: str) -> None:
    body = submission(channel="pigeon", customer={"name": "", "type": "alien", "email": "nope"})
    del body["description"]
    async with intake_client(database_url) as client:
        response = await client.post("/v1/complaints", json=body)
    assert response.status_code == 422
    locations = {tuple(error["loc"]) for error in response.json()["detail"]}
    assert locations == {
        ("body", "channel"),
        ("body", "customer", "name"),
        ("body", "customer", "type"),
        ("body", "customer", "email"),
        ("body", "description"),
    }
    assert await scalar(database_url, "SELECT count(*) FROM intake.complaints") == 0
    assert await scalar(database_url, "SELECT count(*) FROM intake.outbox") == 0


async def test_unknown_branch_and_category_are_refused_with_the_allowed_values(
    database_url: str,
) -> None:
    async with intake_client(database_url) as client:
        branch = await client.post("/v1/complaints", json=submission(branch_id="nowhere"))
        category = await client.post("/v1/complaints", json=submission(category="weather"))
        not_json = await client.post(
            "/v1/complaints", content=b"{", headers={"content-type": "application/json"}
        )
    assert branch.status_code == 422
    assert "hotel-demo" in json.dumps(branch.json())
    assert category.status_code == 422
    assert "facilities" in category.json()["detail"][0]["msg"]
    assert category.json()["detail"][0]["loc"] == ["body", "category"]
    assert not_json.status_code == 422
    assert await scalar(database_url, "SELECT count(*) FROM intake.complaints") == 0


async def test_concurrent_submissions_to_two_instances_get_unique_consecutive_numbers(
    database_url: str,
) -> None:
    async with intake_client(database_url) as first, intake_client(database_url) as second:
        responses = await asyncio.gather(
            *(
                (first if i % 2 else second).post("/v1/complaints", json=submission())
                for i in range(40)
            )
        )
    assert all(r.status_code == 201 for r in responses)
    ordinals = sorted(int(r.json()["complaint_no"][6:]) for r in responses)
    assert ordinals == list(range(1, 41))


async def test_without_the_database_intake_answers_503_and_records_nothing(
    database_url: str,
) -> None:
    parts = urlsplit(database_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    proxied = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    async with intake_client(proxied) as client:
        accepted = await client.post("/v1/complaints", json=submission())
        assert accepted.status_code == 201
        await proxy.cut()
        refused = await client.post("/v1/complaints", json=submission())
    assert refused.status_code == 503
    assert "nothing was recorded" in refused.json()["detail"]
    assert refused.headers["retry-after"] == "5"
    assert await scalar(database_url, "SELECT count(*) FROM intake.complaints") == 1


async def test_the_full_intake_record_is_kept_and_shown_with_its_history(
    database_url: str,
) -> None:
    body = submission(
        customer={
            "name": "Acme 采购部 李娜",
            "phone": "021-6438 1234",
            "email": "li.na@acme.example",
            "company": "Acme Trading 有限公司",
            "type": "dealer",
            "language": "en",
        },
        event_time="2026-11-20T09:15:00+08:00",
        event_place="Warehouse 3 / 三号仓库",
        customer_request="Replace the lot\nand refund shipping",
        severity="urgent",
        region="foreign",
        product={
            "order_no": "SO-2026-1182",
            "lot_no": "AC-88",
            "quantity": 500,
            "delivery_date": "2026-10-01",
            "defective_quantity_undetermined": True,
        },
        attachments=[{"uri": "https://files.example.com/a.jpg", "name": "a.jpg"}],
        first_contact_staff="fo-agent",
    )
    async with intake_client(database_url) as client:
        created = await client.post("/v1/complaints", json=body)
        assert created.status_code == 201, created.text
        number = created.json()["complaint_no"]
        view = await client.get(f"/v1/complaints/{number}")
        missing = await client.get("/v1/complaints/999999999")
    assert view.status_code == 200
    case = view.json()
    assert case["status"] == "received"
    assert case["first_contact_staff"] == "fo-agent"
    assert case["customer"]["company"] == "Acme Trading 有限公司"
    assert case["product"]["defective_quantity_undetermined"] is True
    assert case["attachments"][0]["uri"] == "https://files.example.com/a.jpg"
    assert case["customer_request"] == "Replace the lot\nand refund shipping"
    assert [h["event_type"] for h in case["history"]] == ["ComplaintReceived"]
    assert "acknowledge" in case["allowed_actions"]
    assert missing.status_code == 404


async def test_concurrent_submissions_share_commits_and_a_conflict_among_them_costs_no_other(
    database_url: str,
) -> None:
    async with intake_client(database_url) as client:
        first = await client.post(
            "/v1/complaints", json=submission(), headers={"Idempotency-Key": "pms-7"}
        )
        responses = await asyncio.gather(
            *(
                client.post(
                    "/v1/complaints",
                    json=submission(description=f"第{i}件事"),
                    headers={"Idempotency-Key": "pms-7" if i == 25 else f"burst-{i}"},
                )
                for i in range(60)
            )
        )
    assert first.status_code == 201
    assert [r.status_code for r in responses].count(409) == 1
    assert responses[25].status_code == 409
    accepted = [first, *(r for i, r in enumerate(responses) if i != 25)]
    assert all(r.status_code == 201 for r in accepted)
    ordinals = sorted(int(r.json()["complaint_no"][6:]) for r in accepted)
    assert ordinals == list(range(1, 61))
    # Group commit: the burst went in far fewer transactions than complaints.
    transactions = await scalar(
        database_url,
        "SELECT count(DISTINCT xmin::text) FROM intake.complaints WHERE ordinal > 1",
    )
    assert transactions < 59


async def test_a_retried_submission_gets_the_same_complaint_and_a_changed_one_409(
    database_url: str,
) -> None:
    async with intake_client(database_url) as client:
        key = {"Idempotency-Key": "pms-42"}
        first = await client.post("/v1/complaints", json=submission(), headers=key)
        again = await asyncio.gather(
            *(client.post("/v1/complaints", json=submission(), headers=key) for _ in range(5))
        )
        changed = await client.post(
            "/v1/complaints", json=submission(description="另一件事"), headers=key
        )
        by_body_id = await client.post("/v1/complaints", json=submission(submission_id="pms-42"))
        other_branch_key = await client.post(
            "/v1/complaints", json=submission(), headers={"Idempotency-Key": "pms-43"}
        )
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    for response in [*again, by_body_id]:
        assert response.status_code == 201
        assert response.json()["complaint_no"] == first.json()["complaint_no"]
        assert response.headers["idempotent-replayed"] == "true"
    assert changed.status_code == 409
    assert first.json()["complaint_no"] in changed.json()["detail"]
    assert other_branch_key.json()["complaint_no"] != first.json()["complaint_no"]
    assert await scalar(database_url, "SELECT count(*) FROM intake.complaints") == 2


async def test_oversized_control_characters_and_bad_contacts_are_refused(
    database_url: str,
) -> None:
    async with intake_client(database_url) as client:
        huge = await client.post("/v1/complaints", json=submission(description="很" * 30_000))
        control = await client.post(
            "/v1/complaints", json=submission(description="bell\x07", event_place="a\x00b")
        )
        contacts = await client.post(
            "/v1/complaints",
            json=submission(
                customer={"name": "王\u200b五", "phone": "call me", "email": "x@", "type": "member"}
            ),
        )
        staff = await client.post("/v1/complaints", json=submission(first_contact_staff="nobody"))
        both = await client.post(
            "/v1/complaints",
            json=submission(
                product={"defective_quantity": 3, "defective_quantity_undetermined": True}
            ),
        )
    assert huge.status_code == 413
    assert control.status_code == 422
    assert {tuple(e["loc"]) for e in control.json()["detail"]} == {
        ("body", "description"),
        ("body", "event_place"),
    }
    assert contacts.status_code == 422
    assert {tuple(e["loc"]) for e in contacts.json()["detail"]} == {
        ("body", "customer", "name"),
        ("body", "customer", "phone"),
        ("body", "customer", "email"),
    }
    assert staff.status_code == 422
    assert "fo-supervisor" in staff.json()["detail"][0]["msg"]
    assert both.status_code == 422
    assert await scalar(database_url, "SELECT count(*) FROM intake.complaints") == 0


async def test_ordinals_restart_each_year_and_a_rollback_leaves_no_gap(
    database_url: str,
) -> None:
    await apply_migrations(database_url, "intake", MIGRATIONS)
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "intake"})
    try:
        ordinals = [await store.next_ordinal(conn, 2026) for _ in range(3)]
        new_year = await store.next_ordinal(conn, 2027)
        with contextlib.suppress(RuntimeError):
            async with conn.transaction():
                await store.next_ordinal(conn, 2026)
                raise RuntimeError("the complaint could not be stored")
        after_rollback = await store.next_ordinal(conn, 2026)
    finally:
        await conn.close()
    assert ordinals == [1, 2, 3]
    assert new_year == 1
    assert after_rollback == 4


async def test_a_branch_system_builds_its_form_from_the_pack(database_url: str) -> None:
    async with intake_client(database_url) as client:
        form = await client.get("/v1/branches/hotel-demo")
        missing = await client.get("/v1/branches/nowhere")
    assert form.status_code == 200
    body = form.json()
    assert body["pack"] == "hotel"
    assert len(body["pack_version"]) == 16
    assert {
        "code": "facilities",
        "label": {"zh": "设施设备", "en": "Facilities and equipment"},
    } in (body["categories"])
    assert "in_house_guest" in body["customer_types"]
    assert body["channels"][0] == "phone"
    assert body["severities"] == ["normal", "urgent", "major"]
    assert missing.status_code == 404


async def test_a_complaint_taken_earlier_by_an_offline_branch_counts_from_then(
    database_url: str,
) -> None:
    taken = datetime.now(UTC) - timedelta(hours=30)
    async with intake_client(database_url) as client:
        response = await client.post("/v1/complaints", json=submission(taken_at=taken.isoformat()))
        assert response.status_code == 201, response.text
        accepted = response.json()
        assert datetime.fromisoformat(accepted["received_at"]) == taken
        local_day = taken.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%y%m%d")
        assert accepted["complaint_no"].startswith(local_day)
        for wrong, message in (
            (datetime.now(UTC) + timedelta(hours=1), "in the future"),
            (datetime.now(UTC) - timedelta(days=8), "more than 7 days back"),
        ):
            refused = await client.post(
                "/v1/complaints", json=submission(taken_at=wrong.isoformat())
            )
            assert refused.status_code == 422
            (error,) = refused.json()["detail"]
            assert error["loc"] == ["body", "taken_at"]
            assert message in error["msg"]


async def test_a_branch_posts_its_daily_service_volume_and_a_repeat_changes_nothing(
    database_url: str,
) -> None:
    async with intake_client(database_url) as client:
        path = "/v1/branches/hotel-demo/service-volumes/2026-11-21"
        first = await client.put(path, json={"services": 412})
        assert first.status_code == 200, first.text
        assert first.json() == {
            "branch_id": "hotel-demo",
            "day": "2026-11-21",
            "services": 412,
            "changed": True,
        }
        assert (await client.put(path, json={"services": 412})).json()["changed"] is False
        assert (await client.put(path, json={"services": 420})).json()["changed"] is True
        unknown = await client.put(
            "/v1/branches/nowhere/service-volumes/2026-11-21", json={"services": 1}
        )
        assert unknown.status_code == 404
        negative = await client.put(path, json={"services": -1})
        assert negative.status_code == 422
    conn = await asyncpg.connect(database_url)
    try:
        events = await conn.fetch(
            """SELECT payload FROM intake.outbox
               WHERE headers->>'event_type' = 'ServiceVolumeRecorded'"""
        )
    finally:
        await conn.close()
    assert sorted(json.loads(bytes(e["payload"]))["services"] for e in events) == [412, 420]
