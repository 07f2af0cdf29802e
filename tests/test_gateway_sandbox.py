"""The sandbox gateway's media, reactions and pairing code: what the pretend phone sends comes back
out of the gateway as provider-neutral events and bytes."""

from __future__ import annotations

import pytest

from backend.errors import Conflict, Invalid
from backend.gateways.base import InboundMessage, MediaRef, ReactionEvent
from backend.gateways.errors import MediaTooLarge, NotSupported
from backend.gateways.sandbox import SandboxGateway
from backend.services.channels import channel_ref, get_channel
from tests.channel_support import connect_channel, new_assistant


@pytest.fixture
async def sandbox(api, backend):
    channel = await connect_channel(api, await new_assistant(api))
    rt = backend.app.ctx.runtime
    ref = channel_ref(await get_channel(rt.db, channel["id"]))
    return rt.gateway("sandbox"), ref, api


async def test_a_voice_note_sent_by_the_pretend_phone_comes_back_as_its_bytes(sandbox):
    gateway, ref, api = sandbox
    await api.post(f"/api/channels/{ref.id}/sandbox/scan", json={})
    voice = b"OggS\x00\x02" + bytes(range(256)) * 8
    body = await gateway.inbound(ref, "+15550109999", "", None, media=voice, mimetype="audio/ogg; codecs=opus")
    [message] = gateway.parse_webhook(SandboxGateway.webhook_headers(ref), body)
    assert isinstance(message, InboundMessage) and message.has_media and message.media.kind == "voice"
    assert message.media.size == len(voice) and message.media_type == "audio/ogg; codecs=opus"
    assert await gateway.download_media(ref, message.media, max_bytes=10_000) == voice
    with pytest.raises(MediaTooLarge):
        await gateway.download_media(ref, message.media, max_bytes=100)


async def test_an_image_with_a_caption_and_a_message_without_a_file(sandbox):
    gateway, ref, api = sandbox
    await api.post(f"/api/channels/{ref.id}/sandbox/scan", json={})
    body = await gateway.inbound(ref, "+15550109999", "is this in stock?", None, media=b"\xff\xd8jpeg", mimetype="image/jpeg")
    [image] = gateway.parse_webhook({}, body)
    assert (image.text, image.media.kind, image.media.caption) == ("is this in stock?", "image", "is this in stock?")
    with pytest.raises(NotSupported):
        await gateway.download_media(ref, MediaRef(kind="image", handle="sandbox-in-x"), max_bytes=100)


async def test_a_reaction_from_the_pretend_phone(sandbox):
    gateway, ref, api = sandbox
    await api.post(f"/api/channels/{ref.id}/sandbox/scan", json={})
    [reaction] = gateway.parse_webhook({}, await gateway.react(ref, "+15550109999", "sandbox-out-1", "👍"))
    assert isinstance(reaction, ReactionEvent) and (reaction.reacted_to, reaction.emoji) == ("sandbox-out-1", "👍")


async def test_the_demo_pairing_code_is_given_only_while_waiting_for_a_scan(sandbox):
    gateway, ref, api = sandbox
    assert await gateway.request_pairing_code(ref, "+1 555 010 0001") == f"SAND-{ref.id % 10000:04d}"
    with pytest.raises(Invalid):
        await gateway.request_pairing_code(ref, "not a number")
    await api.post(f"/api/channels/{ref.id}/sandbox/scan", json={})
    with pytest.raises(Conflict):
        await gateway.request_pairing_code(ref, "+15550100001")


def test_a_malformed_sandbox_media_is_an_error():
    gateway = SandboxGateway(db=None)
    with pytest.raises(ValueError):
        gateway.parse_webhook({}, b'{"event": "message", "payload": {"id": "x", "from": "+1555", "media": {"kind": "voice"}}}')
