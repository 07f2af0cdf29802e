"""The built-in sandbox gateway: pair without a phone, write as a customer, read the outbox."""

from __future__ import annotations

import asyncpg

from backend.gateways.sandbox import SandboxGateway
from backend.services.channels import channel_ref, get_channel
from tests.channel_support import connect_channel, new_assistant


async def test_sandbox_channel_shows_a_qr_then_becomes_ready_as_the_scanned_number(api):
    channel = await connect_channel(api, await new_assistant(api))
    assert channel["provider"] == "sandbox"
    assert channel["status"] == "pending_qr" and channel["detail"] == "scan_qr"
    assert channel["qr"].startswith("2@")
    assert "webhook_secret" not in channel and "session_name" not in channel

    scanned = await api.post(f"/api/channels/{channel['id']}/sandbox/scan", json={"phone_number": "+1 555-010-0001"})
    assert scanned.status_code == 200, scanned.text
    ready = scanned.json()
    assert ready["status"] == "ready" and ready["phone_number"] == "+15550100001"
    assert ready["qr"] is None and ready["connected_at"] and ready["last_event_at"]

    again = (await api.get(f"/api/channels/{channel['id']}")).json()
    assert again["status"] == "ready"


async def test_scan_without_a_number_uses_one_derived_from_the_channel(api):
    channel = await connect_channel(api, await new_assistant(api))
    scanned = await api.post(f"/api/channels/{channel['id']}/sandbox/scan")
    assert scanned.status_code == 200
    assert scanned.json()["phone_number"] == f"+1555{channel['id']:07d}"


async def test_sandbox_message_is_stored_once_even_when_delivered_twice(api, backend):
    channel = await connect_channel(api, await new_assistant(api))
    await api.post(f"/api/channels/{channel['id']}/sandbox/scan", json={})
    body = {"from": "+15550109999", "text": "What are your opening hours?", "id": "cust-1"}
    first = await api.post(f"/api/channels/{channel['id']}/sandbox/messages", json=body)
    second = await api.post(f"/api/channels/{channel['id']}/sandbox/messages", json=body)
    assert first.status_code == 200, first.text
    assert first.json() == {"channel_id": channel["id"], "provider_message_id": "cust-1", "outcome": "stored"}
    assert second.json()["outcome"] == "duplicate"

    conn = await asyncpg.connect(backend.app.ctx.settings.database_url)
    try:
        rows = await conn.fetch("SELECT text, direction FROM messages WHERE channel_id = $1", channel["id"])
        contact = await conn.fetchrow("SELECT chat_id, phone_number FROM contacts WHERE channel_id = $1", channel["id"])
    finally:
        await conn.close()
    assert [(r["text"], r["direction"]) for r in rows] == [("What are your opening hours?", "in")]
    assert contact["phone_number"] == "+15550109999"


async def test_messages_without_an_id_get_distinct_ids(api):
    channel = await connect_channel(api, await new_assistant(api))
    await api.post(f"/api/channels/{channel['id']}/sandbox/scan", json={})
    ids = set()
    for text in ("hi", "hello"):
        response = await api.post(f"/api/channels/{channel['id']}/sandbox/messages", json={"from": "+15550109999", "text": text})
        assert response.json()["outcome"] == "stored"
        ids.add(response.json()["provider_message_id"])
    assert len(ids) == 2


async def test_outbox_lists_what_the_gateway_was_asked_to_send(api, backend):
    channel = await connect_channel(api, await new_assistant(api))
    await api.post(f"/api/channels/{channel['id']}/sandbox/scan", json={})
    rt = backend.app.ctx.runtime
    row = await get_channel(rt.db, channel["id"])
    gateway = rt.gateway("sandbox")
    sent = await gateway.send_text(channel_ref(row), "+15550109999", "We open at 9.")
    assert sent.provider_message_id.startswith("sandbox-out-")
    assert await gateway.find_recent_outgoing(channel_ref(row), "+15550109999", "We open at 9.") == sent.provider_message_id

    outbox = (await api.get(f"/api/channels/{channel['id']}/sandbox/outbox")).json()
    assert outbox["total"] == 1
    assert outbox["items"][0]["chat_id"] == "+15550109999" and outbox["items"][0]["text"] == "We open at 9."


