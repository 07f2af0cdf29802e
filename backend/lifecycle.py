"""Start-up and shut-down: database (with back-off), migrations, admin, HTTP session, models, workers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from pathlib import Path

import aiohttp
import structlog
from pydantic import SecretStr
from sanic import Sanic
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential

from backend.database import is_connection_error, make_database, run_migrations
from backend.embedded_db import embedded_database_url
from backend.model_loading import load_models
from backend.runtime import Runtime
from backend.services.knowledge import start_reembedding
from backend.services.operators import bootstrap_admin
from backend.settings import Settings
from backend.workers.runner import start_workers

log = structlog.get_logger(__name__)


async def resolve_database_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    return await asyncio.to_thread(embedded_database_url, settings.data_dir)


async def connect_with_backoff(url: str, *, migrate: bool, max_size: int = 10):
    """Migrate (optionally) and connect, retrying with back-off until the database answers."""

    def log_retry(state) -> None:  # tenacity RetryCallState
        log.warning(
            "database.unavailable",
            attempt=state.attempt_number,
            retry_in_s=round(state.next_action.sleep, 1),
            error=type(state.outcome.exception()).__name__,
        )

    async for attempt in AsyncRetrying(
        wait=wait_exponential(multiplier=0.5, max=30),
        retry=retry_if_exception(is_connection_error),
        before_sleep=log_retry,
        reraise=True,
    ):
        with attempt:
            if migrate:
                await run_migrations(url)
            db = make_database(url, max_size=max_size)
            await db.connect()
    return db


def ensure_secret_key(settings: Settings) -> None:
    """A deployment sets SECRET_KEY; a local install gets a random one that survives restarts."""
    if settings.secret_key.get_secret_value():
        return
    path = settings.data_dir / "secret_key"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _write_new_key(path, secrets.token_urlsafe(48))
    settings.secret_key = SecretStr(path.read_text().strip())


def _write_new_key(path: Path, key: str) -> None:
    """Create the key file readable by its owner only from its first byte, and publish it whole:
    written under a private name, then linked into place (an existing key, e.g. another process's
    that started at the same moment, wins and ours is dropped)."""
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(key)
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
    finally:
        draft.unlink(missing_ok=True)


async def before_start(app: Sanic) -> None:
    settings: Settings = app.ctx.settings
    ensure_secret_key(settings)
    app.ctx.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=settings.gateway_timeout_seconds))
    app.ctx.ready_event = asyncio.Event()
    # In the background, so the server answers (503 "not ready") while the database comes up. Not
    # `app.add_task`: Sanic names and tracks a task only in a server `app.run` started; under
    # `create_server` (the tests, an embedding host) it refuses a name and defers an unnamed task
    # out of reach of shut-down. So this one task is held here and stopped in `after_stop`.
    app.ctx.bring_up = asyncio.get_running_loop().create_task(_bring_up(app), name="backend.bring_up")


async def _bring_up(app: Sanic) -> None:
    settings: Settings = app.ctx.settings
    try:
        url = await resolve_database_url(settings)
        app.ctx.not_ready_reason = "connecting to the database"
        db = await connect_with_backoff(url, migrate=True)
        app.ctx.runtime = Runtime(settings=settings, db=db, http=app.ctx.http, database_url=url)
        app.ctx.db = db
        await bootstrap_admin(db, app.ctx.passwords, settings)
        if settings.load_models_at_start:
            app.ctx.not_ready_reason = "loading the models"
            app.ctx.runtime.model_loads = await load_models(app.ctx.runtime)
        # Documents embedded by another model than EMBEDDING_MODEL are re-embedded in background jobs.
        await start_reembedding(app.ctx.runtime)
        if settings.run_workers:
            app.ctx.workers = await start_workers(app.ctx.runtime)
        app.ctx.not_ready_reason = None
        app.ctx.ready_event.set()
        log.info("backend.ready", workers=settings.worker_concurrency if settings.run_workers else 0)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        app.ctx.not_ready_reason = f"start-up failed ({type(exc).__name__}); see the backend log"
        log.exception("backend.startup_failed")


async def after_stop(app: Sanic) -> None:
    app.ctx.bring_up.cancel()  # a no-op once it is done; otherwise the database never came up
    with contextlib.suppress(asyncio.CancelledError):
        await app.ctx.bring_up
    workers = getattr(app.ctx, "workers", None)
    if workers is not None:
        await workers.stop()
    runtime = getattr(app.ctx, "runtime", None)
    if runtime is not None:
        await runtime.close()
    if app.ctx.db is not None:
        await app.ctx.db.disconnect()
    await app.ctx.http.close()
    app.ctx.passwords.close()
