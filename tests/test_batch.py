"""Group commit (`backend.store.batch`): concurrent callers share a commit, yet each gets its own
row or its own error, and nothing is half-written."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from backend.database import make_database
from backend.store.batch import StatementBatcher

INSERT = "INSERT INTO items (owner, value) VALUES ($1, $2) RETURNING id, owner, value, xmin::text AS tx"


@pytest.fixture
async def pool(database_url):
    pool = await asyncpg.create_pool(database_url, min_size=2, max_size=2)  # both open before any lock is taken
    await pool.execute(
        "CREATE TABLE items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, owner text, value int CHECK (value >= 0))"
    )
    yield pool
    await pool.close()


@pytest.fixture
async def db(database_url, pool):
    database = make_database(database_url, max_size=2)
    await database.connect()
    yield database
    await database.disconnect()


async def test_each_caller_gets_its_own_row_and_concurrent_callers_share_commits(pool, db):
    batcher = StatementBatcher(db, INSERT, order_key=lambda args: args[0])
    calls = [(owner, n) for n in range(20) for owner in ("b", "a")]
    records = await asyncio.gather(*(batcher.fetchrow(*call) for call in calls))
    assert [(r["owner"], r["value"]) for r in records] == calls
    assert len({r["tx"] for r in records}) < len(calls)  # fewer commits than callers
    stored = await pool.fetch("SELECT owner, value FROM items ORDER BY id")
    for owner in ("a", "b"):  # one owner's rows keep the callers' order
        assert [r["value"] for r in stored if r["owner"] == owner] == list(range(20))


async def test_a_failing_execution_fails_alone_and_the_others_are_stored(pool, db):
    batcher = StatementBatcher(db, INSERT)
    results = await asyncio.gather(*(batcher.fetchrow("x", n) for n in (1, 2, -3, 4, 5)), return_exceptions=True)
    assert isinstance(results[2], asyncpg.CheckViolationError)
    assert [r["value"] for i, r in enumerate(results) if i != 2] == [1, 2, 4, 5]
    assert [r["value"] for r in await pool.fetch("SELECT value FROM items ORDER BY id")] == [1, 2, 4, 5]


async def test_a_batch_whose_connection_dies_fails_its_callers_and_the_next_batch_is_stored(pool, db):
    batcher = StatementBatcher(db, INSERT)
    blocked = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    async with asyncio.timeout(30), pool.acquire() as holder:
        async with holder.transaction():
            await holder.execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")  # the first batch waits here
            first = asyncio.ensure_future(batcher.fetchrow("x", 1))
            while not (pid := await holder.fetchval(blocked)):
                await asyncio.sleep(0.01)
            later = [asyncio.ensure_future(batcher.fetchrow("x", n)) for n in range(2, 6)]  # the next batch
            await holder.execute("SELECT pg_terminate_backend($1)", pid)
        with pytest.raises((asyncpg.PostgresConnectionError, asyncpg.InterfaceError, ConnectionError)):
            await first
        assert [r["value"] for r in await asyncio.gather(*later)] == [2, 3, 4, 5]
    assert [r["value"] for r in await pool.fetch("SELECT value FROM items ORDER BY id")] == [2, 3, 4, 5]
