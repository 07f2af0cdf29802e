"""The "Needs a person" inbox (GET /api/inbox) and its numbers in GET /api/stats, driven through
the sandbox gateway: who waits for a person, why, since when, and what ends the wait."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.conftest import login, make_settings
from tests.e2e_support import eventually
from tests.fakes.waha import backend_with_gateway, fake_waha  # noqa: F401 - fixture
from tests.sandbox_chat import POLICY, make_sandbox, outbox, write


@pytest.fixture
def settings(database_url, tmp_path):
    # A reply the gateway refuses is given up at once (the failed-send case), not after minutes of retries.
    return make_settings(database_url, tmp_path / "data", job_max_attempts=1)


async def inbox(api, **params) -> dict:
    response = await api.get("/api/inbox", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def stats(api, **params) -> dict:
    response = await api.get("/api/stats", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def thread(api, contact_id: int) -> list[dict]:
    return (await api.get(f"/api/contacts/{contact_id}/messages")).json()["items"]


async def waiting(api, count: int = 1, *, reason: str | None = None, **params) -> list[dict]:
    """The inbox once it lists `count` threads (the first waiting for `reason`, when given)."""

    async def probe():
        items = (await inbox(api, **params))["items"]
        return items if len(items) == count and (reason is None or items[0]["reason"] == reason) else None

    return await eventually(probe, within=20, what=f"{count} thread(s) in the inbox")


async def settled(api, channel_id: int, count: int) -> list[dict]:
    """The sandbox outbox once the bot has sent `count` messages."""

    async def probe():
        sent = await outbox(api, channel_id)
        return sent if len(sent) >= count else None

    return await eventually(probe, within=20, what=f"{count} message(s) sent")


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_a_customer_asking_for_a_person_waits_in_the_inbox_until_an_operator_replies(api):
    assistant_id, channel_id = await make_sandbox(api)
    assert await write(api, channel_id, "I want a real person", sender="+15550101") == "stored"
    [item] = await waiting(api)
    await settled(api, channel_id, 1)  # the handoff confirmation

    contact = item["contact"]
    assert contact["phone_number"] == "+15550101" and contact["owner"] == "human" and contact["paused_by"] == "customer"
    assert item["reason"] == "handoff" and item["reasons"] == ["handoff"]
    request = (await thread(api, contact["id"]))[0]
    assert request["text"] == "I want a real person"
    assert at(item["waiting_since"]) == at(request["created_at"]) and item["waited_seconds"] >= 0
    numbers = await stats(api)
    assert numbers["waiting_for_person"] == 1
    assert numbers["waiting_by_reason"] == {"handoff": 1, "failed_send": 0, "fallback": 0}
    assert numbers["longest_wait_seconds"] is not None and numbers["longest_wait_seconds"] >= 0
    assert (await inbox(api, assistant_id=assistant_id))["total"] == 1

    # While paused, more messages from the customer do not restart the clock.
    assert await write(api, channel_id, "Hello? Anyone?", sender="+15550101") == "ignored:paused"
    assert (await inbox(api))["items"][0]["waiting_since"] == item["waiting_since"]

    reply = await api.post(f"/api/contacts/{contact['id']}/reply", json={"text": "Hi, Sam here. How can I help?"})
    assert reply.status_code == 201, reply.text
    assert await inbox(api) == {"items": [], "total": 0, "by_reason": {"handoff": 0, "failed_send": 0, "fallback": 0},
                                "limit": 50, "offset": 0}  # fmt: skip
    numbers = await stats(api)
    assert numbers["waiting_for_person"] == 0 and numbers["longest_wait_seconds"] is None

    # Asking again later puts the thread back, waiting since the new request.
    await api.post(f"/api/contacts/{contact['id']}/resume")
    assert await write(api, channel_id, "Can I talk to a person again?", sender="+15550101") == "stored"
    [again] = await waiting(api)
    assert again["reason"] == "handoff" and at(again["waiting_since"]) > at(item["waiting_since"])


async def test_a_fallback_answer_waits_for_a_person_until_an_operator_hands_it_back(api):
    # No documents: the bot can only answer with its fallback, which promises a person's follow-up.
    assistant_id, channel_id = await make_sandbox(api)
    assert await write(api, channel_id, "Do you repair bicycles?", sender="+15550202") == "stored"
    [reply] = await settled(api, channel_id, 1)
    assert reply["text"].startswith("Sorry, I don't know that yet.")
    [item] = await waiting(api)

    assert item["reason"] == "fallback" and item["contact"]["owner"] == "bot"
    messages = await thread(api, item["contact"]["id"])
    assert [m["direction"] for m in messages] == ["in", "out"] and messages[1]["trace"]["used_fallback"] is True
    assert at(item["waiting_since"]) == at(messages[0]["created_at"])  # since the customer asked, not since the reply
    assert (await stats(api, assistant_id=assistant_id))["waiting_by_reason"]["fallback"] == 1

    # Another assistant's inbox does not show it.
    other_id, _ = await make_sandbox(api)
    assert (await inbox(api, assistant_id=other_id))["total"] == 0
    assert (await stats(api, assistant_id=other_id))["waiting_for_person"] == 0

    # Resuming the bot is a person dealing with the thread: it leaves the inbox.
    resumed = await api.post(f"/api/contacts/{item['contact']['id']}/resume")
    assert resumed.status_code == 200, resumed.text
    assert (await inbox(api))["total"] == 0


async def test_a_reply_that_could_not_be_sent_waits_for_a_person(api):
    # The burst window leaves time to unplug the phone before the reply goes out.
    _, channel_id = await make_sandbox(api, burst_window_seconds=1.5)
    assert await write(api, channel_id, "Is my order ready?", sender="+15550303") == "stored"
    assert (await api.post(f"/api/channels/{channel_id}/logout")).status_code == 200
    # Stored, the reply is a fallback answer already; then the gateway refuses it.
    [item] = await waiting(api, reason="failed_send")

    assert item["reasons"] == ["failed_send"]
    messages = await thread(api, item["contact"]["id"])
    assert messages[-1]["status"] == "failed" and messages[-1]["error"]
    assert at(item["waiting_since"]) == at(messages[0]["created_at"])
    assert not await outbox(api, channel_id)
    assert (await stats(api))["waiting_by_reason"] == {"handoff": 0, "failed_send": 1, "fallback": 0}


async def test_the_inbox_lists_the_longest_waiting_first_with_stats_that_match(api):
    _, channel_id = await make_sandbox(api)
    assert await write(api, channel_id, "I need a person please", sender="+15550401") == "stored"
    await waiting(api, 1)
    assert await write(api, channel_id, "What colour is the sky on Mars?", sender="+15550402") == "stored"
    items = await waiting(api, 2)
    assert [i["contact"]["phone_number"] for i in items] == ["+15550401", "+15550402"]
    assert [i["reason"] for i in items] == ["handoff", "fallback"]
    assert items[0]["waited_seconds"] >= items[1]["waited_seconds"]

    page = await inbox(api, limit=1, offset=1)
    assert page["total"] == 2 and [i["contact"]["phone_number"] for i in page["items"]] == ["+15550402"]
    numbers = await stats(api)
    assert numbers["waiting_for_person"] == 2
    assert numbers["waiting_by_reason"] == {"handoff": 1, "failed_send": 0, "fallback": 1}
    assert numbers["longest_wait_seconds"] >= items[0]["waited_seconds"]

    # A customer who opts out is not chased.
    assert await write(api, channel_id, "STOP", sender="+15550402") == "stored"
    await waiting(api, 1)


async def test_a_bad_inbox_query_is_a_clear_error(api):
    response = await api.get("/api/inbox", params={"limit": 0})
    assert response.status_code == 400 and response.json()["error"]["code"]
    response = await api.get("/api/inbox", params={"colour": "red"})
    assert response.status_code == 400


async def test_the_owner_answering_from_the_phone_ends_the_wait(database_url, tmp_path, fake_waha):  # noqa: F811
    async with backend_with_gateway(
        database_url, tmp_path / "data", gateway_provider="waha", waha_url=fake_waha.url, waha_api_key="test-waha-key"
    ) as backend:
        async with backend.client(await login(backend)) as api:
            assistant = await api.post("/api/assistants", json={"name": "Shop", "policies": POLICY})
            channel = await api.post("/api/channels", json={"assistant_id": assistant.json()["id"], "provider": "waha"})
            assert channel.status_code == 201, channel.text
            await fake_waha.idle()
            assert await fake_waha.scan("+15550100001") == [200]
            assert await fake_waha.deliver_message("+15550505", "Let me speak to a person") == [200]
            [item] = await waiting(api)
            assert item["reason"] == "handoff"

            owner = fake_waha.message_payload("+15550505", "Hi, it's Alex from the shop.", from_me=True)
            assert await fake_waha.send_webhook(fake_waha.session(), "message", owner) == [200]
            assert (await inbox(api))["total"] == 0
