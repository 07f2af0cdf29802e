"""Connecting to PostgreSQL: URLs, connection with back-off, migrations under a lock."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import databases
import structlog
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from databases.backends.postgres import PostgresBackend, PostgresConnection
from databases.core import Connection
from pgvector.asyncpg import register_vector
from sqlalchemy import text

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
    # jsonb in and out as Python objects; vectors in as numpy arrays, out as pgvector.Vector (`.to_numpy()`).
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
    saved per query. Our code sets session state only with SET LOCAL inside transactions (and
    the start-up settings of `make_database`)."""


# -- `databases` without re-compiling every query ------------------------------------------------
# `databases` turns each `:name` query into SQLAlchemy text, compiles it and formats the arguments
# for a debug log line (repr of a 384-float vector included) on every call: 0.3-0.6 ms of CPU per
# query, more than the query itself. The compiled form only depends on the SQL and on the names and
# Python types of the values, so it is compiled once (by SQLAlchemy, exactly as before) and reused.


class _Prepared:
    """A text query in asyncpg form: `$n` placeholders and positional arguments."""

    __slots__ = ("args", "sql")

    def __init__(self, sql: str, args: list) -> None:
        self.sql = sql
        self.args = args


_PLANS: dict[tuple, tuple[str, tuple[str, ...], tuple] | None] = {}
_MAX_PLANS = 4096  # queries are written in code, so there are a few hundred at most


def _plan(dialect, query: str, values: dict | None) -> tuple[str, tuple[str, ...], tuple] | None:  # noqa: ANN001
    """(SQL with $n, parameter names in order, their bind processors), or None when SQLAlchemy
    must handle this query every time (a parameter it does not see in `values`)."""
    key = (query, tuple((name, type(value)) for name, value in values.items()) if values else ())
    try:
        return _PLANS[key]
    except KeyError:
        pass
    clause = text(query).bindparams(**values) if values else text(query)
    compiled = clause.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    names = tuple(sorted(compiled.params))
    plan = None
    if set(names) == set(values or ()):
        sql = compiled.string % {name: f"${i}" for i, name in enumerate(names, start=1)}
        processors = compiled._bind_processors
        plan = (sql, names, tuple(processors.get(name) for name in names))
    if len(_PLANS) < _MAX_PLANS:
        _PLANS[key] = plan
    return plan


class _FastConnection(Connection):
    def _build_query(self, query, values=None):  # noqa: ANN001, ANN202 - databases' signature
        if isinstance(query, str):
            plan = _plan(self._connection._dialect, query, values)
            if plan is not None:
                sql, names, processors = plan
                args = [values[name] for name in names]
                for i, process in enumerate(processors):
                    if process is not None:
                        args[i] = process(args[i])
                return _Prepared(sql, args)
        return Connection._build_query(query, values)


class _FastPostgresConnection(PostgresConnection):
    def _compile(self, query):  # noqa: ANN001, ANN202
        if isinstance(query, _Prepared):
            return query.sql, query.args, []
        return super()._compile(query)


class FastPostgresBackend(PostgresBackend):
    def connection(self) -> PostgresConnection:
        return _FastPostgresConnection(self, self._dialect)


class Database(databases.Database):
    """`databases.Database` with compiled text queries reused (same SQL, same arguments)."""

    SUPPORTED_BACKENDS = {
        **databases.Database.SUPPORTED_BACKENDS,
        "postgresql": "backend.database:FastPostgresBackend",
        "postgres": "backend.database:FastPostgresBackend",
    }

    def connection(self) -> Connection:
        if self._global_connection is not None:
            return self._global_connection
        if self._connection is not None and _broken(self._connection):
            self._connection = None
        if not self._connection:
            self._connection = _FastConnection(self, self._backend)
        return self._connection


def _broken(connection: Connection) -> bool:
    """A task's connection that the server killed. `databases` keeps one connection per task and
    never forgets it when its release fails half-way (server gone mid-query): every later query of
    that task (a worker loop, a keep-alive HTTP connection) would fail for good."""
    raw = connection._connection._connection  # the asyncpg pool proxy; None when not acquired
    if raw is None:
        return False
    if connection._connection_counter == 0:
        return True  # acquired by nobody, yet never released
    proxied = getattr(raw, "_con", None)
    return proxied is None or proxied.is_closed()


def make_database(url: str, *, min_size: int = 1, max_size: int = 10) -> databases.Database:
    from rag.store import SESSION_SETTINGS

    return Database(
        url,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        # Sent with the connection's start-up packet: no round trip (see rag.store.dense_search).
        server_settings=SESSION_SETTINGS,
    )


def pool_of(db: databases.Database) -> asyncpg.Pool:
    """The asyncpg pool under `db`, for hot paths that need neither `databases` nor SQLAlchemy
    (one statement, one round trip). It hands out other connections than `db.transaction()`:
    never use it for work that belongs to a transaction in progress."""
    return db._backend._pool


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
            asyncpg.exceptions.InternalClientError,  # a pool connection caught mid-operation by the outage
        ),
    )


def split_sql(script: str) -> list[str]:
    """Statements of a migration script (asyncpg prepares one statement at a time)."""
    return [statement.strip() for statement in script.split(";\n") if statement.strip().strip(";").strip()]
