"""The WhatsApp Cloud API, end to end: the backend connects with a token, answers Meta's webhook
check, takes its signed webhooks and replies through the Graph API (a fake of it on loopback)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.channel_support import db_rows
from tests.conftest import login
from tests.fakes.graph_api import FakeGraphApi, fake_graph_api, message_webhook, status_webhook  # noqa: F401
from tests.fakes.ollama import fake_ollama_server  # noqa: F401 - fixture
from tests.fakes.waha import backend_with_gateway
from tests.sandbox_chat import POLICY

NUMBER_ID = "106540352242922"
CONFIG = {
    "phone_number_id": NUMBER_ID,
    "access_token": "EAAG-good-token",
    "app_secret": "app-secret-1234",
    "verify_token": "verify-me-please",
}


@pytest.fixture
async def stack(fake_graph_api: FakeGraphApi, fake_ollama, database_url, tmp_path):  # noqa: F811
    fake_graph_api.add_number(NUMBER_ID, token=CONFIG["access_token"])
    async with backend_with_gateway(
        database_url, tmp_path, cloud_api_url=fake_graph_api.url, cloud_api_version=fake_graph_api.version,
        **fake_ollama.backend_settings(),
    ) as backend:  # fmt: skip
        token = await login(backend)
        async with backend.client(token) as api:
            yield api, backend, fake_graph_api


async def connect(api, config: dict = CONFIG) -> dict:
    assistant = (await api.post("/api/assistants", json={"name": "Market", "policies": POLICY})).json()["id"]
    response = await api.post("/api/channels", json={"assistant_id": assistant, "provider": "cloud", "config": config})
    assert response.status_code == 201, response.text
    return response.json()


async def wait_for(predicate, timeout: float = 20.0):  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not (result := await predicate()):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
    return result


async def idle(backend) -> bool:
    return not await db_rows(backend, "SELECT id FROM jobs WHERE status IN ('queued', 'running')")


async def test_a_cloud_number_is_ready_when_meta_accepts_the_token_and_its_secrets_are_never_shown(stack):
    api, backend, _ = stack
    channel = await connect(api)
    assert channel["status"] == "ready" and channel["phone_number"] == "+15550783881"
    assert channel["phone_number_id"] == NUMBER_ID
    assert channel["webhook_url"] == f"{backend.url}/webhooks/cloud/{channel['id']}"
    listed = (await api.get("/api/channels")).text + (await api.get(f"/api/channels/{channel['id']}")).text
    for secret in ("access_token", "app_secret", "verify_token"):
        assert CONFIG[secret] not in listed


async def test_a_token_meta_rejects_leaves_the_channel_disconnected_with_the_reason(stack):
    api, _, fake = stack
    fake.expire_token(CONFIG["access_token"])
    channel = await connect(api)
    assert channel["status"] == "disconnected" and channel["last_error"]
    assert CONFIG["access_token"] not in channel["last_error"]


async def test_bad_cloud_configs_are_refused_with_the_field(stack):
    api, *_ = stack
    assistant = (await api.post("/api/assistants", json={"name": "Market"})).json()["id"]
    missing = await api.post("/api/channels", json={"assistant_id": assistant, "provider": "cloud"})
    assert missing.status_code == 400 and missing.json()["error"]["details"][0]["field"] == "config"
    bad_id = await api.post(
        "/api/channels", json={"assistant_id": assistant, "provider": "cloud", "config": {**CONFIG, "phone_number_id": "x1"}}
    )
    assert bad_id.status_code == 400 and "phone_number_id" in bad_id.text
    elsewhere = await api.post("/api/channels", json={"assistant_id": assistant, "provider": "sandbox", "config": CONFIG})
    assert elsewhere.status_code == 400
    assert await db_rows(stack[1], "SELECT id FROM channels") == []


async def test_meta_verifies_the_callback_url_with_the_channels_verify_token(stack):
    api, backend, _ = stack
    channel = await connect(api)
    url = f"{backend.url}/webhooks/cloud/{channel['id']}"
    async with httpx.AsyncClient() as client:
        good = await client.get(
            url, params={"hub.mode": "subscribe", "hub.verify_token": CONFIG["verify_token"], "hub.challenge": "1158201444"}
        )
        wrong = await client.get(
            url, params={"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1158201444"}
        )
        unknown = await client.get(
            f"{backend.url}/webhooks/cloud/999999",
            params={"hub.mode": "subscribe", "hub.verify_token": CONFIG["verify_token"], "hub.challenge": "1"},
        )
    assert good.status_code == 200 and good.text == "1158201444"
    assert wrong.status_code == 403 and unknown.status_code == 403


async def test_a_message_delivered_twice_gets_one_reply_then_statuses_and_a_131047_failure_show_in_the_thread(stack):
    api, backend, fake = stack
    channel = await connect(api)
    url = f"{backend.url}/webhooks/cloud/{channel['id']}"
    body = message_webhook(NUMBER_ID, "16505551234", "When do you open?", user_id="US.13491208655302741918")
    assert await fake.post_webhook(url, body, CONFIG["app_secret"], times=2) == [200, 200]
    await wait_for(lambda: asyncio.sleep(0, result=len(fake.sent) >= 1))
    await wait_for(lambda: idle(backend))  # every job done: a second reply would be out
    assert len(fake.sent) == 1
    assert len(await db_rows(backend, "SELECT id FROM messages WHERE direction = 'in'")) == 1
    assert fake.sent[0].get("to") == "16505551234" or fake.sent[0].get("recipient") == "US.13491208655302741918"
    [contact] = (await api.get("/api/contacts")).json()["items"]
    assert contact["chat_id"] == "US.13491208655302741918" and contact["phone_number"] == "+16505551234"

    [reply] = await db_rows(backend, "SELECT provider_message_id FROM messages WHERE direction = 'out'")
    for status in ("delivered", "read"):
        assert await fake.post_webhook(
            url, status_webhook(NUMBER_ID, reply["provider_message_id"], status), CONFIG["app_secret"]
        ) == [200]
    thread = (await api.get(f"/api/contacts/{contact['id']}/messages")).json()["items"]
    assert thread[-1]["status"] == "read"

    # A later reply Meta refuses with 131047 (outside the 24-hour window): failed, with that reason.
    failed = status_webhook(NUMBER_ID, reply["provider_message_id"], "failed", error_code=131047)
    assert await fake.post_webhook(url, failed, CONFIG["app_secret"]) == [200]
    thread = (await api.get(f"/api/contacts/{contact['id']}/messages")).json()["items"]
    assert thread[-1]["status"] == "failed" and thread[-1]["reason"] == "window_closed" and "131047" in thread[-1]["error"]


async def test_a_reply_after_the_24_hour_window_is_not_attempted(stack):
    api, backend, fake = stack
    channel = await connect(api)
    url = f"{backend.url}/webhooks/cloud/{channel['id']}"
    assert await fake.post_webhook(url, message_webhook(NUMBER_ID, "16505551234", "Hello"), CONFIG["app_secret"]) == [200]
    await wait_for(lambda: asyncio.sleep(0, result=len(fake.sent) >= 1))
    [contact] = (await api.get("/api/contacts")).json()["items"]
    conn_rows = await db_rows(backend, "UPDATE contacts SET last_message_at = now() - interval '25 hours' RETURNING id")
    assert conn_rows
    answer = await api.post(f"/api/contacts/{contact['id']}/reply", json={"text": "Are you still there?"})
    assert answer.status_code >= 400
    assert len(fake.sent) == 1  # never attempted
    thread = (await api.get(f"/api/contacts/{contact['id']}/messages")).json()["items"]
    assert thread[-1]["author"] == "operator" and thread[-1]["status"] == "failed" and thread[-1]["reason"] == "window_closed"


async def test_a_rate_limited_send_is_retried_and_goes_out_once(stack):
    api, backend, fake = stack
    channel = await connect(api)
    fake.fail_next_send(130429)
    url = f"{backend.url}/webhooks/cloud/{channel['id']}"
    assert await fake.post_webhook(url, message_webhook(NUMBER_ID, "16505551234", "When do you open?"), CONFIG["app_secret"]) == [
        200
    ]
    await wait_for(lambda: asyncio.sleep(0, result=len(fake.sent) >= 1))
    rows = await wait_for(lambda: db_rows(backend, "SELECT status FROM messages WHERE direction = 'out' AND status = 'sent'"))
    assert len(rows) == 1 and len(fake.sent) == 1


async def test_cloud_webhooks_without_a_valid_signature_are_refused(stack):
    api, backend, _ = stack
    channel = await connect(api)
    url = f"{backend.url}/webhooks/cloud/{channel['id']}"
    body = message_webhook(NUMBER_ID, "16505551234", "hi")
    async with httpx.AsyncClient() as client:
        unsigned = await client.post(url, content=body)
        forged = await client.post(url, content=body, headers={"X-Hub-Signature-256": "sha256=" + "0" * 64})
    assert unsigned.status_code == 401 and forged.status_code == 401
    assert await db_rows(backend, "SELECT id FROM messages") == []
