"""Connecting through Evolution API, end to end: the backend drives a fake Evolution over HTTP
and takes its webhooks (HS256 JWT, or a secret header with EVOLUTION_WEBHOOK_AUTH=header)."""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest

from backend.errors import GatewayError
from backend.gateways.evolution import EVENTS, SECRET_HEADER
from backend.services.channels import channel_ref, get_channel
from backend.workers.reconcile import reconcile_once
from tests.channel_support import connect_channel, db_rows, new_assistant
from tests.conftest import login
from tests.fakes.evolution import FakeEvolution, fake_evolution  # noqa: F401
from tests.fakes.waha import backend_with_gateway


async def _stack(fake: FakeEvolution, database_url, tmp_path, **overrides):
    async with backend_with_gateway(
        database_url,
        tmp_path,
        gateway_provider="evolution",
        evolution_url=fake.url,
        evolution_api_key="test-evolution-key",
        **overrides,
    ) as backend:
        async with backend.client(await login(backend)) as api:
            yield api, backend, fake


@pytest.fixture
async def stack(fake_evolution: FakeEvolution, database_url, tmp_path):  # noqa: F811
    async for parts in _stack(fake_evolution, database_url, tmp_path):
        yield parts


@pytest.fixture
async def header_stack(fake_evolution: FakeEvolution, database_url, tmp_path):  # noqa: F811
    """Evolution before 2.3, which sends no JWT: the static secret header."""
    async for parts in _stack(fake_evolution, database_url, tmp_path, evolution_webhook_auth="header"):
        yield parts


async def test_whole_lifecycle_connect_scan_receive_logout_reconnect(stack):
    api, backend, fake = stack
    channel = await connect_channel(api, await new_assistant(api))
    cid = channel["id"]
    instance = fake.instance()
    assert channel["provider"] == "evolution" and channel["status"] == "pending_qr"
    assert channel["qr"] == instance["code"]
    webhook = instance["webhook"]
    assert webhook["url"] == f"{backend.url}/webhooks/evolution/{cid}" and webhook["events"] == EVENTS
    # Only the JWT key: the secret itself never travels with a webhook.
    assert list(webhook["headers"]) == ["jwt_key"] and webhook["headers"]["jwt_key"] not in str(channel)
    await fake.idle()

    assert await fake.scan("+5511987654321") == [200]
    ready = (await api.get(f"/api/channels/{cid}")).json()
    assert ready["status"] == "ready" and ready["phone_number"] == "+5511987654321"

    statuses = await fake.deliver_message("+5511911112222", "Qual o horário?", "3EB0AAA1", times=3)
    assert statuses == [200, 200, 200]
    stored = await db_rows(backend, "SELECT text FROM messages WHERE channel_id = $1", cid)
    assert stored == [{"text": "Qual o horário?"}]
    contact = await db_rows(backend, "SELECT chat_id, phone_number, name FROM contacts WHERE channel_id = $1", cid)
    assert contact == [{"chat_id": "5511911112222@s.whatsapp.net", "phone_number": "+5511911112222", "name": "Customer"}]

    out = (await api.post(f"/api/channels/{cid}/logout")).json()
    assert out["status"] == "disconnected" and out["detail"] == "logged_out"
    await fake.idle()
    assert (await api.get(f"/api/channels/{cid}")).json()["detail"] == "logged_out"

    again = (await api.post(f"/api/channels/{cid}/reconnect")).json()
    assert again["status"] == "pending_qr" and again["qr"] == fake.instance()["code"]
    await fake.idle()
    await fake.scan("+5511987654321")
    assert (await api.get(f"/api/channels/{cid}")).json()["status"] == "ready"


def _token(key: str, *, age: int = 0) -> str:
    issued = int(time.time()) - age
    return jwt.encode({"iat": issued, "exp": issued + 600, "app": "evolution", "action": "webhook"}, key, "HS256")


