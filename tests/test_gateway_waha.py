"""WAHA payloads, from the real examples in tests/fixtures/gateways/waha/, as provider-neutral events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from backend.errors import Invalid
from backend.gateways.base import (
    ChannelRef,
    InboundMessage,
    MediaRef,
    MessageAck,
    ReactionEvent,
    SessionStatusEvent,
    UnknownEvent,
)
from backend.gateways.errors import GatewayHttpError, MediaTooLarge, MediaUnavailable, retryable
from backend.gateways.waha import WahaGateway, parse_message
from backend.settings import Settings
from tests.fakes.waha import FakeWaha, fake_waha  # noqa: F401
from tests.servers import serve_aiohttp

FIXTURES = Path(__file__).parent / "fixtures" / "gateways" / "waha"
WEBHOOKS = sorted(
    p.name for p in FIXTURES.glob("*.json") if not p.name.startswith("api.") and p.name != "message.group.noweb.json"
)


@pytest.fixture(scope="module")
def gateway() -> WahaGateway:
    return WahaGateway(Settings(_env_file=None), http=None)  # parsing needs no HTTP


def parse(gateway: WahaGateway, body: dict | bytes):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return gateway.parse_webhook({}, raw)


@pytest.mark.parametrize("name", WEBHOOKS)
def test_every_real_webhook_example_parses(gateway, name):
    events = parse(gateway, (FIXTURES / name).read_bytes())
    assert len(events) == 1


def test_the_documented_hmac_example_verifies_and_a_changed_body_does_not(gateway):
    lines = [line for line in (FIXTURES / "hmac.example.txt").read_text().splitlines() if not line.startswith("#")]
    body, key, algorithm, signature = lines
    ref = ChannelRef(id=1, provider="waha", session_name="default", webhook_secret=key)
    headers = {"x-webhook-hmac": signature, "x-webhook-hmac-algorithm": algorithm}
    assert gateway.verify_webhook(ref, headers, body.encode())
    assert not gateway.verify_webhook(ref, headers, body.encode() + b" ")
    assert not gateway.verify_webhook(ref, {}, body.encode())
    wrong_key = ChannelRef(id=1, provider="waha", session_name="default", webhook_secret="other")
    assert not gateway.verify_webhook(wrong_key, headers, body.encode())


def test_session_status_maps_to_our_states_with_the_paired_number(gateway):
    working = parse(gateway, (FIXTURES / "session.status.WORKING.json").read_bytes())[0]
    assert isinstance(working, SessionStatusEvent)
    assert (working.state.status, working.state.detail, working.state.phone_number) == ("ready", "working", "+7911111")
    noweb = parse(gateway, (FIXTURES / "session.status.WORKING.noweb.json").read_bytes())[0]
    assert noweb.state.phone_number == "+11111111111"  # the first WORKING lacks pushName, not the id
    scan = parse(gateway, (FIXTURES / "session.status.SCAN_QR_CODE.json").read_bytes())[0]
    assert (scan.state.status, scan.state.detail, scan.state.phone_number) == ("pending_qr", "scan_qr", None)
    for status, ours in (("FAILED", "disconnected"), ("STOPPED", "disconnected"), ("STARTING", "pending_qr")):
        event = parse(gateway, {"event": "session.status", "session": "s", "me": None, "payload": {"status": status}})[0]
        assert event.state.status == ours


def test_own_messages_are_marked_and_api_sends_told_apart_from_the_phone(gateway):
    doc = json.loads((FIXTURES / "message.text.fromMe.json").read_text())
    own = parse(gateway, doc)[0]
    assert isinstance(own, InboundMessage)
    assert own.from_me and not own.sent_by_api and own.text == "Hi there!"
    assert own.provider_message_id == "true_11111111111@c.us_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    doc["event"] = "message.any"
    doc["payload"].update(source="api", to="22222222222@c.us")
    api_send = parse(gateway, doc)[0]
    assert api_send.sent_by_api and api_send.chat_id == "22222222222@c.us"


def test_customer_text_and_reply_have_sender_phone_and_timestamp(gateway):
    reply = parse(gateway, (FIXTURES / "message.reply.json").read_bytes())[0]
    assert reply.text == "Yes!" and reply.chat_id == "11111111111@c.us"
    assert reply.timestamp.year == 2022 and not reply.is_group


def test_media_with_caption_and_media_without_text(gateway):
    image = parse(gateway, (FIXTURES / "message.media.json").read_bytes())[0]
    assert image.has_media and image.media_type == "image/jpeg" and image.text.startswith("Check this out")
    assert image.media == MediaRef(
        kind="image",
        handle="http://localhost:3000/api/files/true_11111111111@c.us_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.jpg",
        mimetype="image/jpeg",
        caption="Check this out (caption for the media)!",
    )
    document = parse(gateway, (FIXTURES / "message.document.json").read_bytes())[0]
    assert document.has_media and document.text == "" and document.media_type == "application/pdf"
    assert (document.media.kind, document.media.filename, document.media.caption) == ("document", "some-file.pdf", None)


def test_voice_notes_stickers_locations_and_undownloaded_media(gateway):
    voice = parse_message(
        {"id": "false_1@c.us_V", "from": "1@c.us", "hasMedia": True, "_data": {"type": "ptt"},
         "media": {"url": "http://waha/api/files/v.oga", "mimetype": "audio/ogg; codecs=opus"}}
    )  # fmt: skip
    assert voice.media.kind == "voice" and voice.media.downloadable
    sticker = parse_message(
        {"id": "false_1@c.us_S", "from": "1@c.us", "media": {"url": "http://w/s.webp", "mimetype": "image/webp"}}
    )
    assert sticker.media.kind == "sticker"
    place = {"latitude": 52.52, "longitude": 13.4, "description": "The shop"}
    location = parse_message({"id": "false_1@c.us_L", "from": "1@c.us", "body": "", "location": place})
    assert location.has_media and location.media.description == "52.52, 13.4 — The shop" and not location.media.downloadable
    not_downloaded = parse_message({"id": "false_1@c.us_N", "from": "1@c.us", "hasMedia": True, "media": None})
    assert not_downloaded.has_media and not_downloaded.media is None


def test_group_message_comes_from_the_participant_in_the_group_chat():
    item = json.loads((FIXTURES / "message.group.noweb.json").read_text())[0]
    message = parse_message({**item, "fromMe": False})
    assert message.is_group and message.chat_id == "111111111111111111111@g.us"
    assert message.sender_id == "33333@c.us" and message.text == "Hdhf"


def test_lid_senders_and_status_broadcasts(gateway):
    lid = parse_message({"id": "false_4639135154355@lid_AAA", "from": "4639135154355@lid", "body": "hola", "timestamp": 1})
    assert lid.chat_id == "4639135154355@lid" and lid.sender_phone is None
    status = parse_message({"id": "false_status@broadcast_X", "from": "status@broadcast", "participant": "1@c.us", "body": ""})
    assert status.is_broadcast and not status.is_group


def test_acks_map_to_delivery_statuses(gateway):
    read = parse(gateway, (FIXTURES / "message.ack.json").read_bytes())[0]
    assert read == MessageAck(provider_message_id="true_11111111111@c.us_4CC5EDD64BC22EBA6D639F2AF571346C", status="read")
    group = parse(gateway, (FIXTURES / "message.ack.group.lid.json").read_bytes())[0]
    assert group.status == "read" and group.provider_message_id.endswith("_9999@lid")


def test_a_reaction_names_the_message_and_the_emoji(gateway):
    reaction = parse(gateway, (FIXTURES / "message.reaction.json").read_bytes())[0]
    assert isinstance(reaction, ReactionEvent)
    assert reaction.reacted_to == "true_79111111@c.us_11111111111111111111111111111111"
    assert (reaction.emoji, reaction.sender_id, reaction.sender_phone, reaction.removed) == (
        "🙏",
        "79111111@c.us",
        "+79111111",
        False,
    )
    doc = json.loads((FIXTURES / "message.reaction.json").read_text())
    doc["payload"]["reaction"]["text"] = ""
    assert parse(gateway, doc)[0].removed


def test_events_we_do_not_use_are_unknown_not_errors(gateway):
    revoked = parse(gateway, {"event": "message.revoked", "session": "default", "payload": {}})[0]
    assert isinstance(revoked, UnknownEvent) and revoked.name == "message.revoked"


def test_unknown_session_states_and_ack_values_are_reported_not_guessed(gateway):
    state = parse(gateway, {"event": "session.status", "me": None, "payload": {"status": "SOMETHING_NEW"}})[0].state
    assert (state.status, state.detail) == ("pending_qr", "unknown") and "SOMETHING_NEW" in state.error
    odd_ack = {"event": "message.ack", "payload": {"id": "true_1@c.us_X", "ack": 9, "ackName": "WHATEVER"}}
    assert isinstance(parse(gateway, odd_ack)[0], UnknownEvent)


def test_header_names_are_read_in_any_case(gateway):
    lines = [line for line in (FIXTURES / "hmac.example.txt").read_text().splitlines() if not line.startswith("#")]
    body, key, algorithm, signature = lines
    ref = ChannelRef(id=1, provider="waha", session_name="default", webhook_secret=key)
    assert gateway.verify_webhook(ref, {"X-WEBHOOK-HMAC": signature, "X-Webhook-Hmac-Algorithm": algorithm}, body.encode())


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"payload": {}}',
        b'{"event": "message", "payload": "x"}',
        b'{"event": "message", "payload": {"body": "no id"}}',
        b'{"event": "session.status", "payload": {}}',
    ],
)
def test_malformed_webhooks_are_errors(gateway, body):
    with pytest.raises(ValueError):
        gateway.parse_webhook({}, body)


def test_every_api_answer_example_is_understood():
    from backend.gateways.waha import session_state

    info = json.loads((FIXTURES / "api.sessions.get.response.json").read_text())
    assert session_state(info["status"], info["me"]).phone_number == "+79111111"
    me = json.loads((FIXTURES / "api.sessions.me.response.json").read_text())
    assert session_state("WORKING", me).phone_number == "+11111111111"
    assert json.loads((FIXTURES / "api.auth.qr.raw.response.json").read_text())["value"]
    assert json.loads((FIXTURES / "api.auth.qr.base64.response.json").read_text())["mimetype"] == "image/png"
    assert json.loads((FIXTURES / "api.auth.request-code.response.json").read_text())["code"] == "ABCD-ABCD"


def test_a_status_event_carries_its_signed_envelope_time_when_waha_sends_one(gateway):
    dated = {"event": "session.status", "timestamp": 1741249702485, "me": None, "payload": {"status": "WORKING"}}
    assert parse(gateway, dated)[0].at == datetime(2025, 3, 6, 8, 28, 22, 485000, tzinfo=UTC)
    undated = {"event": "session.status", "me": None, "payload": {"status": "WORKING"}}  # WAHA of 2024
    assert parse(gateway, undated)[0].at is None


# -- against the fake WAHA over HTTP --


@pytest.fixture
async def live(fake_waha: FakeWaha) -> AsyncIterator[tuple[WahaGateway, ChannelRef, FakeWaha]]:  # noqa: F811
    settings = Settings(_env_file=None, waha_url=fake_waha.url, waha_api_key="test-waha-key", gateway_timeout_seconds=5)
    ref = ChannelRef(id=1, provider="waha", session_name="default", webhook_secret="k")
    fake_waha.drop_webhooks = True  # these tests read what the gateway does, not what the backend is told
    async with aiohttp.ClientSession() as http:
        gateway = WahaGateway(settings, http)
        await gateway.start_session(ref, "http://127.0.0.1:9/webhooks/waha/1")
        yield gateway, ref, fake_waha


async def test_media_is_fetched_from_waha_with_the_api_key_even_when_waha_names_another_host(live):
    gateway, ref, fake = live
    await fake.scan("+15550100001")
    voice = b"OggS\x00\x02" + bytes(range(256)) * 64
    payload, _ = await fake.deliver_media("+15550109999", voice, "audio/ogg; codecs=opus")
    message = parse_message(payload)
    assert message.media.kind == "voice" and message.media.handle.startswith("http://localhost:3000/api/files/")
    assert await gateway.download_media(ref, message.media, max_bytes=1_000_000) == voice
    assert ("GET", "/api/files/" + message.media.handle.split("/api/files/")[1]) in fake.requests


async def test_a_file_over_the_limit_stops_the_download_and_a_failed_one_can_be_retried(live):
    gateway, ref, fake = live
    await fake.scan("+15550100001")
    payload, _ = await fake.deliver_media("+15550109999", b"\xff" * 200_000, "image/jpeg", "look")
    media = parse_message(payload).media
    with pytest.raises(MediaTooLarge) as too_large:
        await gateway.download_media(ref, media, max_bytes=100_000)
    assert not retryable(too_large.value)
    fake.files_fail = 1
    with pytest.raises(MediaUnavailable) as failed:
        await gateway.download_media(ref, media, max_bytes=1_000_000)
    assert retryable(failed.value)
    assert len(await gateway.download_media(ref, media, max_bytes=1_000_000)) == 200_000  # the retry succeeds


async def test_the_api_key_is_not_sent_to_a_media_host_that_is_not_waha(live):
    gateway, ref, _ = live
    seen: list[str | None] = []

    async def bucket(request: web.Request) -> web.Response:  # an S3-like store WAHA Plus may link to
        seen.append(request.headers.get("X-Api-Key"))
        return web.Response(body=b"JPEGDATA", content_type="image/jpeg")

    app = web.Application()
    app.add_routes([web.get("/bucket/{name}", bucket)])
    runner, url = await serve_aiohttp(app)
    try:
        media = MediaRef(kind="image", handle=f"{url}/bucket/x.jpg?signature=abc")
        assert await gateway.download_media(ref, media, max_bytes=1000) == b"JPEGDATA"
    finally:
        await runner.cleanup()
    assert seen == [None]


async def test_only_a_file_of_waha_gets_the_key_and_no_redirect_carries_it(live):
    """A signed webhook's file path could name any WAHA route (the key would go with it), and a redirect would carry
    the key to wherever it points."""
    gateway, ref, fake = live
    before = len(fake.requests)
    for path in ("/api/sessions/default/stop", "/api/files/../sessions", "/api/files/a/b/c"):
        with pytest.raises(MediaUnavailable, match="not one of WAHA's files"):
            await gateway.download_media(ref, MediaRef(kind="voice", handle=f"{fake.url}{path}"), max_bytes=1000)
        with pytest.raises(MediaUnavailable, match="not one of WAHA's files"):  # WAHA naming itself localhost
            await gateway.download_media(
                ref, MediaRef(kind="voice", handle=f"http://localhost:3000/api/files{path}"), max_bytes=1000
            )
    assert fake.requests[before:] == []  # nothing was asked of WAHA

    seen: list[str | None] = []

    async def elsewhere(request: web.Request) -> web.Response:
        seen.append(request.headers.get("X-Api-Key"))
        return web.Response(body=b"OggS")

    other_key = web.AppKey("other", str)

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"{request.app[other_key]}/loot")

    other = web.Application()
    other.add_routes([web.get("/loot", elsewhere)])
    other_runner, other_url = await serve_aiohttp(other)
    redirecting = web.Application()
    redirecting[other_key] = other_url
    redirecting.add_routes([web.get("/api/files/{name}", moved)])
    runner, url = await serve_aiohttp(redirecting)
    try:
        gateway.client.base_url = url  # WAHA itself (as WAHA_URL names it) answers with a redirect
        with pytest.raises(MediaUnavailable):
            await gateway.download_media(ref, MediaRef(kind="voice", handle=f"{url}/api/files/x.ogg"), max_bytes=1000)
    finally:
        await runner.cleanup()
        await other_runner.cleanup()
    assert seen == []


async def test_a_stream_without_a_length_is_cut_at_the_limit_and_a_stalled_one_times_out(live):
    gateway, ref, fake = live

    async def endless(request: web.Request) -> web.StreamResponse:  # chunked: no Content-Length to refuse early
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(1000):
            await response.write(b"\x00" * 65536)
        return response

    app = web.Application()
    app.add_routes([web.get("/bucket/{name}", endless)])
    runner, url = await serve_aiohttp(app)
    try:
        with pytest.raises(MediaTooLarge, match="stopped reading"):
            await gateway.download_media(ref, MediaRef(kind="video", handle=f"{url}/bucket/big.mp4"), max_bytes=200_000)
    finally:
        await runner.cleanup()
    await fake.scan("+15550100001")
    payload, _ = await fake.deliver_media("+15550109999", b"OggS", "audio/ogg")
    fake.hang = True
    gateway.media_timeout = 0.3
    with pytest.raises(MediaUnavailable, match="longer than 0.3 s") as stalled:
        await gateway.download_media(ref, parse_message(payload).media, max_bytes=1000)
    assert retryable(stalled.value)


async def test_a_pairing_code_for_a_phone_number(live):
    gateway, ref, fake = live
    assert await gateway.request_pairing_code(ref, "+1 213-213-2130") == "ABCD-ABCD"
    assert fake.calls[-1] == ("request_code", {"phoneNumber": "12132132130"})
    with pytest.raises(Invalid):
        await gateway.request_pairing_code(ref, "call me")
    await fake.scan("+15550100001")
    with pytest.raises(GatewayHttpError, match="waits for a scan"):
        await gateway.request_pairing_code(ref, "+12132132130")


async def test_a_reply_quotes_the_customer_message(live):
    gateway, ref, fake = live
    await fake.scan("+15550100001")
    await gateway.send_text(ref, "15550109999@c.us", "Yes, blue too.", reply_to="false_15550109999@c.us_AAA")
    await gateway.send_text(ref, "15550109999@c.us", "Anything else?")
    assert fake.sent[0]["reply_to"] == "false_15550109999@c.us_AAA" and "reply_to" not in fake.sent[1]
