from __future__ import annotations

from pydantic import Field, SecretStr

from shared.settings import AuthSettings, ServiceSettings


class IntakeSettings(ServiceSettings, AuthSettings):
    intake_host: str = Field(default="127.0.0.1", description="Address the HTTP API binds to.")
    intake_port: int = Field(default=8001, description="Port of the HTTP API.")
    intake_workers: int = Field(
        default=1, ge=1, description="Intake processes sharing the port, each a full instance."
    )
    intake_branch_submissions_per_minute: int = Field(
        default=300,
        ge=0,
        description="Submissions over HTTP a branch may make a minute (all of them at once, "
        "then at that pace) before it is answered 429, per intake instance; 0: no limit.",
    )
    feedback_secret: SecretStr = Field(
        default=SecretStr("development-only-feedback-secret"),
        description="Signs the satisfaction-survey links; set a long random value in production.",
    )
