"""Connecting through WAHA, end to end: the backend drives a fake WAHA over HTTP and takes its
signed webhooks."""

from __future__ import annotations

import pytest

from backend.errors import GatewayError
from backend.gateways.waha import EVENTS
from backend.services.channels import channel_ref, get_channel
from backend.workers.reconcile import reconcile_once
from tests.channel_support import connect_channel, db_rows, new_assistant
from tests.conftest import login
from tests.fakes.waha import FakeWaha, backend_with_gateway, fake_waha  # noqa: F401


@pytest.fixture
async def stack(fake_waha: FakeWaha, database_url, tmp_path):  # noqa: F811
    async with backend_with_gateway(
        database_url, tmp_path, gateway_provider="waha", waha_url=fake_waha.url, waha_api_key="test-waha-key"
    ) as backend:
        token = await login(backend)
        async with backend.client(token) as api:
            yield api, backend, fake_waha


async def test_whole_lifecycle_connect_scan_receive_logout_reconnect(stack):
    api, backend, fake = stack
    channel = await connect_channel(api, await new_assistant(api))
    cid = channel["id"]
    session = fake.session()
    assert channel["provider"] == "waha" and channel["status"] == "pending_qr" and channel["detail"] == "scan_qr"
    assert channel["qr"] == session["qr"]
    hook = session["config"]["webhooks"][0]
    assert hook["url"] == f"{backend.url}/webhooks/waha/{cid}"
    assert hook["events"] == EVENTS and "message.any" not in hook["events"]
    assert hook["hmac"]["key"] and hook["hmac"]["key"] not in str(channel)
    await fake.idle()

    assert await fake.scan("+15550100001") == [200]
    ready = (await api.get(f"/api/channels/{cid}")).json()
    assert ready["status"] == "ready" and ready["phone_number"] == "+15550100001" and ready["qr"] is None
    numbers = await db_rows(backend, "SELECT phone_number, channel_id FROM assistant_phone_numbers")
    assert numbers == [{"phone_number": "+15550100001", "channel_id": cid}]

    statuses = await fake.deliver_message("+15550109999", "Do you ship abroad?", "false_15550109999@c.us_AAA1", times=3)
    assert statuses == [200, 200, 200]
    stored = await db_rows(backend, "SELECT text, provider_message_id FROM messages WHERE channel_id = $1", cid)
    assert stored == [{"text": "Do you ship abroad?", "provider_message_id": "false_15550109999@c.us_AAA1"}]

    out = await api.post(f"/api/channels/{cid}/logout")
    assert out.status_code == 200 and out.json()["status"] == "disconnected" and out.json()["detail"] == "logged_out"
    await fake.idle()  # WAHA's own SCAN_QR_CODE/STOPPED webhooks after the logout change nothing
    still = (await api.get(f"/api/channels/{cid}")).json()
    assert still["status"] == "disconnected" and still["detail"] == "logged_out"
    assert await db_rows(backend, "SELECT * FROM assistant_phone_numbers") == []

    again = await api.post(f"/api/channels/{cid}/reconnect")
    assert again.status_code == 200 and again.json()["status"] == "pending_qr" and again.json()["qr"]
    await fake.idle()
    await fake.scan("+15550100001")
    assert (await api.get(f"/api/channels/{cid}")).json()["status"] == "ready"


async def test_webhook_with_a_wrong_or_missing_signature_is_refused(stack):
    api, backend, fake = stack
    channel = await connect_channel(api, await new_assistant(api))
    await fake.idle()
    await fake.scan("+15550100001")
    assert await fake.deliver_message("+15550109999", "hi", hmac_key="not-the-key") == [401]
    async with backend.client() as client:
        unsigned = await client.post(f"/webhooks/waha/{channel['id']}", json={"event": "message", "payload": {}})
    assert unsigned.status_code == 401 and unsigned.json()["error"]["code"] == "bad_signature"
    assert await db_rows(backend, "SELECT id FROM messages") == []


