"""Connecting to PostgreSQL: URLs, connection with back-off, migrations under a lock."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import databases
import structlog
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from pgvector.asyncpg import register_vector

log = structlog.get_logger(__name__)

ROOT = Path(__file__).resolve().parent.parent


def sqlalchemy_url(url: str) -> str:
    """The same database as an SQLAlchemy asyncpg URL (for alembic)."""
    scheme, rest = url.split("://", 1)
    return "postgresql+asyncpg://" + rest if scheme in {"postgresql", "postgres"} else url


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["database_url"] = url
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("postgresql://")).get_current_head()


async def run_migrations(url: str) -> None:
    """Upgrade to head. env.py holds an advisory lock, so concurrent starters apply each step once."""
    await asyncio.to_thread(command.upgrade, alembic_config(url), "head")


async def _init_connection(conn) -> None:  # noqa: ANN001 - asyncpg connection
    # jsonb in and out as Python objects; vectors as numpy arrays (pgvector).
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await register_vector(conn)


def rows(records) -> list[dict]:  # noqa: ANN001 - databases records
    """Plain dicts from `databases` records."""
    return [dict(record._mapping) for record in records]


def row(record) -> dict | None:  # noqa: ANN001
    return dict(record._mapping) if record is not None else None


async def _keep_session(conn) -> None:  # noqa: ANN001 - asyncpg connection
    """Pool release without asyncpg's default reset (RESET ALL, UNLISTEN ...): one round trip
    saved per query. Our code sets session state only with SET LOCAL inside transactions."""


def make_database(url: str, *, min_size: int = 1, max_size: int = 10) -> databases.Database:
    return databases.Database(url, min_size=min_size, max_size=max_size, init=_init_connection, reset=_keep_session)


async def current_revision(db: databases.Database) -> str | None:
    import asyncpg

    try:
        return await db.fetch_val("SELECT version_num FROM alembic_version")
    except asyncpg.UndefinedTableError:
        return None


def is_connection_error(exc: BaseException) -> bool:
    """True for the errors that mean "the database is unreachable right now"."""
    import asyncpg

    return isinstance(
        exc,
        (
            OSError,
            asyncpg.PostgresConnectionError,
            asyncpg.InterfaceError,
            asyncpg.exceptions.CannotConnectNowError,
            asyncpg.exceptions.AdminShutdownError,
            asyncpg.exceptions.CrashShutdownError,
            asyncpg.exceptions.ConnectionFailureError,
        ),
    )


def split_sql(script: str) -> list[str]:
    """Statements of a migration script (asyncpg prepares one statement at a time)."""
    return [statement.strip() for statement in script.split(";\n") if statement.strip().strip(";").strip()]
