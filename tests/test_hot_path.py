"""The message hot path stays exact while it got fast: a policy change applies to the next
webhook, delayed replies run on time, statements bind every value type, and a quick answer goes
out without a typing flash."""

from __future__ import annotations

import asyncio
import decimal
import time
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
import pytest

from backend.database import execute, fetchrow, fetchval, make_database
from tests.conftest import login, make_settings
from tests.fakes.ollama import fake_ollama  # noqa: F401 - fixture
from tests.fakes.waha import FakeWaha, backend_with_gateway
from tests.sandbox_chat import POLICY, make_sandbox, outbox, write


@pytest.fixture
def settings(database_url, tmp_path, fake_ollama):  # noqa: F811
    """An instant fake Ollama; the workers' safety poll far slower than any reply should take."""
    return make_settings(database_url, tmp_path / "data", job_poll_seconds=5.0, **fake_ollama.backend_settings())


async def wait_for_replies(api, channel_id: int, count: int, timeout: float = 20.0) -> list[dict]:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while len(items := await outbox(api, channel_id)) < count:
        assert time.monotonic() < deadline, f"{len(items)} of {count} replies within {timeout}s"
        await asyncio.sleep(0.05)
    return items


async def test_a_policy_changed_between_two_webhooks_applies_to_the_second(api):
    assistant_id, channel_id = await make_sandbox(api, handoff_words=["never-said"])
    assert await write(api, channel_id, "hello") == "stored"  # the channel is now cached by the webhook path
    changed = await api.patch(f"/api/assistants/{assistant_id}", json={"policies": {**POLICY, "handoff_words": ["human"]}})
    assert changed.status_code == 200, changed.text
    assert await write(api, channel_id, "I want a human") == "stored"
    # The handoff was taken with the new words: the bot is paused for this customer.
    assert await write(api, channel_id, "hello?") == "ignored:paused"


async def test_a_reply_held_for_the_burst_window_goes_out_when_it_ends_not_at_the_next_poll(api):
    _, channel_id = await make_sandbox(api, burst_window_seconds=1)
    started = time.monotonic()
    assert await write(api, channel_id, "Do you ship to Norway?") == "stored"
    await wait_for_replies(api, channel_id, 1)
    waited = time.monotonic() - started
    assert 0.9 <= waited < 4.0, waited  # the workers' safety poll is 5 s


@pytest.fixture
async def waha():
    fake = FakeWaha("test-waha-key")
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@asynccontextmanager
async def waha_stack(database_url, tmp_path, waha, fake_ollama):  # noqa: F811
    """The backend talking to the fake WAHA; one channel paired: (api, waha)."""
    async with backend_with_gateway(
        database_url,
        tmp_path,
        gateway_provider="waha",
        waha_url=waha.url,
        waha_api_key="test-waha-key",
        **fake_ollama.backend_settings(),
    ) as backend:
        async with backend.client(await login(backend)) as api:
            assistant = await api.post("/api/assistants", json={"name": "Shop", "policies": POLICY})
            channel = await api.post("/api/channels", json={"assistant_id": assistant.json()["id"]})
            assert channel.status_code == 201, channel.text
            await waha.idle()
            assert await waha.scan("+15550100001") == [200]
            yield api, assistant.json()["id"]


async def wait_for_sends(waha, count: int, timeout: float = 20.0) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while len(waha.sent) < count:
        assert time.monotonic() < deadline, f"{len(waha.sent)} of {count} sends within {timeout}s"
        await asyncio.sleep(0.05)


async def test_an_instant_answer_is_read_and_sent_without_flashing_typing(database_url, tmp_path, waha, fake_ollama):  # noqa: F811
    async with waha_stack(database_url, tmp_path, waha, fake_ollama):
        assert await waha.deliver_message("+15550109999", "What are your opening hours?") == [200]
        await wait_for_sends(waha, 1)
    operations = [operation for operation, _ in waha.calls]
    assert "send_seen" in operations and "start_typing" not in operations


async def test_a_slow_answer_shows_typing_before_it_is_sent(database_url, tmp_path, waha, fake_ollama):  # noqa: F811
    same = fake_ollama.vector("any text")
    fake_ollama.vector = lambda text: same  # the document is relevant: the (slow) model is asked
    async with waha_stack(database_url, tmp_path, waha, fake_ollama) as (api, assistant_id):
        upload = await api.post(
            f"/api/assistants/{assistant_id}/documents",
            files={"files": ("shipping.txt", b"Shipping. We ship to Norway within seven days.")},
        )
        assert upload.status_code == 201, upload.text
        deadline = time.monotonic() + 20
        while (await api.get(f"/api/assistants/{assistant_id}/documents")).json()["items"][0]["status"] != "ready":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        fake_ollama.chat_delay = 1.2
        assert await waha.deliver_message("+15550109999", "Do you ship to Norway?") == [200]
        await wait_for_sends(waha, 1)
    paths = [path for _, path in waha.requests]
    assert "/api/startTyping" in paths and paths.index("/api/startTyping") < paths.index("/api/sendText")


async def test_statements_run_on_the_transactions_connection_and_bind_every_value_type(database_url):
    db = make_database(database_url)
    await db.connect()
    try:
        values = (1.5, True, decimal.Decimal("2.25"), uuid.UUID("12345678-1234-5678-1234-567812345678"), None, [1, 2],
                  {"a": [1, "x"]}, "it's $1 in text", datetime(2024, 5, 1, 12, 30, tzinfo=UTC))  # fmt: skip
        sql = (
            "SELECT CAST($1 AS float8) AS f, CAST($2 AS boolean) AS b, CAST($3 AS numeric) AS d, CAST($4 AS uuid) AS u, "
            "CAST($5 AS text) AS n, CAST($6 AS int[]) AS l, CAST($7 AS jsonb) AS j, CAST($8 AS text) AS t, "
            "CAST($9 AS timestamptz) AS dt"
        )
        assert tuple((await fetchrow(db, sql, *values)).values()) == values
        async with db.transaction():
            await execute(db, "CREATE TEMP TABLE t (v int) ON COMMIT DROP")
            await execute(db, "INSERT INTO t VALUES ($1)", 3)
            assert await fetchval(db, "SELECT sum(v) FROM t") == 3
        with pytest.raises(asyncpg.UndefinedTableError):  # dropped at commit: the statements were in the transaction
            await fetchval(db, "SELECT sum(v) FROM t")
    finally:
        await db.disconnect()