async def test_sandbox_refuses_messages_before_the_scan_and_bad_input(api):
    channel = await connect_channel(api, await new_assistant(api))
    url = f"/api/channels/{channel['id']}/sandbox"
    early = await api.post(f"{url}/messages", json={"from": "+15550109999", "text": "hi"})
    assert early.status_code == 409 and early.json()["error"]["code"] == "not_connected"
    await api.post(f"{url}/scan", json={})
    twice = await api.post(f"{url}/scan", json={})
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "no_qr"
    for body in ({"from": "not a phone", "text": "hi"}, {"from": "+15550109999"}, {"from": "+1555", "text": ""}, {"text": "x"}):
        bad = await api.post(f"{url}/messages", json=body)
        assert bad.status_code == 400, body
    assert (await api.post(f"{url}/scan", json={"phone_number": "abc"})).status_code == 400
    assert (await api.post("/api/channels/999999/sandbox/scan", json={})).status_code == 404
    assert (await api.get(f"{url}/outbox")).json()["total"] == 0


async def test_sandbox_logout_then_reconnect_pairs_again(api):
    channel = await connect_channel(api, await new_assistant(api))
    cid = channel["id"]
    await api.post(f"/api/channels/{cid}/sandbox/scan", json={"phone_number": "+15550100002"})
    out = await api.post(f"/api/channels/{cid}/logout")
    assert out.status_code == 200 and out.json()["status"] == "disconnected" and out.json()["detail"] == "logged_out"
    again = await api.post(f"/api/channels/{cid}/reconnect")
    assert again.json()["status"] == "pending_qr" and again.json()["qr"]
    assert again.json()["qr"] != channel["qr"]
    ready = await api.post(f"/api/channels/{cid}/sandbox/scan", json={"phone_number": "+15550100002"})
    assert ready.json()["status"] == "ready"


async def test_sandbox_webhook_needs_the_channel_secret(api, backend):
    channel = await connect_channel(api, await new_assistant(api))
    row = await get_channel(backend.app.ctx.runtime.db, channel["id"])
    body = SandboxGateway.webhook_body(channel_ref(row), "session.status", {"status": "working", "phone_number": "+15550100003"})
    async with backend.client() as client:
        wrong = await client.post(f"/webhooks/sandbox/{channel['id']}", content=body, headers={"x-sandbox-secret": "nope"})
        right = await client.post(
            f"/webhooks/sandbox/{channel['id']}", content=body, headers=SandboxGateway.webhook_headers(channel_ref(row))
        )
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "bad_signature"
    assert right.status_code == 200 and right.json() == {"received": 1, "outcomes": ["status:ready"]}


async def test_channel_api_refuses_bad_input_with_clear_errors(api, backend):
    missing = await api.post("/api/channels", json={"assistant_id": 999})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "assistant_not_found"
    for body in ({"assistant_id": 1, "provider": "telegram"}, {}, {"assistant_id": "one"}, {"assistant_id": 1, "x": 1}):
        bad = await api.post("/api/channels", json=body)
        assert bad.status_code == 400, body
    assert (await api.get("/api/channels/424242")).status_code == 404
    assert (await api.post("/api/channels/424242/reconnect")).status_code == 404
    assert (await api.post("/api/channels/424242/logout")).status_code == 404
    assert (await api.delete("/api/channels/424242")).status_code == 404
    assert (await api.get("/api/channels", params={"assistant_id": "x"})).status_code == 400
    async with backend.client() as anonymous:
        assert (await anonymous.get("/api/channels")).status_code == 401
    assert await api.get("/api/channels") and (await api.get("/api/channels")).json()["total"] == 0


async def test_channels_are_listed_per_assistant_and_deleted(api):
    first, second = await new_assistant(api, "A"), await new_assistant(api, "B")
    one = await connect_channel(api, first)
    await connect_channel(api, second)
    listing = (await api.get("/api/channels", params={"assistant_id": first})).json()
    assert listing["total"] == 1 and listing["items"][0]["id"] == one["id"]
    assert (await api.get("/api/channels")).json()["total"] == 2
    assert (await api.delete(f"/api/channels/{one['id']}")).status_code == 204
    assert (await api.get(f"/api/channels/{one['id']}")).status_code == 404


async def test_sandbox_routes_refuse_channels_of_other_providers(api, backend):
    assistant = await new_assistant(api)
    # A WAHA channel whose gateway is unreachable (nothing listens on the default WAHA_URL here).
    waha = (await api.post("/api/channels", json={"assistant_id": assistant, "provider": "waha"})).json()
    assert waha["status"] == "disconnected" and waha["detail"] == "gateway_error" and waha["last_error"]
    refused = await api.post(f"/api/channels/{waha['id']}/sandbox/scan", json={})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_sandbox"


async def test_the_openapi_document_describes_the_channel_routes(backend):
    async with backend.client() as client:
        spec = (await client.get("/openapi.json")).json()
    assert "/api/channels/{channel_id}/sandbox/messages" in spec["paths"]
    assert "/webhooks/{provider}/{channel_id}" in spec["paths"]
    assert "from" in spec["components"]["schemas"]["SandboxMessage"]["properties"]
