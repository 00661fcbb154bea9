from __future__ import annotations

from pydantic import Field, SecretStr

from shared.settings import ServiceSettings


class NotifySettings(ServiceSettings):
    smtp_host: str = Field(default="127.0.0.1", description="SMTP server host.")
    smtp_port: int = Field(default=8025, description="SMTP server port (8025: the dev sink).")
    smtp_starttls: bool = Field(default=False, description="Upgrade the connection with STARTTLS.")
    smtp_username: str | None = Field(default=None, description="SMTP login, if required.")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password.")
    smtp_timeout: float = Field(default=10.0, gt=0)
    mail_from: str = Field(
        default="Customer Service <customer-service@complaints.local>",
        description="From: of every e-mail; only customer service speaks to customers.",
    )
    send_attempts: int = Field(default=3, ge=1, description="Tries before a send is failed.")
