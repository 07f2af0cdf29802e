"""The WhatsApp Cloud API gateway against a fake Graph API on loopback, and Meta's real payload
examples (tests/fixtures/gateways/cloud/) as provider-neutral events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import REGISTRY

from backend.errors import Invalid
from backend.gateways import make_gateway
from backend.gateways.base import ChannelRef, InboundMessage, MediaRef, MessageAck, ReactionEvent, UnknownEvent
from backend.gateways.cloud import CloudGateway, handshake_challenge, validate_config
from backend.gateways.errors import (
    MediaTooLarge,
    MediaUnavailable,
    NotSupported,
    RateLimited,
    TokenInvalid,
    WindowClosed,
    retryable,
)
from backend.settings import Settings
from tests.fakes.graph_api import FakeGraphApi, fake_graph_api, message_webhook, sign, status_webhook  # noqa: F401

FIXTURES = Path(__file__).parent / "fixtures" / "gateways" / "cloud"
NUMBER_ID = "106540352242922"  # the examples' phone_number_id
TOKEN = "EAAG-test-token"
APP_SECRET = "a-test-app-secret"
VERIFY_TOKEN = "verify-me-please"
CHANNEL = ChannelRef(
    id=7,
    provider="cloud",
    session_name="cloud-7",
    webhook_secret="unused",
    config={"phone_number_id": NUMBER_ID, "access_token": TOKEN, "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN},
)


@pytest.fixture
async def cloud(fake_graph_api: FakeGraphApi) -> AsyncIterator[CloudGateway]:  # noqa: F811
    fake_graph_api.add_number(NUMBER_ID, token=TOKEN)
    settings = Settings(_env_file=None, cloud_api_url=fake_graph_api.url, gateway_timeout_seconds=5, gateway_attempts=3)
    async with aiohttp.ClientSession() as http:
        yield make_gateway("cloud", settings, http, db=None)


@pytest.fixture(scope="module")
def parser() -> CloudGateway:
    return CloudGateway(Settings(_env_file=None), http=None)  # parsing needs no HTTP


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# -- the number --


async def test_a_good_token_makes_the_channel_ready_with_the_number_and_its_name(cloud):
    state = await cloud.start_session(CHANNEL, "http://127.0.0.1/webhooks/cloud/7")
    assert (state.status, state.detail, state.phone_number, state.display_name) == (
        "ready",
        "working",
        "+15550783881",
        "Jasper's Market",
    )


async def test_a_token_meta_rejects_disconnects_with_a_reason_a_person_can_act_on(cloud, fake_graph_api):  # noqa: F811
    fake_graph_api.expire_token(TOKEN)
    state = await cloud.get_state(CHANNEL)
    assert state.status == "disconnected"
    assert "access token" in state.error and "190" in state.error and "Session has expired" in state.error
    assert TOKEN not in state.error


async def test_a_wrong_number_id_disconnects_with_meta_s_reason(cloud):
    other = ChannelRef(7, "cloud", "c", "s", config={**CHANNEL.config, "phone_number_id": "999"})
    state = await cloud.get_state(other)
    assert state.status == "disconnected" and "does not exist" in state.error


def test_the_secret_config_never_shows_in_a_repr():
    assert TOKEN not in repr(CHANNEL) and APP_SECRET not in repr(CHANNEL) and "unused" not in repr(CHANNEL)


def test_config_is_validated_with_a_clear_error():
    assert validate_config({**CHANNEL.config, "phone_number_id": f" {NUMBER_ID} "})["phone_number_id"] == NUMBER_ID
    with pytest.raises(Invalid, match="app_secret, verify_token"):
        validate_config({"phone_number_id": NUMBER_ID, "access_token": TOKEN})
    with pytest.raises(Invalid, match="digits only"):
        validate_config({**CHANNEL.config, "phone_number_id": "../me"})


async def test_pairing_codes_are_not_a_cloud_api_thing(cloud):
    with pytest.raises(NotSupported, match="Meta's app dashboard"):
        await cloud.request_pairing_code(CHANNEL, "+15550100000")


# -- sending --


async def test_send_text_returns_the_wamid_and_quotes_the_customer_s_message(cloud, fake_graph_api):  # noqa: F811
    sent = await cloud.send_text(CHANNEL, "16505551234", "It comes in blue too.")
    assert sent.provider_message_id.startswith("wamid.")
    quoted = await cloud.send_text(CHANNEL, "16505551234", "And in red.", reply_to="wamid.CUSTOMER")
    plain, reply = fake_graph_api.sent
    assert plain == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "16505551234",
        "type": "text",
        "text": {"preview_url": False, "body": "It comes in blue too."},
    }
    assert reply["context"] == {"message_id": "wamid.CUSTOMER"} and quoted.provider_message_id != sent.provider_message_id


async def test_calls_are_measured_under_the_lowercase_provider_name(cloud):
    labels = {"provider": "cloud", "operation": "send_text", "outcome": "ok"}
    before = REGISTRY.get_sample_value("wa_gateway_call_seconds_count", labels) or 0
    await cloud.send_text(CHANNEL, "16505551234", "Counted")
    assert REGISTRY.get_sample_value("wa_gateway_call_seconds_count", labels) == before + 1


async def test_a_username_user_is_sent_to_by_business_scoped_id(cloud, fake_graph_api):  # noqa: F811
    await cloud.send_text(CHANNEL, "US.13491208655302741918", "Hello")
    assert fake_graph_api.sent[0]["recipient"] == "US.13491208655302741918" and "to" not in fake_graph_api.sent[0]


async def test_read_receipt_and_typing_go_in_one_call_on_the_newest_message(cloud, fake_graph_api):  # noqa: F811
    await cloud.mark_seen(CHANNEL, "16505551234", ["wamid.OLD", "wamid.NEW"])
    await cloud.set_typing(CHANNEL, "16505551234", True)  # rides on the read receipt: no call of its own
    assert fake_graph_api.calls == [
        (
            "mark_read",
            {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.NEW", "typing_indicator": {"type": "text"}},
        )
    ]


async def test_outside_the_24_hour_window_raises_window_closed_and_is_not_retried(cloud, fake_graph_api):  # noqa: F811
    fake_graph_api.fail_next_send(131047, times=3)
    with pytest.raises(WindowClosed, match="24 hours") as caught:
        await cloud.send_text(CHANNEL, "16505551234", "Late answer")
    assert not retryable(caught.value) and caught.value.code == "window_closed"
    posts = [r for r in fake_graph_api.requests if r[0] == "POST"]
    assert len(posts) == 1 and fake_graph_api.sent == []


async def test_a_rate_limit_is_retried_with_back_off_then_the_message_goes_once(cloud, fake_graph_api):  # noqa: F811
    fake_graph_api.fail_next_send(130429, times=2)
    sent = await cloud.send_text(CHANNEL, "16505551234", "Busy day")
    assert sent.provider_message_id and len(fake_graph_api.sent) == 1
    assert len([r for r in fake_graph_api.requests if r[0] == "POST"]) == 3


async def test_a_rate_limit_that_lasts_is_raised_as_retryable(cloud, fake_graph_api):  # noqa: F811
    fake_graph_api.fail_next_send(131056, times=3)
    with pytest.raises(RateLimited) as caught:
        await cloud.send_text(CHANNEL, "16505551234", "Again")
    assert retryable(caught.value) and fake_graph_api.sent == []


async def test_an_expired_token_on_send_is_token_invalid_not_retryable(cloud, fake_graph_api):  # noqa: F811
    fake_graph_api.expire_token(TOKEN)
    with pytest.raises(TokenInvalid) as caught:
        await cloud.send_text(CHANNEL, "16505551234", "Hi")
    assert not retryable(caught.value)


async def test_a_text_longer_than_whatsapp_allows_is_refused_before_sending(cloud, fake_graph_api):  # noqa: F811
    with pytest.raises(Invalid, match="4096"):
        await cloud.send_text(CHANNEL, "16505551234", "x" * 4097)
    assert fake_graph_api.requests == []


async def test_there_is_no_history_to_find_a_sent_message_in(cloud):
    assert await cloud.find_recent_outgoing(CHANNEL, "16505551234", "Hi") is None


# -- media --


async def test_media_is_downloaded_by_id_with_the_token_both_times(cloud, fake_graph_api):  # noqa: F811
    voice = b"OggS\x00\x02" + bytes(range(256)) * 40
    media_id = fake_graph_api.add_media(voice, "audio/ogg")
    data = await cloud.download_media(CHANNEL, MediaRef(kind="voice", handle=media_id), max_bytes=1_000_000)
    assert data == voice
    assert fake_graph_api.downloads == [f"Bearer {TOKEN}"]


async def test_media_that_arrives_damaged_is_refused_and_can_be_retried(cloud, fake_graph_api):  # noqa: F811
    media_id = fake_graph_api.add_media(b"\x89PNG" + b"\x01" * 3000, "image/png")
    fake_graph_api.damage_downloads = True
    with pytest.raises(MediaUnavailable, match="SHA-256") as caught:
        await cloud.download_media(CHANNEL, MediaRef(kind="image", handle=media_id), max_bytes=1_000_000)
    assert retryable(caught.value)
    fake_graph_api.damage_downloads = False
    assert len(await cloud.download_media(CHANNEL, MediaRef(kind="image", handle=media_id), max_bytes=1_000_000)) == 3004


async def test_media_over_the_limit_is_refused_before_its_download(cloud, fake_graph_api):  # noqa: F811
    media_id = fake_graph_api.add_media(b"\xff" * 5000, "image/jpeg")
    with pytest.raises(MediaTooLarge) as caught:
        await cloud.download_media(CHANNEL, MediaRef(kind="image", handle=media_id), max_bytes=4096)
    assert not retryable(caught.value) and fake_graph_api.downloads == []


async def test_a_location_has_nothing_to_download(cloud):
    with pytest.raises(NotSupported):
        await cloud.download_media(CHANNEL, MediaRef(kind="location", description="52.5, 13.4"), max_bytes=10)


# -- webhooks --


def test_a_signature_over_the_raw_body_is_accepted_and_anything_else_refused(parser):
    body = fixture("webhook.messages.text.json")
    good = {"x-hub-signature-256": sign(body, APP_SECRET)}
    assert parser.check_webhook_headers(CHANNEL, good) and parser.verify_webhook(CHANNEL, good, body)
    assert parser.verify_webhook(CHANNEL, {"X-Hub-Signature-256": sign(body, APP_SECRET)}, body)  # any header case
    assert not parser.verify_webhook(CHANNEL, good, body.replace(b"color", b"colour"))  # re-serialised or changed
    assert not parser.verify_webhook(CHANNEL, {"x-hub-signature-256": sign(body, "another-secret")}, body)
    no_secret = ChannelRef(7, "cloud", "c", "s", config={**CHANNEL.config, "app_secret": ""})
    assert not parser.verify_webhook(no_secret, good, body)


def test_a_post_without_the_signature_header_is_refused_before_its_body_is_read(parser):
    assert not parser.check_webhook_headers(CHANNEL, {})
    assert not parser.check_webhook_headers(CHANNEL, {"x-hub-signature-256": "sha1=abc"})
    assert not parser.check_webhook_headers(CHANNEL, {"x-hub-signature-256": "sha256=not-hex"})


def test_the_subscription_handshake_echoes_the_challenge_only_for_our_verify_token(parser):
    asked = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": VERIFY_TOKEN}
    assert parser.verification_challenge(CHANNEL, asked) == "1158201444"
    assert parser.verification_challenge(CHANNEL, {**asked, "hub.verify_token": "guess"}) is None
    assert parser.verification_challenge(CHANNEL, {**asked, "hub.mode": "unsubscribe"}) is None
    assert parser.verification_challenge(CHANNEL, {**asked, "hub.challenge": "<script>"}) is None
    assert handshake_challenge(asked, "") is None  # a channel without a verify token answers nobody


def test_a_customer_text_message(parser):
    [message] = parser.parse_webhook({}, fixture("webhook.messages.text.json"), CHANNEL)
    assert isinstance(message, InboundMessage)
    assert message.provider_message_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
    assert (message.chat_id, message.sender_id, message.sender_phone) == ("16505551234", "16505551234", "+16505551234")
    assert message.text == "Does it come in another color?" and message.sender_name == "Sheena Nelson"
    assert message.timestamp.year == 2025 and not message.has_media and not message.from_me


def test_a_voice_note_carries_its_media_id(parser):
    [voice] = parser.parse_webhook({}, fixture("webhook.messages.audio.voice.json"), CHANNEL)
    assert voice.has_media and voice.text == "" and voice.media_type == "audio/ogg; codecs=opus"
    assert voice.media == MediaRef(
        kind="voice",
        handle="1003383421387256",
        mimetype="audio/ogg; codecs=opus",
        sha256="k6mTFx2fqwIu8vNBuV2L2p3T3n6jWx8XyP4G1WcS5eM=",
    )


def test_a_reaction_and_its_removal(parser):
    [reaction] = parser.parse_webhook({}, fixture("webhook.messages.reaction.json"), CHANNEL)
    assert isinstance(reaction, ReactionEvent)
    assert reaction.reacted_to == "wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA"
    assert (reaction.emoji, reaction.sender_id, reaction.removed) == ("👍", "16505551234", False)
    doc = json.loads(fixture("webhook.messages.reaction.json"))
    doc["entry"][0]["changes"][0]["value"]["messages"][0]["reaction"].pop("emoji")
    [removed] = parser.parse_webhook({}, json.dumps(doc).encode(), CHANNEL)
    assert removed.removed


def test_a_failed_status_carries_meta_s_code_and_title(parser):
    [ack] = parser.parse_webhook({}, fixture("webhook.statuses.failed.131047.json"), CHANNEL)
    assert ack == MessageAck(
        provider_message_id="wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA",
        status="failed",
        error_code="131047",
        error="Re-engagement message",
    )
    for status in ("sent", "delivered", "read"):
        [ack] = parser.parse_webhook({}, status_webhook(NUMBER_ID, "wamid.X", status), CHANNEL)
        assert (ack.status, ack.error_code) == (status, None)


def test_the_business_scoped_user_id_is_the_contact_s_identity_when_meta_gives_one(parser):
    [message] = parser.parse_webhook({}, message_webhook(NUMBER_ID, "16505551234", "hi", user_id="US.1349120865530274"), CHANNEL)
    assert (message.chat_id, message.sender_id, message.sender_phone) == ("US.1349120865530274",) * 2 + ("+16505551234",)
    doc = json.loads(message_webhook(NUMBER_ID, "16505551234", "hi", user_id="US.1349120865530274"))
    value = doc["entry"][0]["changes"][0]["value"]
    value["contacts"][0].pop("wa_id")
    value["messages"][0].pop("from")  # a username user: no phone number at all
    [hidden] = parser.parse_webhook({}, json.dumps(doc).encode(), CHANNEL)
    assert hidden.chat_id == "US.1349120865530274" and hidden.sender_phone is None


def one_message(parser, message: dict) -> InboundMessage:  # the parser fixture
    """The text fixture's message with its text replaced by `message` (a type and its object), parsed."""
    doc = json.loads(fixture("webhook.messages.text.json"))
    base = doc["entry"][0]["changes"][0]["value"]["messages"][0]
    base.pop("text")
    base.update(message)
    return parser.parse_webhook({}, json.dumps(doc).encode(), CHANNEL)[0]


