"""The reply pipeline against a real gateway protocol (fake WAHA) and real worker processes:
gateway failures, a worker killed mid-send, two workers sharing one PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web

from tests.conftest import login
from tests.e2e_support import eventually
from tests.fakes.ollama import fake_ollama  # noqa: F401 - fixture
from tests.fakes.waha import FakeWaha, backend_with_gateway
from tests.job_support import jobs_settled
from tests.sandbox_chat import POLICY

ROOT = Path(__file__).resolve().parent.parent
CUSTOMER = "+15550109999"
CHAT = "15550109999@c.us"


class HoldingWaha(FakeWaha):
    """A fake WAHA that, when told to, takes a sendText (WhatsApp has the message) and then
    holds the answer — the moment a worker can die without knowing whether it sent."""

    def __init__(self, api_key: str = "") -> None:
        super().__init__(api_key)
        self.hold_sends = False
        self.released = asyncio.Event()

    async def send_text(self, request: web.Request) -> web.Response:
        response = await super().send_text(request)
        if self.hold_sends:
            await self.released.wait()
        return response


@pytest.fixture
async def waha():
    fake = HoldingWaha("test-waha-key")
    await fake.start()
    try:
        yield fake
    finally:
        fake.released.set()
        await fake.stop()


def model_settings(fake_ollama) -> dict:  # noqa: F811
    fake_ollama.set_models(["llama3.2", "all-minilm"])
    return {"ollama_host": fake_ollama.url, "embedding_provider": "ollama", "embedding_model": "all-minilm"}


@pytest.fixture
def stack_factory(waha, fake_ollama, database_url, tmp_path):  # noqa: F811
    """Start the backend (workers in-process or not) talking to the fake WAHA."""

    def start(**overrides):
        return backend_with_gateway(
            database_url,
            tmp_path,
            gateway_provider="waha",
            waha_url=waha.url,
            waha_api_key="test-waha-key",
            **{**model_settings(fake_ollama), **overrides},
        )

    return start


async def connect_waha(api, fake: FakeWaha, **policies) -> int:
    assistant = await api.post("/api/assistants", json={"name": "Shop", "policies": {**POLICY, **policies}})
    channel = await api.post("/api/channels", json={"assistant_id": assistant.json()["id"]})
    assert channel.status_code == 201, channel.text
    await fake.idle()
    assert await fake.scan("+15550100001") == [200]
    return channel.json()["id"]


async def db_rows(url: str, sql: str, *args) -> list[dict]:
    conn = await asyncpg.connect(url)
    try:
        return [dict(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


async def replies(url: str) -> list[dict]:
    return await db_rows(
        url, "SELECT author, text, status, error, provider_message_id, attempts FROM messages WHERE direction = 'out' ORDER BY id"
    )


async def test_gateway_5xx_then_200_is_sent_after_retries(stack_factory, waha):
    async with stack_factory() as backend:
        url = backend.app.ctx.settings.database_url
        async with backend.client(await login(backend)) as api:
            await connect_waha(api, waha)
            waha.fail_status = 503
            assert await waha.deliver_message(CUSTOMER, "Do you ship abroad?") == [200]
            await eventually(lambda: _send_attempted(waha))
            waha.fail_status = None
            await eventually(lambda: _count_sent(waha, 1))
            sent = await eventually(lambda: _settled(url))
    assert len(waha.sent) == 1 and waha.sent[0]["chatId"] == CHAT
    assert sent[0]["status"] == "sent" and sent[0]["provider_message_id"] and sent[0]["attempts"] >= 2


async def _send_attempted(fake: FakeWaha) -> bool:
    return ("POST", "/api/sendText") in fake.requests


async def _count_sent(fake: FakeWaha, n: int) -> bool:
    return len(fake.sent) >= n


async def _settled(url: str) -> list[dict] | None:
    out = await replies(url)
    return out if out and all(m["status"] in ("sent", "failed") for m in out) else None


async def test_gateway_always_failing_marks_the_reply_failed_and_visible(stack_factory, waha):
    async with stack_factory(job_max_attempts=2) as backend:
        async with backend.client(await login(backend)) as api:
            channel_id = await connect_waha(api, waha)
            waha.fail_status = 500
            await waha.deliver_message(CUSTOMER, "Do you ship abroad?")

            async def failed_contacts():
                found = (await api.get("/api/contacts", params={"status": "failed"})).json()["items"]
                return found or None

            contact = (await eventually(failed_contacts))[0]
            thread = (await api.get(f"/api/contacts/{contact['id']}/messages")).json()["items"]
            stats = (await api.get("/api/stats")).json()
    assert waha.sent == []
    reply = thread[-1]
    assert reply["author"] == "bot" and reply["status"] == "failed" and "500" in reply["error"]
    assert contact["channel_id"] == channel_id and stats["failed"] == 1


def worker_env(settings, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key in ("PATH", "HOME", "LANG", "HF_HUB_OFFLINE", "TMPDIR", "VIRTUAL_ENV")
    }
    env.update(
        PYTHONPATH=str(ROOT),
        DATABASE_URL=settings.database_url,
        DATA_DIR=str(tmp_path / "worker-data"),
        SECRET_KEY=settings.secret_key.get_secret_value(),
        OLLAMA_HOST=settings.ollama_host,
        LLM_PROVIDER=settings.llm_provider,
        EMBEDDING_PROVIDER=settings.embedding_provider,
        EMBEDDING_MODEL=settings.embedding_model,
        WAHA_URL=settings.waha_url,
        WAHA_API_KEY=settings.waha_api_key.get_secret_value(),
        JOB_POLL_SECONDS="0.5",
        LOG_LEVEL="WARNING",
        **extra,
    )
    return env


def start_worker(env: dict[str, str], tmp_path: Path) -> subprocess.Popen:
    # cwd outside the repo so no developer .env is read.
    return subprocess.Popen(
        [sys.executable, "-m", "backend.worker"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / f"worker-{len(os.listdir(tmp_path))}.log", "w"),
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def test_worker_killed_while_the_gateway_holds_the_send_delivers_exactly_one_reply(stack_factory, waha, tmp_path):
    async with stack_factory(run_workers=False) as backend:
        settings = backend.app.ctx.settings
        env = worker_env(settings, tmp_path, JOB_LEASE_SECONDS="5", GATEWAY_TIMEOUT_SECONDS="60")
        async with backend.client(await login(backend)) as api:
            await connect_waha(api, waha)
            waha.hold_sends = True
            first = start_worker(env, tmp_path)
            try:
                await waha.deliver_message(CUSTOMER, "Do you ship abroad?")
                # WhatsApp has the message; the worker is still waiting for the gateway's answer.
                await eventually(lambda: _count_sent(waha, 1), within=60)
                assert [m["status"] for m in await replies(settings.database_url)] == ["sending"]
                first.send_signal(signal.SIGKILL)
                first.wait(timeout=10)
            finally:
                stop(first)
            waha.hold_sends = False
            waha.released.set()
            second = start_worker(env, tmp_path)
            try:
                sent = await eventually(lambda: _settled(settings.database_url), within=60)
            finally:
                stop(second)
    assert len(waha.sent) == 1, "the reply was sent twice"
    assert sent[0]["status"] == "sent" and sent[0]["provider_message_id"].startswith("true_")
    inbound = await db_rows(settings.database_url, "SELECT status FROM messages WHERE direction = 'in'")
    assert inbound == [{"status": "answered"}]


async def test_two_worker_processes_answer_500_messages_from_100_contacts_once_each_in_order(
    fake_ollama,  # noqa: F811
    database_url,
    tmp_path,
):
    contacts, per_contact = 100, 5
    async with backend_with_gateway(
        database_url, tmp_path, gateway_provider="sandbox", run_workers=False, **model_settings(fake_ollama)
    ) as backend:
        settings = backend.app.ctx.settings
        env = worker_env(settings, tmp_path, WORKER_CONCURRENCY="4")
        workers = [start_worker(env, tmp_path) for _ in range(2)]
        try:
            async with backend.client(await login(backend)) as api:
                assistant = await api.post(
                    "/api/assistants",
                    json={"name": "Shop", "policies": {**POLICY, "max_replies_per_contact_per_minute": 100}},
                )
                channel = await api.post("/api/channels", json={"assistant_id": assistant.json()["id"], "provider": "sandbox"})
                channel_id = channel.json()["id"]
                await api.post(f"/api/channels/{channel_id}/sandbox/scan", json={})

                async def customer(number: int) -> None:
                    for turn in range(per_contact):
                        body = {"from": f"+1555{number:07d}", "text": f"question {turn}", "id": f"c{number}-m{turn}"}
                        response = await api.post(f"/api/channels/{channel_id}/sandbox/messages", json=body)
                        assert response.json()["outcome"] == "stored", response.text

                await asyncio.gather(*(customer(n) for n in range(contacts)))
                await eventually(lambda: _all_answered(settings.database_url), within=120, interval=0.5)
                alive = [w.poll() is None for w in workers]
        finally:
            for worker in workers:
                stop(worker)
        url = settings.database_url
        inbound = await db_rows(url, "SELECT id, contact_id, status FROM messages WHERE direction = 'in' ORDER BY id")
        out = await db_rows(
            url,
            "SELECT contact_id, status, trace, provider_message_id FROM messages WHERE direction = 'out' ORDER BY sent_at, id",
        )
        outbox = await db_rows(url, "SELECT provider_message_id FROM sandbox_outbox")
    assert alive == [True, True]
    assert len(inbound) == contacts * per_contact and {m["status"] for m in inbound} == {"answered"}
    assert {m["status"] for m in out} == {"sent"}
    # Every sent reply is in the gateway's outbox once, and nothing else is.
    assert sorted(m["provider_message_id"] for m in out) == sorted(m["provider_message_id"] for m in outbox)
    answered: dict[int, list[int]] = {}
    for reply in out:
        answered.setdefault(reply["contact_id"], []).extend(json.loads(reply["trace"])["answered_message_ids"])
    for contact_id, ids in answered.items():
        expected = [m["id"] for m in inbound if m["contact_id"] == contact_id]
        assert ids == expected, f"contact {contact_id}: answered {ids}, expected {expected} once each in order"
    assert len(answered) == contacts


async def _all_answered(url: str) -> bool:
    waiting = await db_rows(
        url,
        "SELECT count(*) AS n FROM messages WHERE (direction = 'in' AND status = 'pending') "
        "OR (direction = 'out' AND status IN ('pending', 'sending'))",
    )
    total = await db_rows(url, "SELECT count(*) AS n FROM messages WHERE direction = 'in'")
    return waiting[0]["n"] == 0 and total[0]["n"] > 0


async def test_real_waha_payloads_groups_broadcasts_echoes_and_the_owners_phone(stack_factory, waha):
    async with stack_factory() as backend:
        url = backend.app.ctx.settings.database_url
        async with backend.client(await login(backend)) as api:
            await connect_waha(api, waha, media_reply="Please write your question in words.")
            session = waha.session()

            group = waha.message_payload("120363000000000001@g.us", "Who is in?")
            group["participant"] = "15550100002@c.us"
            status = waha.message_payload("status@broadcast", "My holiday photos")
            status["participant"] = "15550100003@c.us"
            echo = waha.message_payload("15550100004@c.us", "Sent by some API client", from_me=True)
            echo["source"] = "api"
            owner = waha.message_payload("15550100005@c.us", "Hi, it's Ana, I'll take this one", from_me=True)
            media = waha.message_payload("15550100006@c.us", "")
            media.update(hasMedia=True, media={"url": "http://127.0.0.1/x.jpg", "mimetype": "image/jpeg", "filename": None})
            for payload in (group, status, echo, owner, media):
                assert await waha.send_webhook(session, "message", payload) == [200]
            # The customer Ana took over from her phone writes again: the bot stays out of it.
            assert await waha.deliver_message("+15550100005", "great, thanks Ana") == [200]

            await eventually(lambda: _count_sent(waha, 1))
            await jobs_settled(backend.app.ctx.db)
            stored = await db_rows(url, "SELECT author, direction, status, reason FROM messages ORDER BY id")
            contacts = (await api.get("/api/contacts", params={"status": "paused"})).json()["items"]
    assert [m["text"] for m in waha.sent] == ["Please write your question in words."]
    # (The bot's reply and Ana's customer's second message may be stored in either order.)
    assert sorted(stored, key=str) == sorted(
        [
            {"author": "customer", "direction": "in", "status": "ignored", "reason": "group"},
            {"author": "customer", "direction": "in", "status": "ignored", "reason": "broadcast"},
            {"author": "owner", "direction": "out", "status": "sent", "reason": "owner_reply"},
            {"author": "customer", "direction": "in", "status": "answered", "reason": "media_without_text"},
            {"author": "customer", "direction": "in", "status": "ignored", "reason": "paused"},
            {"author": "bot", "direction": "out", "status": "sent", "reason": None},
        ],
        key=str,
    )
    assert [(c["chat_id"], c["owner"], c["paused_by"]) for c in contacts] == [("15550100005@c.us", "human", "owner")]
