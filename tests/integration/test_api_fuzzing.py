"""Schemathesis against intake's and reporting's OpenAPI, over HTTP to the real services.

Every operation gets ``API_FUZZ_EXAMPLES`` generated requests (100 in ``make test``;
``make fuzz-api`` runs 1,000): valid and invalid bodies, query strings and path
parameters. Half of the requests naming a complaint name one that exists, so staff
actions meet real cases in every state the fuzzing drives them to. No answer may be a
5xx, an undocumented status, or a body or content type its own schema does not allow.
``GET /v1/stream`` (server-sent events, an endless response) is left out; its tests are
in test_reports.py and the browser tests.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.intake.app import build_app as build_intake
from services.intake.settings import IntakeSettings
from services.reporting.app import build_app as build_reporting
from services.reporting.settings import ReportingSettings
from shared.db.urls import with_database
from shared.kafka_admin import ensure_topics
from shared.topics import all_topic_partitions
from tests.integration.test_intake_api import submission
from tests.support.auth import admin_headers, staff_token
from tests.support.infra import Infra
from tests.support.processes import Platform, free_port, platform_env

EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "100"))
SEEDED = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# An administrator reaches every operation; the reason header stays the fuzzer's to vary.
ADMIN = {"Authorization": f"Bearer {staff_token('admin')}"}
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)

intake_schema = schemathesis.openapi.from_dict(build_intake(IntakeSettings()).openapi())
reporting_schema = schemathesis.openapi.from_dict(
    build_reporting(ReportingSettings()).openapi()
).exclude(path="/v1/stream")


class Services:
    def __init__(self, intake: str, reporting: str, complaints: list[str]) -> None:
        self.intake = intake
        self.reporting = reporting
        self.complaints = complaints

    def aim(self, case: schemathesis.Case) -> None:
        """Half the cases that name a complaint get an existing one, chosen by the case."""
        parameters = case.path_parameters or {}
        if "complaint_no" in parameters:
            pick = zlib.crc32(repr(case.body).encode() + repr(case.query).encode())
            if pick % 2:
                parameters["complaint_no"] = self.complaints[pick % len(self.complaints)]


async def _database(infra: Infra, name: str, drop: bool = False) -> None:
    admin = await asyncpg.connect(infra.database_url)
    try:
        statement = f'DROP DATABASE "{name}" WITH (FORCE)' if drop else f'CREATE DATABASE "{name}"'
        await admin.execute(statement)
    finally:
        await admin.close()


def _seed(intake: str, reporting: str) -> list[str]:
    """Complaints in intake and in reporting's case file, for the fuzzing to act on."""
    numbers = []
    with httpx.Client(base_url=intake, timeout=30, headers=admin_headers()) as client:
        for index in range(SEEDED):
            body: dict[str, Any] = submission(submission_id=f"fuzz-seed-{index}")
            response = client.post("/v1/complaints", json=body)
            assert response.status_code == 201, response.text
            numbers.append(response.json()["complaint_no"])
    with httpx.Client(base_url=reporting, timeout=30, headers=admin_headers()) as client:
        for _ in range(300):
            if client.get(f"/v1/cases/{numbers[-1]}").status_code == 200:
                return numbers
            time.sleep(0.2)
    raise AssertionError("reporting never showed the seeded complaints")


@pytest.fixture(scope="module")
def services(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    asyncio.run(_database(infra, name))
    asyncio.run(ensure_topics(infra.kafka_bootstrap_servers, all_topic_partitions(namespace)))
    intake_port, reporting_port = free_port(), free_port()
    logs: Path = tmp_path_factory.mktemp("fuzz-logs")
    platform = Platform(
        platform_env(
            KAFKA_BOOTSTRAP_SERVERS=infra.kafka_bootstrap_servers,
            DATABASE_URL=with_database(infra.database_url, name),
            COMPLAINTS_TOPIC_NAMESPACE=namespace,
            INTAKE_PORT=str(intake_port),
            REPORTING_PORT=str(reporting_port),
            # Covered by its own test; here it would turn most valid submissions into 429s.
            INTAKE_BRANCH_SUBMISSIONS_PER_MINUTE="0",
        ),
        logs,
    )
    intake, reporting = f"http://127.0.0.1:{intake_port}", f"http://127.0.0.1:{reporting_port}"
    try:
        platform.start("intake", "-m", "services.intake")
        platform.start("reporting", "-m", "services.reporting")
        platform.wait_http("intake", f"{intake}/openapi.json")
        platform.wait_http("reporting", f"{reporting}/openapi.json")
        yield Services(intake, reporting, _seed(intake, reporting))
    finally:
        platform.stop()
        asyncio.run(_database(infra, name, drop=True))


@intake_schema.parametrize()
@FUZZ
def test_intake_answers_every_request_as_its_schema_says(
    case: schemathesis.Case, services: Services
) -> None:
    services.aim(case)
    case.call_and_validate(base_url=services.intake, checks=CHECKS, timeout=30, headers=ADMIN)


@reporting_schema.parametrize()
@FUZZ
def test_reporting_answers_every_request_as_its_schema_says(
    case: schemathesis.Case, services: Services
) -> None:
    services.aim(case)
    case.call_and_validate(base_url=services.reporting, checks=CHECKS, timeout=30, headers=ADMIN)
