from services.intake.app import build_app
from services.intake.settings import IntakeSettings
from shared.http import serve

settings = IntakeSettings()
serve(build_app(settings), settings.intake_host, settings.intake_port)