def test_media_kinds_captions_locations_and_contacts(parser):
    def one(message: dict) -> InboundMessage:
        return one_message(parser, message)

    image = one({"type": "image", "image": {"id": "55", "mime_type": "image/jpeg", "caption": "this one?"}})
    assert (image.media.kind, image.text, image.media.caption) == ("image", "this one?", "this one?")
    document = one({"type": "document", "document": {"id": "56", "mime_type": "application/pdf", "filename": "menu.pdf"}})
    assert (document.media.kind, document.media.filename, document.text) == ("document", "menu.pdf", "")
    sticker = one({"type": "sticker", "sticker": {"id": "57", "mime_type": "image/webp", "animated": False}})
    video = one({"type": "video", "video": {"id": "58", "mime_type": "video/mp4"}})
    audio = one({"type": "audio", "audio": {"id": "59", "mime_type": "audio/mpeg"}})  # a file, not a voice note
    assert (sticker.media.kind, video.media.kind, audio.media.kind) == ("sticker", "video", "audio")
    location = one(
        {"type": "location", "location": {"latitude": 52.52, "longitude": 13.40, "name": "Shop", "address": "Main St 1"}}
    )
    assert location.has_media and not location.media.downloadable and location.media.description == "52.52, 13.4 — Shop Main St 1"
    card = {"name": {"formatted_name": "Ana Lima"}, "phones": [{"phone": "+55 11 91111-2222", "wa_id": "5511911112222"}]}
    contacts = one({"type": "contacts", "contacts": [card]})
    assert contacts.media.kind == "contacts" and contacts.media.description == "Ana Lima +55 11 91111-2222"
    assert isinstance(one({"type": "unsupported", "errors": [{"code": 131051}]}), UnknownEvent)


