"""WAHA payloads, from the real examples in tests/fixtures/gateways/waha/, as provider-neutral events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backend.gateways.base import ChannelRef, InboundMessage, MessageAck, SessionStatusEvent, UnknownEvent
from backend.gateways.waha import WahaGateway, parse_message
from backend.settings import Settings

FIXTURES = Path(__file__).parent / "fixtures" / "gateways" / "waha"
WEBHOOKS = sorted(
    p.name for p in FIXTURES.glob("*.json") if not p.name.startswith("api.") and p.name != "message.group.noweb.json"
)


@pytest.fixture(scope="module")
def gateway() -> WahaGateway:
    return WahaGateway(Settings(_env_file=None), http=None)  # parsing needs no HTTP


def parse(gateway: WahaGateway, body: dict | bytes):  # noqa: ANN201
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
    document = parse(gateway, (FIXTURES / "message.document.json").read_bytes())[0]
    assert document.has_media and document.text == "" and document.media_type == "application/pdf"


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


def test_events_we_do_not_use_are_unknown_not_errors(gateway):
    reaction = parse(gateway, (FIXTURES / "message.reaction.json").read_bytes())[0]
    assert isinstance(reaction, UnknownEvent) and reaction.name == "message.reaction"


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
