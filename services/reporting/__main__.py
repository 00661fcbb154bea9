import uvicorn

from services.reporting.app import build_app
from services.reporting.settings import ReportingSettings

settings = ReportingSettings()
uvicorn.run(
    build_app(settings),
    host=settings.reporting_host,
    port=settings.reporting_port,
    log_config=None,
    timeout_graceful_shutdown=10,
)