async def test_webhook_errors_unknown_channel_wrong_provider_malformed_unknown_event(stack):
    api, backend, fake = stack
    channel = await connect_channel(api, await new_assistant(api))
    cid = channel["id"]
    await fake.idle()
    session = fake.session()
    async with backend.client() as client:
        # An unknown channel, another provider's and a wrong signature answer alike: nothing tells which exist.
        unknown = await client.post("/webhooks/waha/999999", json={}, headers={"X-Webhook-Hmac": "00"})
        other_provider = await client.post(f"/webhooks/evolution/{cid}", json={}, headers={"X-Webhook-Hmac": "00"})
        wrong_signature = await client.post(f"/webhooks/waha/{cid}", json={}, headers={"X-Webhook-Hmac": "00"})
        assert unknown.status_code == other_provider.status_code == wrong_signature.status_code == 401
        assert unknown.json() == other_provider.json() == wrong_signature.json()
        assert (await client.post(f"/webhooks/telegram/{cid}", json={})).status_code == 404
    # Signed, but not a WAHA event / an event we do not use.
    bad = await fake.send_webhook(session, "message", "not an object")
    assert bad == [400]
    session["config"]["webhooks"][0]["events"].append("presence.update")
    assert await fake.send_webhook(session, "presence.update", {"id": "x", "presences": []}) == [200]


async def test_a_number_linked_to_another_assistant_is_refused_with_its_name(stack):
    api, backend, fake = stack
    first = await connect_channel(api, await new_assistant(api, "Bakery"))
    await fake.idle()
    await fake.scan("+15550100001", session=list(fake.sessions)[0])
    second = await connect_channel(api, await new_assistant(api, "Florist"))
    await fake.idle()
    await fake.scan("+15550100001", session=list(fake.sessions)[1])

    refused = (await api.get(f"/api/channels/{second['id']}")).json()
    assert refused["status"] == "disconnected" and refused["detail"] == "number_conflict"
    assert "Bakery" in refused["last_error"] and "+15550100001" in refused["last_error"]
    assert (await api.get(f"/api/channels/{first['id']}")).json()["status"] == "ready"
    # Messages to the refused channel are not taken in.
    await fake.deliver_message("+15550109999", "hello?", session=list(fake.sessions)[1])
    assert await db_rows(backend, "SELECT id FROM messages WHERE channel_id = $1", second["id"]) == []

    # Reconciliation unlinks the refused phone at the gateway; the conflict stays visible.
    await reconcile_once(backend.app.ctx.runtime)
    await fake.idle()
    assert fake.sessions[list(fake.sessions)[1]]["me"] is None
    assert (await api.get(f"/api/channels/{second['id']}")).json()["detail"] == "number_conflict"

    # The same number paired again to the same assistant just works.
    await api.post(f"/api/channels/{first['id']}/reconnect")
    await fake.idle()
    await fake.scan("+15550100001", session=list(fake.sessions)[0])
    assert (await api.get(f"/api/channels/{first['id']}")).json()["status"] == "ready"


async def test_an_unscanned_qr_expires_and_one_reconnect_shows_a_new_one(stack):
    api, backend, fake = stack
    channel = await connect_channel(api, await new_assistant(api))
    await fake.idle()
    first_qr = fake.session()["qr"]
    await fake.expire_qr()
    expired = (await api.get(f"/api/channels/{channel['id']}")).json()
    assert expired["status"] == "disconnected" and expired["detail"] == "qr_expired"
    assert expired["qr"] is None and "Reconnect" in expired["last_error"]
    again = (await api.post(f"/api/channels/{channel['id']}/reconnect")).json()
    assert again["status"] == "pending_qr" and again["qr"] and again["qr"] != first_qr


async def test_gateway_answering_5xx_or_hanging_during_connect_leaves_a_clear_error(stack):
    api, backend, fake = stack
    assistant = await new_assistant(api)
    fake.fail_status = 503
    failed = await connect_channel(api, assistant)
    assert failed["status"] == "disconnected" and failed["detail"] == "gateway_error"
    assert "503" in failed["last_error"] and "WAHA" in failed["last_error"]
    assert fake.requests.count(("POST", "/api/sessions")) == 3  # retried with back-off

    fake.fail_status = None
    fake.hang = True
    hung = await connect_channel(api, assistant)
    assert hung["detail"] == "gateway_error" and "did not answer" in hung["last_error"]
    refused = await api.post(f"/api/channels/{hung['id']}/reconnect")
    assert refused.status_code == 502 and refused.json()["error"]["code"] == "gateway_unreachable"

    fake.hang = False
    healed = await api.post(f"/api/channels/{failed['id']}/reconnect")
    assert healed.status_code == 200 and healed.json()["status"] == "pending_qr"


