from __future__ import annotations

from pydantic import Field

from shared.settings import AuthSettings, ServiceSettings


class ReportingSettings(ServiceSettings, AuthSettings):
    reporting_host: str = Field(default="127.0.0.1", description="Address the HTTP API binds to.")
    reporting_port: int = Field(default=8005, description="Port of the HTTP API.")
    reporting_workers: int = Field(
        default=1,
        ge=1,
        description="Reporting processes sharing the port, each a full instance (its "
        "consumers in the one group, the dashboard stream answered by whichever took it).",
    )
    report_timezone: str = Field(
        default="Asia/Shanghai", description="Time zone whose calendar days the reports count."
    )
