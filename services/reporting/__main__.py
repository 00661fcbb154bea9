from services.reporting.settings import ReportingSettings
from shared.http import serve

settings = ReportingSettings()
serve(
    "services.reporting.app:create_app",
    settings.reporting_host,
    settings.reporting_port,
    settings.reporting_workers,
)
