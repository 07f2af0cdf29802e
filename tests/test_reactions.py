"""Customers' reactions to the bot's replies are kept as feedback on that reply (through the sandbox,
WAHA and the Cloud API), shown in the thread, never answered; a 👎 sends the question to the knowledge gaps."""

from __future__ import annotations

import asyncio
import copy
import json
import time

import pytest

from backend.services.feedback import sentiment_of
from tests.conftest import login, make_settings
from tests.fakes.graph_api import FakeGraphApi, fake_graph_api, message_webhook  # noqa: F401
from tests.fakes.ollama import fake_ollama  # noqa: F401 - fixture
from tests.fakes.waha import backend_with_gateway, load_fixture, running_fake_waha
from tests.job_support import jobs_settled
from tests.sandbox_chat import POLICY, make_sandbox, outbox, write

SENDER = "+15550007"


@pytest.fixture
def settings(database_url, tmp_path, fake_ollama):  # noqa: F811
    return make_settings(database_url, tmp_path / "data", **fake_ollama.backend_settings())


async def first_reply(api, channel_id: int, timeout: float = 30.0) -> dict:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not (items := await outbox(api, channel_id)):
        assert time.monotonic() < deadline, "no reply"
        await asyncio.sleep(0.05)
    return items[0]


async def thread(api) -> list[dict]:
    [contact] = (await api.get("/api/contacts")).json()["items"]
    return (await api.get(f"/api/contacts/{contact['id']}/messages")).json()["items"]


async def react(api, channel_id: int, message_id: str, emoji: str) -> str:
    response = await api.post(
        f"/api/channels/{channel_id}/sandbox/reactions", json={"from": SENDER, "message_id": message_id, "emoji": emoji}
    )
    assert response.status_code == 200, response.text
    return response.json()["outcome"]


def test_thumbs_up_and_hearts_are_positive_thumbs_down_negative_and_others_just_kept():
    assert [sentiment_of(e) for e in ("👍", "👍🏽", "❤️", "❤", "👎", "👎🏿", "😂")] == [
        "positive", "positive", "positive", "positive", "negative", "negative", None,
    ]  # fmt: skip


async def test_a_reaction_is_kept_on_the_reply_replaced_taken_back_and_never_answered(api, backend):
    _, channel_id = await make_sandbox(api)
    assert await write(api, channel_id, "When do you open?", sender=SENDER) == "stored"
    reply = await first_reply(api, channel_id)
    assert await react(api, channel_id, reply["provider_message_id"], "😂") == "reaction"
    assert await react(api, channel_id, reply["provider_message_id"], "👍") == "reaction"  # WhatsApp keeps the latest
    await jobs_settled(backend.app.ctx.db)
    assert len(await outbox(api, channel_id)) == 1  # never answered
    out = [m for m in await thread(api) if m["direction"] == "out"][0]
    assert out["reactions"] == [{"emoji": "👍", "sentiment": "positive"}]
    assert await react(api, channel_id, reply["provider_message_id"], "") == "reaction"
    out = [m for m in await thread(api) if m["direction"] == "out"][0]
    assert out["reactions"] == []


async def test_a_thumbs_down_sends_the_question_to_the_knowledge_gaps(api, backend):
    assistant_id, channel_id = await make_sandbox(api)
    assert await write(api, channel_id, "Do you deliver on Sundays?", sender=SENDER) == "stored"
    reply = await first_reply(api, channel_id)
    before = (await api.get(f"/api/assistants/{assistant_id}/gaps")).json()["items"]
    assert await react(api, channel_id, reply["provider_message_id"], "👎") == "reaction"
    after = (await api.get(f"/api/assistants/{assistant_id}/gaps")).json()["items"]
    assert "Do you deliver on Sundays?" in [gap["question"] for gap in after]
    assert len(after) == len(before) + (0 if "Do you deliver on Sundays?" in [g["question"] for g in before] else 1)


async def test_a_reaction_to_something_not_ours_is_ignored(api):
    _, channel_id = await make_sandbox(api)
    assert await write(api, channel_id, "Hi", sender=SENDER, message_id="customer-1") == "stored"
    assert await react(api, channel_id, "customer-1", "👍") == "ignored:reaction_to_unknown"


