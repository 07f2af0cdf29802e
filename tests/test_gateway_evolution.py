"""Evolution API payloads, from the real examples in tests/fixtures/gateways/evolution/, as events."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import jwt
import pytest

from backend.errors import Invalid
from backend.gateways.base import (
    ChannelRef,
    InboundMessage,
    MediaRef,
    MessageAck,
    QrUpdated,
    ReactionEvent,
    SessionStatusEvent,
    UnknownEvent,
)
from backend.gateways.errors import MediaTooLarge, MediaUnavailable, retryable
from backend.gateways.evolution import EvolutionGateway, _qr_code, parse_message
from backend.settings import Settings
from tests.fakes.evolution import FakeEvolution, fake_evolution  # noqa: F401

FIXTURES = Path(__file__).parent / "fixtures" / "gateways" / "evolution"
SECRET = "a-channel-secret-long-enough-for-hs256-keys"
REF = ChannelRef(id=1, provider="evolution", session_name="shop", webhook_secret=SECRET)


@pytest.fixture(scope="module")
def gateway() -> EvolutionGateway:
    return EvolutionGateway(Settings(_env_file=None), http=None)  # parsing needs no HTTP


def parse(gateway: EvolutionGateway, body: dict | bytes):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return gateway.parse_webhook({}, raw)


def upsert(key: dict, message: dict | None, **extra) -> dict:
    data = {"key": key, "message": message, "messageType": "conversation", "messageTimestamp": 1717604327, **extra}
    return {"event": "messages.upsert", "instance": "shop", "data": data}


def test_phone_typed_own_message_is_from_me_but_not_an_api_send(gateway):
    message = parse(gateway, (FIXTURES / "messages.upsert.fromMe.json").read_bytes())[0]
    assert isinstance(message, InboundMessage)
    assert message.from_me and not message.sent_by_api
    assert message.provider_message_id == "4DA1D8D1B5B0139AC8C44B44B8CF5A93"
    assert message.text.startswith("Clínica") and message.chat_id == "55119********@s.whatsapp.net"
    assert message.timestamp.year == 2024


def test_connection_close_with_reason_440_is_a_disconnection(gateway):
    event = parse(gateway, (FIXTURES / "connection.update.close.440.json").read_bytes())[0]
    assert isinstance(event, SessionStatusEvent)
    assert event.state.status == "disconnected" and "440" in event.state.error


def test_connection_open_gives_the_paired_number(gateway):
    data = {"instance": "shop", "wuid": "5511987654321@s.whatsapp.net", "state": "open", "statusReason": 200}
    body = {"event": "connection.update", "instance": "shop", "sender": None, "data": data}
    state = parse(gateway, body)[0].state
    assert (state.status, state.phone_number) == ("ready", "+5511987654321")
    logged_out = parse(gateway, {**body, "data": {"instance": "shop", "state": "close", "statusReason": 401}})[0].state
    assert logged_out.detail == "logged_out"


def test_qr_updates_and_the_qr_limit(gateway):
    qr = parse(gateway, {"event": "qrcode.updated", "data": {"qrcode": {"instance": "shop", "code": "2@abc", "base64": "x"}}})
    assert qr == [QrUpdated(qr="2@abc")]
    limit = parse(gateway, {"event": "qrcode.updated", "data": {"message": "QR code limit reached, please login again"}})[0]
    assert limit.state.status == "disconnected" and limit.state.detail == "qr_expired"


def test_customer_text_extended_text_and_captions(gateway):
    dm = parse(
        gateway,
        upsert(
            {"remoteJid": "5511911112222@s.whatsapp.net", "fromMe": False, "id": "A1"}, {"conversation": "oi"}, pushName="Ana"
        ),
    )[0]
    assert (dm.text, dm.sender_phone, dm.sender_name, dm.is_group) == ("oi", "+5511911112222", "Ana", False)
    extended = parse(
        gateway, upsert({"remoteJid": "1@s.whatsapp.net", "fromMe": False, "id": "A2"}, {"extendedTextMessage": {"text": "link"}})
    )[0]
    assert extended.text == "link"
    image = {"imageMessage": {"caption": "look", "mimetype": "image/jpeg"}}
    captioned = parse(
        gateway, upsert({"remoteJid": "1@s.whatsapp.net", "fromMe": False, "id": "A3"}, image, messageType="imageMessage")
    )[0]
    assert captioned.has_media and captioned.text == "look" and captioned.media_type == "image/jpeg"
    audio = parse(
        gateway,
        upsert({"remoteJid": "1@s.whatsapp.net", "fromMe": False, "id": "A4"}, {"audioMessage": {}}, messageType="audioMessage"),
    )[0]
    assert audio.has_media and audio.text == ""


def test_lid_senders_groups_and_status_broadcasts(gateway):
    lid_key = {
        "remoteJid": "123456789012345@lid",
        "remoteJidAlt": "5511911112222@s.whatsapp.net",
        "fromMe": False,
        "id": "L1",
        "addressingMode": "lid",
    }
    lid = parse(gateway, upsert(lid_key, {"conversation": "hi"}))[0]
    assert lid.chat_id == "123456789012345@lid" and lid.sender_phone == "+5511911112222"
    bare_lid = parse(gateway, upsert({"remoteJid": "123456789012345@lid", "fromMe": False, "id": "L2"}, {"conversation": "hi"}))[
        0
    ]
    assert bare_lid.sender_phone is None
    group_key = {"remoteJid": "1203630@g.us", "participant": "5511911112222@s.whatsapp.net", "fromMe": False, "id": "G1"}
    group = parse(gateway, upsert(group_key, {"conversation": "all"}))[0]
    assert group.is_group and group.sender_id == "5511911112222@s.whatsapp.net" and group.chat_id == "1203630@g.us"
    status = parse(
        gateway, upsert({"remoteJid": "status@broadcast", "participant": "1@s.whatsapp.net", "fromMe": False, "id": "S1"}, None)
    )[0]
    assert status.is_broadcast


def test_api_sends_and_acks(gateway):
    sent = parse(
        gateway,
        {
            "event": "send.message",
            "data": {"key": {"remoteJid": "1@s.whatsapp.net", "fromMe": True, "id": "BAE5"}, "message": {"conversation": "x"}},
        },
    )[0]
    assert sent.from_me and sent.sent_by_api
    acks = parse(
        gateway,
        {
            "event": "messages.update",
            "data": {"keyId": "BAE5", "remoteJid": "1@s.whatsapp.net", "fromMe": True, "status": "DELIVERY_ACK"},
        },
    )
    assert acks == [MessageAck(provider_message_id="BAE5", status="delivered")]
    assert isinstance(parse(gateway, {"event": "presence.update", "data": {}})[0], UnknownEvent)
    assert (
        parse(gateway, {"event": "MESSAGES_UPSERT", "data": {"key": {"remoteJid": "1@s.whatsapp.net", "id": "U"}}})[
            0
        ].provider_message_id
        == "U"
    )


def test_webhook_auth_by_jwt_checked_from_the_headers_alone(gateway):
    now = int(time.time())
    good = jwt.encode({"iat": now, "exp": now + 600, "app": "evolution", "action": "webhook"}, SECRET, "HS256")
    assert gateway.check_webhook_headers(REF, {"authorization": f"Bearer {good}"})
    assert gateway.verify_webhook(REF, {"authorization": f"Bearer {good}"}, b"{}")
    assert not gateway.verify_webhook(REF, {"x-webhook-secret": SECRET}, b"{}")  # the secret itself is not a credential here
    assert not gateway.verify_webhook(REF, {}, b"{}")
    expired = jwt.encode({"iat": now - 900, "exp": now - 300}, SECRET, "HS256")
    assert not gateway.verify_webhook(REF, {"authorization": f"Bearer {expired}"}, b"{}")
    no_issue_time = jwt.encode({"exp": now + 600}, SECRET, "HS256")
    assert not gateway.verify_webhook(REF, {"authorization": f"Bearer {no_issue_time}"}, b"{}")
    forged = jwt.encode({"iat": now, "exp": now + 600}, "another-secret-that-is-long-enough-too!!", "HS256")
    assert not gateway.verify_webhook(REF, {"authorization": f"Bearer {forged}"}, b"{}")


def test_webhook_auth_by_secret_header_for_older_evolution():
    gateway = EvolutionGateway(Settings(_env_file=None, evolution_webhook_auth="header"), http=None)
    assert gateway.check_webhook_headers(REF, {"x-webhook-secret": SECRET})
    assert not gateway.verify_webhook(REF, {"x-webhook-secret": "nope"}, b"{}")
    assert not gateway.verify_webhook(REF, {}, b"{}")
    now = int(time.time())
    token = jwt.encode({"iat": now, "exp": now + 600}, SECRET, "HS256")
    assert not gateway.verify_webhook(REF, {"authorization": f"Bearer {token}"}, b"{}")


def test_status_events_carry_the_time_their_jwt_was_issued(gateway):
    issued = int(time.time()) - 30
    token = jwt.encode({"iat": issued, "exp": issued + 600}, SECRET, "HS256")
    body = json.dumps({"event": "connection.update", "data": {"state": "open", "wuid": "5511987654321@s.whatsapp.net"}})
    [event] = gateway.parse_webhook({"authorization": f"Bearer {token}"}, body.encode())
    assert isinstance(event, SessionStatusEvent) and event.at is not None and int(event.at.timestamp()) == issued


@pytest.mark.parametrize(
    "body",
    [b"nope", b'{"data": {}}', b'{"event": "messages.upsert", "data": {"key": {}}}', b'{"event": "messages.upsert", "data": "x"}',
     b'{"event": "connection.update", "data": {"status": "no state"}}',
     b'{"event": "messages.upsert", "data": {"key": {"remoteJid": "1@s.whatsapp.net", "id": "R"},'
     b' "message": {"reactionMessage": {"text": "x"}}}}'],
)  # fmt: skip
def test_malformed_webhooks_are_errors(gateway, body):
    with pytest.raises(ValueError):
        gateway.parse_webhook({}, body)


def test_every_api_answer_example_is_understood():
    assert _qr_code(json.loads((FIXTURES / "api.instance.connect.response.json").read_text())) == "2@y8eK+bjtEjUWy9/FOM..."
    assert _qr_code(json.loads((FIXTURES / "api.instance.connect.response.pairing.json").read_text())) == "2@friZvbL+GZxUgI"
    assert _qr_code(json.loads((FIXTURES / "api.instance.create.response.qrcode-count0.json").read_text())) is None
    assert _qr_code(json.loads((FIXTURES / "api.instance.create.response.json").read_text())) is None
    state = json.loads((FIXTURES / "api.instance.connectionState.open.response.json").read_text())["instance"]["state"]
    assert state == "open"
    owners = [
        i["instance"].get("owner") for i in json.loads((FIXTURES / "api.instance.fetchInstances.response.json").read_text())
    ]
    assert owners == ["553198296801@s.whatsapp.net", None]
    sent = json.loads((FIXTURES / "api.message.sendText.response.json").read_text())
    assert parse_message({**sent, "messageTimestamp": sent["messageTimestamp"]}, sent_by_api=True).text == "Olá!"
    for name in (
        "api.instance.logout.response.json",
        "api.webhook.set.response.json",
        "api.chat.markMessageAsRead.response.json",
    ):
        assert json.loads((FIXTURES / name).read_text())


def test_unknown_connection_states_and_ack_values_are_reported_not_guessed(gateway):
    state = parse(gateway, {"event": "connection.update", "data": {"state": "weird"}})[0].state
    assert (state.status, state.detail) == ("pending_qr", "unknown") and "weird" in state.error
    odd = parse(gateway, {"event": "messages.update", "data": {"keyId": "BAE5", "status": "SOMETHING_NEW"}})
    assert [type(event) for event in odd] == [UnknownEvent]


def test_media_messages_carry_what_is_needed_to_fetch_them(gateway):
    voice = {"audioMessage": {"mimetype": "audio/ogg; codecs=opus", "ptt": True, "fileLength": "9582"}, "base64": "T2dnUw=="}
    [note] = parse(
        gateway, upsert({"remoteJid": "1@s.whatsapp.net", "fromMe": False, "id": "V1"}, voice, messageType="audioMessage")
    )
    assert note.media == MediaRef(
        kind="voice", handle="V1", mimetype="audio/ogg; codecs=opus", size=9582, inline_base64="T2dnUw=="
    )
    assert "T2dnUw" not in repr(note)  # the file itself stays out of logs
    doc = {
        "documentWithCaptionMessage": {
            "message": {"documentMessage": {"fileName": "menu.pdf", "caption": "prices", "mimetype": "application/pdf"}}
        }
    }
    [menu] = parse(
        gateway,
        upsert({"remoteJid": "1@s.whatsapp.net", "fromMe": False, "id": "D1"}, doc, messageType="documentWithCaptionMessage"),
    )
    assert (menu.text, menu.media.kind, menu.media.filename) == ("prices", "document", "menu.pdf")
    place = {"locationMessage": {"degreesLatitude": -23.5, "degreesLongitude": -46.6, "name": "Loja"}}
    [where] = parse(
        gateway, upsert({"remoteJid": "1@s.whatsapp.net", "fromMe": False, "id": "L9"}, place, messageType="locationMessage")
    )
    assert where.media.kind == "location" and where.media.description == "-23.5, -46.6 — Loja" and not where.media.downloadable


def test_a_reaction_in_messages_upsert_is_a_reaction_event(gateway):
    target = {"remoteJid": "5511911112222@s.whatsapp.net", "fromMe": True, "id": "BAE5OURS"}
    message = {"reactionMessage": {"key": target, "text": "❤️", "senderTimestampMs": "1717604327000"}}
    key = {"remoteJid": "5511911112222@s.whatsapp.net", "fromMe": False, "id": "R1"}
    [reaction] = parse(gateway, upsert(key, message, messageType="reactionMessage"))
    assert isinstance(reaction, ReactionEvent)
    assert (reaction.reacted_to, reaction.emoji, reaction.sender_phone, reaction.removed) == (
        "BAE5OURS",
        "❤️",
        "+5511911112222",
        False,
    )
    message["reactionMessage"]["text"] = ""
    assert parse(gateway, upsert(key, message, messageType="reactionMessage"))[0].removed


def test_header_names_are_read_in_any_case():
    header_mode = EvolutionGateway(Settings(_env_file=None, evolution_webhook_auth="header"), http=None)
    assert header_mode.check_webhook_headers(REF, {"X-Webhook-Secret": SECRET})
    now = int(time.time())
    token = jwt.encode({"iat": now, "exp": now + 600}, SECRET, "HS256")
    jwt_mode = EvolutionGateway(Settings(_env_file=None), http=None)
    assert jwt_mode.check_webhook_headers(REF, {"AUTHORIZATION": f"Bearer {token}"})


# -- against the fake Evolution API over HTTP --


@pytest.fixture
async def live(fake_evolution: FakeEvolution) -> AsyncIterator[tuple[EvolutionGateway, FakeEvolution]]:  # noqa: F811
    settings = Settings(
        _env_file=None, evolution_url=fake_evolution.url, evolution_api_key="test-evolution-key", gateway_timeout_seconds=5
    )
    fake_evolution.drop_webhooks = True  # these tests read what the gateway does, not what the backend is told
    async with aiohttp.ClientSession() as http:
        gateway = EvolutionGateway(settings, http)
        await gateway.start_session(REF, "http://127.0.0.1:9/webhooks/evolution/1")
        yield gateway, fake_evolution


async def test_media_comes_from_the_webhook_s_base64_or_from_get_base64_from_media_message(live):
    gateway, fake = live
    await fake.scan("+15550100001")
    voice = b"OggS\x00\x02" + bytes(range(256)) * 64
    item, _ = await fake.deliver_media("+15550109999", voice, "audio/ogg; codecs=opus")
    fetched = parse_message(item).media
    assert fetched.kind == "voice" and fetched.inline_base64 is None
    assert await gateway.download_media(REF, fetched, max_bytes=1_000_000) == voice
    assert ("POST", "/chat/getBase64FromMediaMessage/shop") in fake.requests
    fake.instance()["webhook"]["base64"] = True  # Evolution set to put files in its webhooks
    item, _ = await fake.deliver_media("+15550109999", b"\x89PNG-image", "image/png", "my order", kind="imageMessage")
    inline = parse_message(item).media
    calls = len(fake.requests)
    assert inline.inline_base64 == base64.b64encode(b"\x89PNG-image").decode() and inline.caption == "my order"
    assert await gateway.download_media(REF, inline, max_bytes=1000) == b"\x89PNG-image"
    assert len(fake.requests) == calls  # nothing fetched


async def test_media_over_the_limit_is_refused_and_a_failed_fetch_can_be_retried(live):
    gateway, fake = live
    await fake.scan("+15550100001")
    item, _ = await fake.deliver_media("+15550109999", b"\x00" * 300_000, "video/mp4", kind="videoMessage")
    media = parse_message(item).media
    with pytest.raises(MediaTooLarge):
        await gateway.download_media(REF, media, max_bytes=100_000)
    with pytest.raises(MediaTooLarge):
        await gateway.download_media(REF, MediaRef(kind="video", handle="X", inline_base64="A" * 200_000), max_bytes=100_000)
    fake.media_fail = 1
    with pytest.raises(MediaUnavailable) as failed:
        await gateway.download_media(REF, media, max_bytes=1_000_000)
    assert retryable(failed.value)
    assert len(await gateway.download_media(REF, media, max_bytes=1_000_000)) == 300_000


async def test_a_pairing_code_for_a_phone_number(live):
    gateway, fake = live
    assert await gateway.request_pairing_code(REF, "+55 31 98296-8010") == "FNPG5AYK"
    assert fake.calls[-1] == ("pairing_code", {"number": "5531982968010"})
    with pytest.raises(Invalid):
        await gateway.request_pairing_code(REF, "")


async def test_a_reply_quotes_the_customer_message_by_its_key(live):
    gateway, fake = live
    await fake.scan("+15550100001")
    await gateway.send_text(REF, "15550109999@s.whatsapp.net", "Sim!", reply_to="3EB0CUSTOMER")
    assert fake.sent[0]["quoted"] == {"key": {"id": "3EB0CUSTOMER", "remoteJid": "15550109999@s.whatsapp.net", "fromMe": False}}
