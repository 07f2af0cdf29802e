"""The sandbox gateway's pretend phone: scan its QR, write as a customer, read what the bot sent."""

from __future__ import annotations

from datetime import datetime

from databases import Database
from pydantic import BaseModel, ConfigDict, Field

from backend.errors import Conflict, Invalid
from backend.gateways.ids import normalise_phone
from backend.http import Page, page_of
from backend.runtime import Runtime
from backend.services.channels import Channel, channel_ref, get_channel, public_channel
from backend.services.webhooks import handle_webhook
from backend.store import channels as store
from backend.store.channels import ChannelRow


class SandboxScan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone_number: str | None = Field(default=None, max_length=32, description="Default +1555 followed by the channel id")


class SandboxMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    sender: str = Field(alias="from", min_length=1, max_length=32, description="The customer's phone number")
    text: str = Field(min_length=1, max_length=16000)
    id: str | None = Field(default=None, min_length=1, max_length=200, description="Provider id; a repeat is a duplicate")
    name: str | None = Field(default=None, max_length=200)


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


def _phone(value: str, field: str, what: str) -> str:
    phone = normalise_phone(value)
    if phone is None:
        raise Invalid(
            f"{what} is not a valid phone number.",
            details=[{"field": field, "message": "digits with an optional leading '+', e.g. +15550100000"}],
        )
    return phone


async def sandbox_scan(rt: Runtime, channel_id: int, body: SandboxScan) -> Channel:
    """Pretend a phone scanned the QR: the channel becomes ready as that number."""
    channel = await _sandbox_channel(rt.db, channel_id)
    phone = (
        f"+1555{channel_id:07d}" if body.phone_number is None else _phone(body.phone_number, "phone_number", "The phone number")
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
    sender = _phone(body.sender, "from", "The sender")
    gateway = rt.gateway("sandbox")
    ref = channel_ref(channel)
    webhook = await gateway.inbound(ref, sender, body.text, body.id, name=body.name)
    result = await handle_webhook(rt, "sandbox", channel_id, gateway.webhook_headers(ref), webhook, request_id=request_id)
    provider_id = gateway.parse_webhook({}, webhook)[0].provider_message_id
    return SandboxDelivery(channel_id=channel_id, provider_message_id=provider_id, outcome=result.outcomes[0])


async def sandbox_outbox(db: Database, channel_id: int, page: Page) -> dict:
    await _sandbox_channel(db, channel_id)
    records, total = await store.list_outbox(db, channel_id, page.limit, page.offset)
    return page_of([OutboxItem(**r) for r in records], total, page)