async def test_sending_speaks_the_waha_api_and_a_5xx_send_is_not_repeated(stack):
    api, backend, fake = stack
    channel = await connect_channel(api, await new_assistant(api))
    await fake.idle()
    await fake.scan("+15550100001")
    rt = backend.app.ctx.runtime
    ref = channel_ref(await get_channel(rt.db, channel["id"]))
    gateway = rt.gateway("waha")

    await gateway.mark_seen(ref, "15550109999@c.us", ["false_15550109999@c.us_AAA1"])
    await gateway.set_typing(ref, "15550109999@c.us", True)
    sent = await gateway.send_text(ref, "15550109999@c.us", "We ship to 40 countries.")
    await gateway.set_typing(ref, "15550109999@c.us", False)
    assert fake.sent == [{"session": ref.session_name, "chatId": "15550109999@c.us", "text": "We ship to 40 countries."}]
    assert sent.provider_message_id.startswith("true_15550109999@c.us_")
    assert [op for op, _ in fake.calls] == ["send_seen", "start_typing", "stop_typing"]
    assert await gateway.find_recent_outgoing(ref, "15550109999@c.us", "We ship to 40 countries.") == sent.provider_message_id
    assert await gateway.find_recent_outgoing(ref, "15550109999@c.us", "something else") is None

    fake.fail_status = 500
    with pytest.raises(GatewayError, match="500"):
        await gateway.send_text(ref, "15550109999@c.us", "second")
    assert fake.requests.count(("POST", "/api/sendText")) == 2  # once each: a send is never repeated by us


async def test_a_missed_webhook_is_healed_by_reconciliation(stack):
    api, backend, fake = stack
    channel = await connect_channel(api, await new_assistant(api))
    await fake.idle()
    fake.drop_webhooks = True
    await fake.scan("+15550100001")
    listed = (await api.get("/api/channels")).json()["items"][0]
    assert listed["status"] == "pending_qr"  # the backend was not told
    assert await reconcile_once(backend.app.ctx.runtime) == 1
    healed = (await api.get("/api/channels")).json()["items"][0]
    assert healed["status"] == "ready" and healed["phone_number"] == "+15550100001"

    # Unlinked on the phone without a webhook: a silent ready channel is checked too.
    await fake.unlink()
    rt = backend.app.ctx.runtime
    rt.settings.channel_stale_seconds = 0.001
    assert await reconcile_once(rt) == 1
    gone = (await api.get(f"/api/channels/{channel['id']}")).json()
    assert gone["status"] == "disconnected" and gone["detail"] == "failed"


async def test_reconciliation_loop_runs_by_itself(fake_waha, database_url, tmp_path):  # noqa: F811
    async with backend_with_gateway(
        database_url,
        tmp_path,
        gateway_provider="waha",
        waha_url=fake_waha.url,
        waha_api_key="test-waha-key",
        channel_reconcile_seconds=0.2,
    ) as backend:
        async with backend.client(await login(backend)) as api:
            await connect_channel(api, await new_assistant(api))
            await fake_waha.idle()
            fake_waha.drop_webhooks = True
            await fake_waha.scan("+15550100001")
            for _ in range(50):
                item = (await api.get("/api/channels")).json()["items"][0]
                if item["status"] == "ready":
                    break
                await __import__("asyncio").sleep(0.1)
            assert item["status"] == "ready"


async def test_a_rotated_qr_is_fetched_again_when_the_console_reads_the_channel(stack):
    api, backend, fake = stack
    channel = await connect_channel(api, await new_assistant(api))
    await fake.idle()
    session = fake.session()
    session["qr"] = "2@rotated-qr-value"
    assert await fake.send_status(session) == [200]  # SCAN_QR_CODE again: the stored QR is stale now
    shown = (await api.get(f"/api/channels/{channel['id']}")).json()
    assert shown["status"] == "pending_qr" and shown["qr"] == "2@rotated-qr-value"
