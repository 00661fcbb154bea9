from __future__ import annotations

from pydantic import Field

from shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    intake_host: str = Field(default="127.0.0.1", description="Address the HTTP API binds to.")
    intake_port: int = Field(default=8001, description="Port of the HTTP API.")
