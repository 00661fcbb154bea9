import uvicorn

from services.intake.app import build_app
from services.intake.settings import IntakeSettings

settings = IntakeSettings()
uvicorn.run(
    build_app(settings),
    host=settings.intake_host,
    port=settings.intake_port,
    log_config=None,
    timeout_graceful_shutdown=10,
)
