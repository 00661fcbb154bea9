from services.intake.settings import IntakeSettings
from shared.http import serve

settings = IntakeSettings()
serve(
    "services.intake.app:create_app",
    settings.intake_host,
    settings.intake_port,
    settings.intake_workers,
)
