"""bench/preload.py: a database holding two years of complaints in every service's schema,
topped up in two calls, that the real services carry on from: the next complaint gets the
next number of its year and is routed on the preloaded loads."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import asyncpg

from bench.preload import preload
from services.routing.app import build_app as build_routing
from services.sla.app import build_app as build_sla
from shared.topics import Topics
from tests.integration.test_intake_api import submission
from tests.support.infra import Infra
from tests.support.intake import running_intake, wait_for
from tests.support.services import running, settings_for

COMPLAINTS = 2000
SCHEMAS = ("intake", "routing", "sla", "notify", "reporting")
# What must hold of a preloaded database, each query counting what would break it.
BROKEN = {
    "outbox rows the relay would still publish": "SELECT "
    + " + ".join(
        f"(SELECT count(*) FROM {schema}.outbox WHERE published_at IS NULL)" for schema in SCHEMAS
    ),
    "loads that differ from the open assignments": """
        SELECT count(*) FROM routing.staff_load l FULL JOIN (
            SELECT pack, assignee_id AS staff_id, count(*) AS open_cases
            FROM routing.assignments WHERE open GROUP BY 1, 2) a USING (pack, staff_id)
        WHERE coalesce(l.open_cases, 0) <> coalesce(a.open_cases, 0)""",
    "years whose counter is not their last ordinal": """
        SELECT count(*) FROM intake.complaint_counters k FULL JOIN (
            SELECT year, max(ordinal) AS last, count(*) AS n FROM intake.complaints
            GROUP BY year) c USING (year)
        WHERE k.last_ordinal IS DISTINCT FROM c.last OR c.last <> c.n""",
    "complaints some schema lacks": "SELECT "
    + " + ".join(
        f"""(SELECT count(*) FROM intake.complaints i
             WHERE NOT EXISTS (SELECT FROM {table} t WHERE t.complaint_no = i.complaint_no))"""
        for table in ("routing.assignments", "sla.cases", "notify.cases", "reporting.cases")
    ),
    "intake events sla has not consumed": """
        SELECT count(*) FROM intake.case_history h
        WHERE NOT EXISTS (SELECT FROM sla.processed_events p WHERE p.event_id = h.event_id)""",
}
# Timers due before the load began that sla would fire as it starts: there must be none (the
# ones falling due since are sla's to fire, as they would have been).
DUE_BEFORE = """
    SELECT count(*) FROM sla.timers t JOIN sla.clocks c USING (clock_id)
    WHERE t.fired_at IS NULL AND NOT t.cancelled AND t.due_at <= $1
      AND ((t.kind = 'escalation' AND c.state = 'breached')
           OR (t.kind <> 'escalation' AND c.state = 'running'))"""


async def test_the_services_carry_on_from_a_preloaded_database(
    infra: Infra, database_url: str, topics: Topics
) -> None:
    started = datetime.now(UTC)
    first = await preload(database_url, COMPLAINTS // 2, namespace=topics.namespace)
    topped = await preload(database_url, COMPLAINTS, namespace=topics.namespace)
    again = await preload(database_url, COMPLAINTS, namespace=topics.namespace)
    assert (first["complaints"], topped["complaints_before"]) == (COMPLAINTS // 2, COMPLAINTS // 2)
    assert topped["rows_added"]["intake.complaints"] == COMPLAINTS // 2
    assert topped["reporting"]["complaints_added"] == COMPLAINTS // 2
    assert "rows_added" not in again
    conn = await asyncpg.connect(database_url)
    try:
        for what, sql in BROKEN.items():
            assert await conn.fetchval(sql) == 0, what
        assert await conn.fetchval(DUE_BEFORE, started) == 0
        assert await conn.fetchval("SELECT count(*) FROM intake.complaints") == COMPLAINTS
        assert await conn.fetchval("SELECT count(*) FROM routing.assignments WHERE NOT open") > (
            COMPLAINTS * 0.9
        )
        counters: dict[int, int] = {
            row["year"]: row["last_ordinal"]
            for row in await conn.fetch("SELECT year, last_ordinal FROM intake.complaint_counters")
        }
        hotel = "SELECT staff_id, open_cases FROM routing.staff_load WHERE pack = 'hotel'"
        loads: dict[str, int] = {
            row["staff_id"]: row["open_cases"] for row in await conn.fetch(hotel)
        }
        bootstrap = infra.kafka_bootstrap_servers
        settings = settings_for(infra, database_url, topics)
        async with (
            running(build_routing(settings), build_sla(settings)),
            running_intake(database_url, bootstrap, topics) as client,
        ):
            answer = await client.post(
                "/v1/complaints",
                json=submission(category="facilities"),
                headers={"Idempotency-Key": str(uuid.uuid4())},
            )
            assert answer.status_code == 201, answer.text
            number = answer.json()["complaint_no"]

            async def routed_and_clocked() -> bool:
                return bool(
                    await conn.fetchval(
                        """SELECT EXISTS (SELECT FROM routing.assignments WHERE complaint_no = $1)
                              AND EXISTS (SELECT FROM sla.cases WHERE complaint_no = $1)""",
                        number,
                    )
                )

            await wait_for(routed_and_clocked)
        received = (
            await conn.fetchval(
                "SELECT received_at FROM intake.complaints WHERE complaint_no = $1", number
            )
        ).astimezone(ZoneInfo("Asia/Shanghai"))
        assert number == f"{received:%y%m%d}{counters[received.year] + 1:03d}"
        candidates = json.loads(
            await conn.fetchval(
                "SELECT candidates FROM routing.assignments WHERE complaint_no = $1", number
            )
        )
        assert candidates
        assert {c["staff_id"]: c["open_cases"] for c in candidates} == {
            c["staff_id"]: loads.get(c["staff_id"], 0) for c in candidates
        }
    finally:
        await conn.close()