def test_events_for_the_app_s_other_numbers_and_other_fields_are_unknown(parser):
    other = message_webhook("200000000000001", "16505551234", "hi")
    assert [type(e) for e in parser.parse_webhook({}, other, CHANNEL)] == [UnknownEvent]
    assert isinstance(parser.parse_webhook({}, other)[0], InboundMessage)  # without a channel nothing is filtered
    doc = json.loads(fixture("webhook.messages.text.json"))
    doc["entry"][0]["changes"][0]["field"] = "account_update"
    assert parser.parse_webhook({}, json.dumps(doc).encode(), CHANNEL)[0].name == "field.account_update"


def _change(value: dict) -> bytes:
    change = {"field": "messages", "value": {"metadata": {"phone_number_id": NUMBER_ID}, **value}}
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"changes": [change]}]}).encode()


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"object": "whatsapp_business_account"}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": "x"}]}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": {}}]}]}',
        _change({"messages": ["x"]}),
        _change({"messages": [{"id": "w"}]}),
        _change({"messages": [{"id": "w", "type": "text"}]}),  # nobody sent it
        _change({"messages": [{"id": "w", "type": "image", "from": "1", "image": {}}]}),
        _change({"statuses": [{"id": "w"}]}),
        _change({"messages": "x"}),
    ],
)
def test_malformed_webhooks_are_errors(parser, body):
    with pytest.raises(ValueError):
        parser.parse_webhook({}, body, CHANNEL)


