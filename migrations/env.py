"""Alembic environment: async engine, one transaction, an advisory lock against concurrent starts."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.ext.asyncio import create_async_engine

from backend.database import sqlalchemy_url

# Any constant works; it only has to be the same for every process migrating this database.
MIGRATION_LOCK_ID = 7_310_431_001


def _database_url() -> str:
    url = context.config.attributes.get("database_url")
    if url:
        return url
    # `alembic upgrade head` from the shell: the same resolution as the backend.
    from backend.settings import Settings

    settings = Settings()
    if settings.database_url:
        return settings.database_url
    from backend.embedded_db import embedded_database_url

    return embedded_database_url(settings.data_dir)


def _run(connection) -> None:  # a sync Connection inside run_sync
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=False)
    with context.begin_transaction():
        # Held until commit: a second backend waits here, then finds the schema at head.
        connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})"))
        context.run_migrations()


async def _run_online() -> None:
    engine = create_async_engine(sqlalchemy_url(_database_url()), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("Offline SQL generation is not supported; run against a database.")
asyncio.run(_run_online())
