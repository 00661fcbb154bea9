"""shared.http.AccessLog: one line a request, naming the complaint and its correlation id,
never the path or query as sent."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from shared import http
from shared.http import AccessLog
from shared.logging import note_for_access_log
from tests.support.logs import captured_logs


@pytest.fixture
def lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[MutableMapping[str, Any]]]:
    with captured_logs(monkeypatch, http) as logs:
        yield logs


def app() -> FastAPI:
    api = FastAPI()

    @api.get("/v1/complaints/{complaint_no}")
    async def read(complaint_no: str) -> dict[str, str]:
        return {"complaint_no": complaint_no}

    @api.post("/v1/complaints")
    async def submit() -> dict[str, str]:
        note_for_access_log(complaint_no="261123042", correlation_id="of-the-complaint")
        return {}

    @api.get("/v1/broken")
    async def broken() -> None:
        raise RuntimeError("boom")

    @api.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    api.add_middleware(AccessLog, quiet=("/health",))
    return api


async def call(method: str, url: str, **options: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.request(method, url, **options)


async def test_a_request_about_a_complaint_names_it_and_its_correlation_id(
    lines: list[MutableMapping[str, Any]],
) -> None:
    answer = await call(
        "GET", "/v1/complaints/261123001?token=s3cret", headers={"X-Correlation-Id": "corr-7"}
    )
    assert answer.status_code == 200
    [line] = lines
    assert {k: v for k, v in line.items() if k != "duration_ms"} == {
        "event": "request",
        "log_level": "info",
        "method": "GET",
        "route": "/v1/complaints/{complaint_no}",
        "status": 200,
        "complaint_no": "261123001",
        "correlation_id": "corr-7",
    }
    assert line["duration_ms"] >= 0
    assert "s3cret" not in repr(line)


async def test_what_the_endpoint_noted_wins_over_the_callers_header(
    lines: list[MutableMapping[str, Any]],
) -> None:
    await call("POST", "/v1/complaints", headers={"X-Correlation-Id": "the-callers"})
    [line] = lines
    assert (line["complaint_no"], line["correlation_id"]) == ("261123042", "of-the-complaint")


async def test_failures_and_unknown_paths_are_logged_without_the_path(
    lines: list[MutableMapping[str, Any]],
) -> None:
    assert (await call("GET", "/v1/broken")).status_code == 500
    assert (await call("GET", "/v1/unknown/eyJhbGciOi.secret")).status_code == 404
    assert [(line["route"], line["status"]) for line in lines] == [
        ("/v1/broken", 500),
        (None, 404),
    ]
    assert "eyJhbGciOi" not in repr(lines)


async def test_probes_are_quiet(lines: list[MutableMapping[str, Any]]) -> None:
    assert (await call("GET", "/health")).status_code == 200
    assert lines == []


async def test_a_long_header_or_number_is_cut_short(
    lines: list[MutableMapping[str, Any]],
) -> None:
    await call("GET", "/v1/complaints/" + "9" * 500, headers={"X-Correlation-Id": "c" * 500})
    [line] = lines
    assert (len(line["complaint_no"]), len(line["correlation_id"])) == (100, 100)
