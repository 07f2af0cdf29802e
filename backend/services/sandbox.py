"""The sandbox gateway's pretend phone: scan its QR, write as a customer, read what the bot sent."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from databases import Database
from pydantic import BaseModel, ConfigDict, Field, model_validator

from backend.errors import Conflict, Invalid
from backend.http import Page, page_of
from backend.runtime import Runtime
from backend.services.channels import Channel, channel_ref, get_channel, public_channel, valid_phone
from backend.services.webhooks import handle_webhook
from backend.store import channels as store
from backend.store.channels import ChannelRow


class SandboxScan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone_number: str | None = Field(default=None, max_length=32, description="Default +1555 followed by the channel id")


class SandboxMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    sender: str = Field(alias="from", min_length=1, max_length=32, description="The customer's phone number")
    text: str = Field(default="", max_length=16000, description="The message, or a file's caption")
    id: str | None = Field(default=None, min_length=1, max_length=200, description="Provider id; a repeat is a duplicate")
    name: str | None = Field(default=None, max_length=200)
    media_base64: str | None = Field(default=None, description="A file sent with it (a voice note, an image...), base64")
    mimetype: str | None = Field(default=None, max_length=100, pattern=r"^[\w.+-]+/[\w.+-]+(;.*)?$")
    filename: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _words_or_a_file(self) -> SandboxMessage:
        if not self.text.strip() and not self.media_base64:
            raise ValueError("a message needs a text or a file")
        if self.media_base64 and not self.mimetype:
            raise ValueError("a file needs its mimetype")
        return self


class SandboxReaction(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    sender: str = Field(alias="from", min_length=1, max_length=32, description="The customer's phone number")
    message_id: str = Field(min_length=1, max_length=200, description="The provider id of the bot's reply reacted to")
    emoji: str = Field(max_length=16, description='The emoji; "" takes the reaction back')


class SandboxDelivery(BaseModel):
    channel_id: int
    provider_message_id: str
    outcome: str


class OutboxItem(BaseModel):
    id: int
    provider_message_id: str
    chat_id: str
    text: str
    created_at: datetime


class OutboxPage(BaseModel):
    items: list[OutboxItem]
    total: int
    limit: int
    offset: int


async def _sandbox_channel(db: Database, channel_id: int) -> ChannelRow:
    channel = await get_channel(db, channel_id)
    if channel.provider != "sandbox":
        raise Conflict(f"Channel {channel_id} uses {channel.provider}, not the sandbox.", code="not_sandbox")
    return channel


async def sandbox_scan(rt: Runtime, channel_id: int, body: SandboxScan) -> Channel:
    """Pretend a phone scanned the QR: the channel becomes ready as that number."""
    channel = await _sandbox_channel(rt.db, channel_id)
    phone = (
        f"+1555{channel_id:07d}"
        if body.phone_number is None
        else valid_phone(body.phone_number, "phone_number", "The phone number")
    )
    gateway = rt.gateway("sandbox")
    ref = channel_ref(channel)
    webhook = await gateway.scan(ref, phone)
    await handle_webhook(rt, "sandbox", channel_id, gateway.webhook_headers(ref), webhook)
    return public_channel(await get_channel(rt.db, channel_id), rt.settings)


async def sandbox_message(
    rt: Runtime, channel_id: int, body: SandboxMessage, *, request_id: str | None = None
) -> SandboxDelivery:
    """A customer writes to the sandbox number: delivered exactly like a gateway webhook."""
    channel = await _sandbox_channel(rt.db, channel_id)
    sender = valid_phone(body.sender, "from", "The sender")
    gateway = rt.gateway("sandbox")
    ref = channel_ref(channel)
    media = None
    if body.media_base64:
        try:
            media = base64.b64decode(body.media_base64, validate=True)
        except binascii.Error:
            raise Invalid("The file is not valid base64.", details=[{"field": "media_base64", "message": "not base64"}]) from None
    webhook = await gateway.inbound(
        ref, sender, body.text, body.id, name=body.name, media=media, mimetype=body.mimetype, filename=body.filename
    )
    result = await handle_webhook(rt, "sandbox", channel_id, gateway.webhook_headers(ref), webhook, request_id=request_id)
    provider_id = gateway.parse_webhook({}, webhook)[0].provider_message_id
    return SandboxDelivery(channel_id=channel_id, provider_message_id=provider_id, outcome=result.outcomes[0])


async def sandbox_reaction(rt: Runtime, channel_id: int, body: SandboxReaction) -> SandboxDelivery:
    """A customer reacts to one of the bot's replies: delivered exactly like a gateway webhook."""
    channel = await _sandbox_channel(rt.db, channel_id)
    sender = valid_phone(body.sender, "from", "The sender")
    gateway = rt.gateway("sandbox")
    ref = channel_ref(channel)
    webhook = await gateway.react(ref, sender, body.message_id, body.emoji)
    result = await handle_webhook(rt, "sandbox", channel_id, gateway.webhook_headers(ref), webhook)
    return SandboxDelivery(channel_id=channel_id, provider_message_id=body.message_id, outcome=result.outcomes[0])


async def sandbox_outbox(db: Database, channel_id: int, page: Page) -> dict:
    await _sandbox_channel(db, channel_id)
    records, total = await store.list_outbox(db, channel_id, page.limit, page.offset)
    return page_of([OutboxItem(**r) for r in records], total, page)
