"""PostgreSQL: the pool, migrations under a lock, and the few functions every store module queries through."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import structlog
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from databases import Database
from pgvector.asyncpg import register_vector

from rag.store import SESSION_SETTINGS

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


async def _init_connection(conn) -> None:  # asyncpg connection
    # jsonb in and out as Python objects; vectors in as numpy arrays, out as pgvector.Vector (`.to_numpy()`).
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await register_vector(conn)


def rows(records) -> list[dict]:  # asyncpg records
    """Plain dicts from asyncpg records."""
    return [dict(record) for record in records]


def row(record) -> dict | None:
    return dict(record) if record is not None else None


async def _keep_session(conn) -> None:  # asyncpg connection
    """Pool release without asyncpg's default reset (RESET ALL, UNLISTEN ...): one round trip
    saved per query. Our code sets session state only with SET LOCAL inside transactions (and
    the start-up settings of `make_database`)."""


# -- Queries -------------------------------------------------------------------------------------
# `databases` holds the pool and gives each task its connection (`db.connection()`): every statement
# of a task runs on it, so inside `transaction(db)` they are the transaction's. The statements go to
# asyncpg as they are written (`$n` placeholders, positional values) through the connection's public
# `raw_connection`: no SQLAlchemy compilation on the way (it cost more CPU than the queries).


@asynccontextmanager
async def transaction(db: Database) -> AsyncIterator[asyncpg.Connection]:
    """A transaction on this task's connection (a savepoint when nested).

    asyncpg's own transaction rather than `db.transaction()`: when the server dies mid-transaction,
    the failed rollback still releases the connection, so the task's next statement gets a new
    one instead of the dead one forever."""
    async with db.connection() as held, held.raw_connection.transaction():
        yield held.raw_connection


async def fetch(db: Database, sql: str, *args: object) -> list[asyncpg.Record]:
    async with db.connection() as held:
        return await held.raw_connection.fetch(sql, *args)


async def fetchrow(db: Database, sql: str, *args: object) -> asyncpg.Record | None:
    async with db.connection() as held:
        return await held.raw_connection.fetchrow(sql, *args)


async def fetchval(db: Database, sql: str, *args: object) -> object:
    async with db.connection() as held:
        return await held.raw_connection.fetchval(sql, *args)


async def execute(db: Database, sql: str, *args: object) -> str:
    async with db.connection() as held:
        return await held.raw_connection.execute(sql, *args)


def assignments(editable: Collection[str], changes: Mapping[str, object], first: int) -> tuple[str, list[object]]:
    """An UPDATE's `column = $n, ` list for `changes` (only columns of `editable`), numbered from `first`, and
    the values in that order: column names never come from a caller's input."""
    assert set(changes) <= set(editable), f"not editable: {set(changes) - set(editable)}"
    sets = "".join(f"{column} = ${number}, " for number, column in enumerate(changes, start=first))
    return sets, list(changes.values())


def make_database(url: str, *, min_size: int = 1, max_size: int = 10) -> Database:
    return Database(
        url,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        # Sent with the connection's start-up packet: no round trip (see rag.store.dense_search).
        server_settings=SESSION_SETTINGS,
    )


async def current_revision(db: Database) -> str | None:
    try:
        return await fetchval(db, "SELECT version_num FROM alembic_version")
    except asyncpg.UndefinedTableError:
        return None


def is_connection_error(exc: BaseException) -> bool:
    """True for the errors that mean "the database is unreachable right now"."""
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
            asyncpg.exceptions.InternalClientError,  # a pool connection caught mid-operation by the outage
        ),
    )


def split_sql(script: str) -> list[str]:
    """Statements of a migration script (asyncpg prepares one statement at a time)."""
    return [statement.strip() for statement in script.split(";\n") if statement.strip().strip(";").strip()]