async def test_webhooks_need_a_current_jwt_signed_with_the_channel_secret(stack):
    api, backend, fake = stack
    channel = await connect_channel(api, await new_assistant(api))
    await fake.idle()
    await fake.scan("+5511987654321")
    assert await fake.deliver_message("+5511911112222", "forged", secret="a-guessed-secret-that-is-long-enough-for-hs256") == [
        401
    ]
    assert await fake.deliver_message("+5511911112222", "signed by jwt", "3EB0JWT1") == [200]
    secret = fake.instance()["webhook"]["headers"]["jwt_key"]
    url = f"/webhooks/evolution/{channel['id']}"
    event = {"event": "messages.upsert", "data": fake.message_data("+5511911112222", "sneaked in")}
    async with backend.client() as client:
        bare = await client.post(url, json=event)
        # The secret itself as a static header is a bearer anyone who saw one request could reuse: not accepted.
        static = await client.post(url, json=event, headers={SECRET_HEADER: secret})
        expired = await client.post(url, json=event, headers={"Authorization": f"Bearer {_token(secret, age=700)}"})
        garbage = await client.post(url, content=b"{oops", headers={"Authorization": f"Bearer {_token(secret)}"})
    assert bare.status_code == static.status_code == expired.status_code == 401
    assert garbage.status_code == 400 and garbage.json()["error"]["code"] == "malformed_webhook"
    assert [r["text"] for r in await db_rows(backend, "SELECT text FROM messages")] == ["signed by jwt"]


async def test_older_evolution_authenticates_with_the_secret_header(header_stack):
    api, backend, fake = header_stack
    channel = await connect_channel(api, await new_assistant(api))
    assert list(fake.instance()["webhook"]["headers"]) == [SECRET_HEADER]
    await fake.idle()
    assert await fake.scan("+5511987654321") == [200]
    assert await fake.deliver_message("+5511911112222", "by the secret header", "3EB0HDR1") == [200]
    assert await fake.deliver_message("+5511911112222", "forged", secret="a-guessed-secret-that-is-long-enough") == [401]
    secret = fake.instance()["webhook"]["headers"][SECRET_HEADER]
    async with backend.client() as client:
        jwt_only = await client.post(
            f"/webhooks/evolution/{channel['id']}",
            json={"event": "messages.upsert", "data": fake.message_data("+5511911112222", "jwt")},
            headers={"Authorization": f"Bearer {_token(secret)}"},
        )
    assert jwt_only.status_code == 401
    assert [r["text"] for r in await db_rows(backend, "SELECT text FROM messages")] == ["by the secret header"]


async def test_a_replayed_open_event_does_not_revive_a_logged_out_number(stack):
    api, backend, fake = stack
    channel = await connect_channel(api, await new_assistant(api))
    await fake.idle()
    assert await fake.scan("+5511987654321") == [200]
    captured = fake.deliveries[-1]  # connection.update open, with its JWT (valid for 10 minutes)
    await asyncio.sleep(1.2)  # the JWT's iat has whole seconds
    assert (await api.post(f"/api/channels/{channel['id']}/logout")).json()["detail"] == "logged_out"
    status, answer = await fake.replay(captured)
    assert status == 200 and answer["outcomes"] == ["ignored:stale"]
    still = (await api.get(f"/api/channels/{channel['id']}")).json()
    assert still["status"] == "disconnected" and still["detail"] == "logged_out"
    assert await db_rows(backend, "SELECT * FROM assistant_phone_numbers") == []


async def test_a_number_linked_to_another_assistant_is_refused(stack):
    api, backend, fake = stack
    await connect_channel(api, await new_assistant(api, "Bakery"))
    await fake.idle()
    await fake.scan("+5511987654321", instance=list(fake.instances)[0])
    second = await connect_channel(api, await new_assistant(api, "Florist"))
    await fake.idle()
    await fake.scan("+5511987654321", instance=list(fake.instances)[1])
    refused = (await api.get(f"/api/channels/{second['id']}")).json()
    assert refused["detail"] == "number_conflict" and "Bakery" in refused["last_error"]


