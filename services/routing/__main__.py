import asyncio

from services.routing.app import build_app
from shared.settings import ServiceSettings

asyncio.run(build_app(ServiceSettings()).run())
