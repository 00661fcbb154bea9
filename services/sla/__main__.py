import asyncio

from services.sla.app import build_app
from shared.settings import ServiceSettings

asyncio.run(build_app(ServiceSettings()).run())
