from __future__ import annotations

from pydantic import Field, SecretStr

from shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    intake_host: str = Field(default="127.0.0.1", description="Address the HTTP API binds to.")
    intake_port: int = Field(default=8001, description="Port of the HTTP API.")
    intake_workers: int = Field(
        default=1, ge=1, description="Intake processes sharing the port, each a full instance."
    )
    feedback_secret: SecretStr = Field(
        default=SecretStr("development-only-feedback-secret"),
        description="Signs the satisfaction-survey links; set a long random value in production.",
    )