async def test_qr_limit_reached_shows_expired_and_reconnect_starts_over(stack):
    api, backend, fake = stack
    channel = await connect_channel(api, await new_assistant(api))
    await fake.idle()
    assert await fake.expire_qr() == [200, 200]
    expired = (await api.get(f"/api/channels/{channel['id']}")).json()
    assert expired["status"] == "disconnected" and expired["detail"] == "qr_expired" and expired["qr"] is None
    again = (await api.post(f"/api/channels/{channel['id']}/reconnect")).json()
    assert again["status"] == "pending_qr" and again["qr"]


async def test_gateway_down_during_connect_and_send(stack):
    api, backend, fake = stack
    assistant = await new_assistant(api)
    fake.fail_status = 500
    failed = await connect_channel(api, assistant)
    assert failed["status"] == "disconnected" and "Evolution API answered 500" in failed["last_error"]
    fake.fail_status = None
    assert (await api.post(f"/api/channels/{failed['id']}/reconnect")).json()["status"] == "pending_qr"
    await fake.idle()
    await fake.scan("+5511987654321")

    rt = backend.app.ctx.runtime
    ref = channel_ref(await get_channel(rt.db, failed["id"]))
    fake.fail_status = 502
    with pytest.raises(GatewayError, match="502"):
        await rt.gateway("evolution").send_text(ref, "5511911112222@s.whatsapp.net", "hello")
    assert fake.sent == []


async def test_sending_speaks_the_evolution_api(stack):
    api, backend, fake = stack
    channel = await connect_channel(api, await new_assistant(api))
    await fake.idle()
    await fake.scan("+5511987654321")
    rt = backend.app.ctx.runtime
    ref = channel_ref(await get_channel(rt.db, channel["id"]))
    gateway = rt.gateway("evolution")
    jid = "5511911112222@s.whatsapp.net"
    await gateway.mark_seen(ref, jid, ["3EB0AAA1"])
    await gateway.set_typing(ref, jid, True)
    sent = await gateway.send_text(ref, jid, "Das 9h às 18h.")
    assert fake.sent == [{"number": jid, "text": "Das 9h às 18h.", "instance": ref.session_name}]
    assert sent.provider_message_id.startswith("BAE5")
    assert fake.calls[0] == ("mark_read", {"readMessages": [{"remoteJid": jid, "fromMe": False, "id": "3EB0AAA1"}]})
    assert fake.calls[1][0] == "send_presence" and fake.calls[1][1]["presence"] == "composing"
    assert await gateway.find_recent_outgoing(ref, jid, "Das 9h às 18h.") == sent.provider_message_id
    assert await gateway.find_recent_outgoing(ref, jid, "other") is None


async def test_a_missed_webhook_is_healed_by_reconciliation(stack):
    api, backend, fake = stack
    channel = await connect_channel(api, await new_assistant(api))
    await fake.idle()
    fake.drop_webhooks = True
    await fake.scan("+5511987654321")
    assert (await api.get("/api/channels")).json()["items"][0]["status"] == "pending_qr"
    assert await reconcile_once(backend.app.ctx.runtime) == 1
    healed = (await api.get(f"/api/channels/{channel['id']}")).json()
    assert healed["status"] == "ready" and healed["phone_number"] == "+5511987654321"


async def test_deleting_a_channel_removes_the_instance_and_frees_the_number(stack):
    api, backend, fake = stack
    channel = await connect_channel(api, await new_assistant(api))
    await fake.idle()
    await fake.scan("+5511987654321")
    assert (await api.delete(f"/api/channels/{channel['id']}")).status_code == 204
    assert fake.instances == {}
    assert await db_rows(backend, "SELECT * FROM assistant_phone_numbers") == []
    assert (await api.get(f"/api/channels/{channel['id']}")).status_code == 404
