"""Evolution API payloads, from the real examples in tests/fixtures/gateways/evolution/, as events."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest

from backend.gateways.base import ChannelRef, InboundMessage, MessageAck, QrUpdated, SessionStatusEvent, UnknownEvent
from backend.gateways.evolution import EvolutionGateway, _qr_code, parse_message
from backend.settings import Settings

FIXTURES = Path(__file__).parent / "fixtures" / "gateways" / "evolution"
SECRET = "a-channel-secret-long-enough-for-hs256-keys"
REF = ChannelRef(id=1, provider="evolution", session_name="shop", webhook_secret=SECRET)


@pytest.fixture(scope="module")
def gateway() -> EvolutionGateway:
    return EvolutionGateway(Settings(_env_file=None), http=None)  # parsing needs no HTTP


def parse(gateway: EvolutionGateway, body: dict | bytes):  # noqa: ANN201
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return gateway.parse_webhook({}, raw)


def upsert(key: dict, message: dict | None, **extra) -> dict:  # noqa: ANN003
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
     b'{"event": "connection.update", "data": {"state": "weird"}}'],
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