async def test_waha_reactions_attach_to_the_reply(database_url, tmp_path, fake_ollama):  # noqa: F811
    async with running_fake_waha("test-waha-key") as fake, backend_with_gateway(
        database_url, tmp_path, gateway_provider="waha", waha_url=fake.url, waha_api_key="test-waha-key",
        **fake_ollama.backend_settings(),
    ) as backend, backend.client(await login(backend)) as api:  # fmt: skip
        assistant = (await api.post("/api/assistants", json={"name": "Shop", "policies": POLICY})).json()["id"]
        await api.post("/api/channels", json={"assistant_id": assistant})
        assert await fake.scan("+15550100001") == [200]
        assert await fake.deliver_message("+15550109999", "Do you ship abroad?") == [200]
        deadline = time.monotonic() + 30
        while not fake.sent:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        [reply] = [m for m in await thread(api) if m["direction"] == "out"]
        assert await fake.deliver_reaction("+15550109999", reply["provider_message_id"], "❤️") == [200]
        [reply] = [m for m in await thread(api) if m["direction"] == "out"]
        assert reply["reactions"] == [{"emoji": "❤️", "sentiment": "positive"}]


async def test_cloud_api_reactions_from_the_real_payload_attach_to_the_reply(fake_graph_api, database_url, tmp_path, fake_ollama):  # noqa: F811
    number = "106540352242922"
    config = {
        "phone_number_id": number,
        "access_token": "EAAG-good-token",
        "app_secret": "app-secret-1234",
        "verify_token": "verify-me-please",
    }
    fake_graph_api.add_number(number, token=config["access_token"])
    async with backend_with_gateway(
        database_url, tmp_path, cloud_api_url=fake_graph_api.url, cloud_api_version=fake_graph_api.version,
        **fake_ollama.backend_settings(),
    ) as backend, backend.client(await login(backend)) as api:  # fmt: skip
        assistant = (await api.post("/api/assistants", json={"name": "Market", "policies": POLICY})).json()["id"]
        channel = (
            await api.post("/api/channels", json={"assistant_id": assistant, "provider": "cloud", "config": config})
        ).json()
        url = f"{backend.url}/webhooks/cloud/{channel['id']}"
        assert await fake_graph_api.post_webhook(url, message_webhook(number, "16505551234", "Hello"), config["app_secret"]) == [
            200
        ]
        deadline = time.monotonic() + 30
        while not fake_graph_api.sent:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        [reply] = [m for m in await thread(api) if m["direction"] == "out"]
        body = copy.deepcopy(load_fixture("cloud", "webhook.messages.reaction.json"))
        body["entry"][0]["changes"][0]["value"]["messages"][0]["reaction"]["message_id"] = reply["provider_message_id"]
        assert await fake_graph_api.post_webhook(url, json.dumps(body).encode(), config["app_secret"]) == [200]
        [reply] = [m for m in await thread(api) if m["direction"] == "out"]
        assert reply["reactions"] == [{"emoji": "👍", "sentiment": "positive"}]
        assert len(fake_graph_api.sent) == 1


async def test_stats_count_each_days_outcomes_and_reactions(api, backend):
    _, channel_id = await make_sandbox(api)
    assert await write(api, channel_id, "When do you open?", sender=SENDER) == "stored"
    first = await first_reply(api, channel_id)
    assert await write(api, channel_id, "I want to talk to a person", sender=SENDER) == "stored"
    deadline = time.monotonic() + 30
    while len(items := await outbox(api, channel_id)) < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await react(api, channel_id, first["provider_message_id"], "👍")
    await react(api, channel_id, items[1]["provider_message_id"], "👎")
    [today] = (await api.get("/api/stats")).json()["per_day"]
    assert {k: today[k] for k in ("inbound", "conversations", "answered_by_bot", "handed_to_person", "fallback")} == {
        "inbound": 2, "conversations": 1, "answered_by_bot": 2, "handed_to_person": 1, "fallback": 1,
    }  # fmt: skip
    assert (today["thumbs_up"], today["thumbs_down"], today["failed_sends"], today["ungrounded_replaced"]) == (1, 1, 0, 0)
    assert today["median_latency_ms"] is not None and today["p90_latency_ms"] >= today["median_latency_ms"]
