"""Reporting running in the test's process, against the real broker and database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from services.reporting.app import build_app
from services.reporting.settings import ReportingSettings
from tests.support.auth import admin_headers


@asynccontextmanager
async def reporting_client(settings: ReportingSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://reporting",
            timeout=30,
            headers=admin_headers(),
        ) as client,
    ):
        yield client
