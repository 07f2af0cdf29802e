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

import pytest

from tests.conftest import login
from tests.e2e_support import eventually
from tests.fakes.ollama import FakeOllama, fake_ollama  # noqa: F401 - fixture
from tests.fakes.waha import FakeWaha, backend_with_gateway, fake_waha  # noqa: F401 - fixture
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
async def waha_stack(database_url: str, tmp_path, waha: FakeWaha, ollama: FakeOllama, **overrides) -> AsyncIterator:  # noqa: ANN001
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


async def stored_inbound(backend, provider_ids: list[str]) -> collections.Counter:  # noqa: ANN001
    rows = await backend.app.ctx.db.fetch_all(
        "SELECT provider_message_id FROM messages WHERE direction = 'in' AND provider_message_id = ANY(:ids)",
        {"ids": provider_ids},
    )
    return collections.Counter(row["provider_message_id"] for row in rows)


@pytest.fixture
def own_postgres(tmp_path):
    return OwnPostgres(tmp_path / "own")


async def test_database_restart_during_traffic_loses_no_acknowledged_message(own_postgres, tmp_path, fake_waha, fake_ollama):
    messages = [(customer(), f"wamid.OUTAGE{n:03d}") for n in range(24)]
    acknowledged: dict[str, list[int]] = {}

    # A job whose bookkeeping failed while the database was down is reclaimed after its lease: keep it short.
    stack = waha_stack(own_postgres.url, tmp_path, fake_waha, fake_ollama, job_poll_seconds=0.5, job_lease_seconds=5)
    async with stack as (backend, api, _):

        async def traffic() -> None:
            until = asyncio.get_running_loop().time() + 45
            for phone, message_id in messages:
                seen = await deliver_until_acknowledged(fake_waha, phone, f"Question {message_id}", message_id, until=until)
                acknowledged[message_id] = seen
                await asyncio.sleep(0.05)

        async def outage() -> None:
            await asyncio.sleep(0.6)
            await own_postgres.stop()
            await asyncio.sleep(2.0)
            await own_postgres.start()

        await asyncio.gather(traffic(), outage())

        acked_ids = [mid for mid, seen in acknowledged.items() if seen and seen[-1] == 200]
        refused = [status for seen in acknowledged.values() for status in seen if status != 200]
        assert len(acked_ids) == len(messages), acknowledged
        assert refused, "the outage should have refused some deliveries (else it did not happen during traffic)"
        assert all(status in (-1, 503) for status in refused), f"statuses during the outage: {collections.Counter(refused)}"

        async def all_answered() -> bool:
            return len(sends_per_chat(fake_waha)) == len(messages)

        await eventually(all_answered, within=90, what="a reply to every acknowledged message")
        await asyncio.sleep(1.0)  # a duplicate send would show up by now
        assert await stored_inbound(backend, acked_ids) == collections.Counter(acked_ids)
        per_chat = sends_per_chat(fake_waha)
        assert set(per_chat) == {chat_of(phone) for phone, _ in messages}
        assert set(per_chat.values()) == {1}, per_chat


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
        await asyncio.sleep(1.5)  # at least one timed-out attempt and a retry scheduled
        fake_waha.hang = False

        await eventually(lambda: _sent_to(fake_waha, phone), within=30, what="the reply after the gateway recovered")
        await asyncio.sleep(1.0)
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
        assert not fake_waha.sent


async def test_a_hanging_ollama_still_answers_once_marked_degraded(database_url, tmp_path, fake_waha, fake_ollama):
    fake_ollama.chat_delay = 4.0
    # The real local embedder, so the passage is found by meaning, as in production.
    real_embedder = {"embedding_provider": "sentence-transformers", "embedding_model": "all-MiniLM-L6-v2"}
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
        await asyncio.sleep(1.0)
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
        await asyncio.sleep(1.5)  # duplicates would arrive by now
        ids = [message_id for _, message_id in customers]
        assert await stored_inbound(backend, ids) == collections.Counter(ids)
        assert sends_per_chat(fake_waha) == {chat_of(phone): 1 for phone, _ in customers}


async def _send_attempts(waha: FakeWaha) -> bool:
    return any(path == "/api/sendText" for _, path in waha.requests)


async def _sent_to(waha: FakeWaha, phone: str) -> list[dict]:
    return [body for body in waha.sent if body["chatId"] == chat_of(phone)]


async def _all_sent(waha: FakeWaha, count: int) -> bool:
    return len(sends_per_chat(waha)) >= count


async def _thread(api, phone: str) -> list[dict]:  # noqa: ANN001
    contacts = (await api.get("/api/contacts", params={"q": phone.lstrip("+")})).json()["items"]
    assert len(contacts) == 1, contacts
    return (await api.get(f"/api/contacts/{contacts[0]['id']}/messages")).json()["items"]
