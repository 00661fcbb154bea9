import asyncio

from services.notify.app import build_app
from services.notify.settings import NotifySettings

asyncio.run(build_app(NotifySettings()).run())
