"""Each service as its own database role: its schema is its own, the others' are closed to
it, and a BI login reads reporting's views and nothing else, through a rebuild too."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from services.intake.app import MIGRATIONS as INTAKE_MIGRATIONS
from services.reporting.app import MIGRATIONS as REPORTING_MIGRATIONS
from services.reporting.rebuild import rebuild
from services.reporting.settings import ReportingSettings
from services.routing.app import MIGRATIONS as ROUTING_MIGRATIONS
from shared.db import apply_migrations
from shared.db.roles import BI_ROLE, apply_roles, main, role_of
from shared.topics import Topics
from tests.integration.test_intake_api import submission
from tests.support.db import scalar
from tests.support.infra import Infra
from tests.support.intake import running_intake


def as_role(database_url: str, role: str) -> str:
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}"))


@pytest.fixture
async def roles(database_url: str) -> str:
    """A database an administrator first migrated (as an upgrade finds it), then roled."""
    await apply_migrations(database_url, "intake", INTAKE_MIGRATIONS)
    await apply_roles(database_url, {})
    return database_url


async def _denied(dsn: str, sql: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    except asyncpg.InsufficientPrivilegeError:
        return True
    finally:
        await conn.close()
    return False


async def test_a_service_works_in_its_schema_as_its_role_and_reads_no_other(
    roles: str, infra: Infra, topics: Topics
) -> None:
    intake = as_role(roles, role_of("intake"))
    async with running_intake(intake, infra.kafka_bootstrap_servers, topics) as client:
        accepted = await client.post("/v1/complaints", json=submission())
    assert accepted.status_code == 201, accepted.text
    assert await scalar(roles, "SELECT count(*) FROM intake.complaints") == 1
    assert await scalar(roles, "SELECT count(*) FROM intake.outbox") >= 1

    routing = as_role(roles, role_of("routing"))
    assert await apply_migrations(routing, "routing", ROUTING_MIGRATIONS)
    assert await scalar(routing, "SELECT count(*) FROM routing.assignments") == 0
    assert await _denied(routing, "SELECT count(*) FROM intake.complaints")
    assert await _denied(routing, "SELECT count(*) FROM intake.outbox")
    assert await _denied(intake, "SELECT count(*) FROM routing.assignments")
    assert await _denied(routing, "CREATE SCHEMA elsewhere")
    assert await _denied(routing, "DROP TABLE intake.complaints")


async def test_bi_reads_reporting_views_and_keeps_reading_after_a_rebuild_swaps_them(
    roles: str, infra: Infra, topics: Topics
) -> None:
    reporting = as_role(roles, role_of("reporting"))
    login = f"bi_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(roles)
    try:
        await admin.execute(f"CREATE ROLE {login} LOGIN IN ROLE {BI_ROLE}")
    finally:
        await admin.close()
    bi = as_role(roles, login)
    settings = ReportingSettings(
        database_url=reporting,
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        complaints_topic_namespace=topics.namespace,
    )
    await apply_migrations(reporting, "reporting", REPORTING_MIGRATIONS)
    assert await scalar(bi, "SELECT count(*) FROM reporting.bi_cases") == 0
    assert await _denied(bi, "SELECT count(*) FROM reporting.cases")
    assert await _denied(bi, "DELETE FROM reporting.bi_cases")

    await rebuild(settings)  # a fresh schema, renamed into place by reporting's role

    assert await scalar(bi, "SELECT count(*) FROM reporting.bi_cases") == 0
    assert await scalar(bi, "SELECT count(*) FROM reporting.bi_clocks") == 0
    assert await _denied(bi, "SELECT count(*) FROM reporting.case_counts")
    assert await _denied(bi, "SELECT count(*) FROM intake.complaints")
    assert await _denied(reporting, "SELECT count(*) FROM intake.complaints")


async def test_roles_can_be_applied_again_and_passwords_come_from_a_file(
    roles: str, tmp_path: Path
) -> None:
    file = tmp_path / "passwords.json"
    file.write_text('{"complaints_routing": "a-long-random-value"}', encoding="utf-8")
    command = ["--database-url", roles, "--passwords-file", str(file)]
    assert await asyncio.to_thread(main, command) == 0
    named = "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'complaints\\_%'"
    assert await scalar(roles, named) >= 6
    routing = (
        "SELECT count(*) FROM pg_authid"
        " WHERE rolname = 'complaints_routing' AND rolpassword IS NOT NULL"
    )
    assert await scalar(roles, routing) == 1
    file.write_text('["not", "an object"]', encoding="utf-8")
    assert await asyncio.to_thread(main, command) == 2