def test_every_api_answer_example_is_understood():
    from backend.gateways.cloud import graph_error

    token = graph_error(401, json.loads(fixture("api.error.token.json")))
    assert isinstance(token, TokenInvalid) and "Session has expired" in token.message
    sent = json.loads(fixture("api.messages.send.response.json"))
    assert sent["messages"][0]["id"].startswith("wamid.")
    media = json.loads(fixture("api.media.get.response.json"))
    assert media["url"].startswith("https://") and media["file_size"] == 9582
    number = json.loads(fixture("api.phone_number.get.response.json"))
    assert number["display_phone_number"] == "+1 555-078-3881"


def test_a_sender_declared_mimetype_that_a_browser_would_run_is_not_kept(parser):
    """A modified client may declare a voice note as text/html or an image as SVG: stored, it would reach the console's
    media widgets and the file route, and run script on the console's origin."""

    def one(message: dict) -> InboundMessage:
        return one_message(parser, message)

    voice = one({"type": "audio", "audio": {"id": "60", "mime_type": "text/html", "voice": True}})
    svg = one({"type": "image", "image": {"id": "61", "mime_type": "image/svg+xml"}})
    video = one({"type": "video", "video": {"id": "62", "mime_type": "text/html; charset=utf-8"}})
    assert [m.media.mimetype for m in (voice, svg, video)] == ["application/octet-stream"] * 3
    real = one({"type": "audio", "audio": {"id": "63", "mime_type": "audio/ogg; codecs=opus", "voice": True}})
    assert real.media.mimetype == "audio/ogg; codecs=opus"
