from services.reporting.app import build_app
from services.reporting.settings import ReportingSettings
from shared.http import serve

settings = ReportingSettings()
serve(build_app(settings), settings.reporting_host, settings.reporting_port)
