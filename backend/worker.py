"""`python -m backend.worker`: the job workers and channel reconciliation without HTTP, for scaling out."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import structlog

from backend.lifecycle import connect_with_backoff, resolve_database_url
from backend.logging import configure_logging
from backend.model_loading import load_models
from backend.runtime import Runtime
from backend.settings import Settings
from backend.workers.runner import start_workers

log = structlog.get_logger(__name__)


async def run(settings: Settings) -> None:
    url = await resolve_database_url(settings)
    # The backend owns migrations; a worker waits for them like for the database.
    db = await connect_with_backoff(url, migrate=True)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=settings.gateway_timeout_seconds)) as http:
        rt = Runtime(settings=settings, db=db, http=http, database_url=url)
        if settings.load_models_at_start:
            rt.model_loads = await load_models(rt)
        workers = await start_workers(rt)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("worker.ready")
        await stop.wait()
        await workers.stop()
        await rt.close()
    await db.disconnect()


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
