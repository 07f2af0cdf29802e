"""WhatsApp connections: channels, QR pairing, status kept fresh, number association."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args

import asyncpg
import structlog
from databases import Database
from pydantic import BaseModel, ConfigDict, Field, model_validator

from backend.database import transaction
from backend.errors import Conflict, GatewayError, Invalid, NotFound
from backend.gateways.base import (
    ChannelRef,
    SessionState,
)
from backend.gateways.cloud import validate_config
from backend.gateways.ids import normalise_phone
from backend.http import Page, page_of
from backend.runtime import Runtime
from backend.services.assistants import get_assistant
from backend.settings import Settings
from backend.store import channels as store
from backend.store.channels import ChannelRow

log = structlog.get_logger(__name__)

Provider = Literal["sandbox", "waha", "evolution", "cloud"]
# Every finer state a channel can be in: the API schema's enum (the console words each one).
ChannelDetail = Literal[
    "starting", "scan_qr", "passkey", "working", "failed", "stopped", "logged_out", "qr_expired", "closed",
    "gateway_error", "number_conflict", "unknown",
]  # fmt: skip
CHANNEL_DETAILS = frozenset(get_args(ChannelDetail))
# Disconnections the operator must see until they act.
STICKY_DETAILS = {"logged_out", "number_conflict"}
QR_REFRESH_SECONDS = 10  # WAHA rotates its QR about every 20 s
QR_EXPIRED = "Nobody scanned the QR code in time. Reconnect to show a new one."
# Events carry the gateway's clock, operator actions ours; Evolution's time has whole seconds.
STALE_TOLERANCE = timedelta(seconds=1)


class CloudConfig(BaseModel):
    """What Meta's app settings give for one WhatsApp Business number (checked by `cloud.validate_config`)."""

    model_config = ConfigDict(extra="forbid")
    phone_number_id: str = Field(max_length=64, description="The number's id in Meta's WhatsApp Manager")
    access_token: str = Field(max_length=4096, description="A system user's permanent token")
    app_secret: str = Field(max_length=256, description="The app's secret: webhooks are signed with it")
    verify_token: str = Field(max_length=256, description="Any phrase; Meta repeats it to verify the callback URL")


class ChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assistant_id: int = Field(ge=1)
    provider: Provider | None = Field(default=None, description="Default GATEWAY_PROVIDER")
    config: CloudConfig | None = Field(default=None, description="Required for (and only for) the Cloud API")

    @model_validator(mode="after")
    def _config_only_for_cloud(self) -> ChannelCreate:
        if self.config is not None and self.provider not in (None, "cloud"):
            raise ValueError("config is only for the cloud provider")
        return self


class PairingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone_number: str = Field(
        min_length=6, max_length=32, description="The number to link, with its country code, e.g. +4915123456789"
    )


class PairingCode(BaseModel):
    channel_id: int
    phone_number: str
    code: str = Field(description="Type it on the phone: WhatsApp > Linked devices > Link with phone number")


class ChannelQuery(Page):
    assistant_id: int | None = Field(default=None, ge=1)


class Channel(BaseModel):
    id: int
    assistant_id: int
    provider: str
    status: Literal["pending_qr", "ready", "disconnected"]
    detail: ChannelDetail
    qr: str | None = Field(description="Raw QR string to render, only while pending_qr")
    phone_number: str | None
    phone_number_id: str | None = Field(default=None, description="Cloud API: the number's id at Meta")
    webhook_url: str | None = Field(default=None, description="Cloud API: the callback URL to paste into Meta's app settings")
    last_error: str | None
    last_event_at: datetime | None
    connected_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ChannelPage(BaseModel):
    items: list[Channel]
    total: int
    limit: int
    offset: int


# -- shared helpers (also used by the reply pipeline) --


async def get_channel(db: Database, channel_id: int) -> ChannelRow:
    """The channel row; NotFound when there is none."""
    channel = await store.find_channel(db, channel_id)
    if channel is None:
        raise NotFound(f"Channel {channel_id} does not exist.", code="channel_not_found")
    return channel


def channel_ref(channel: ChannelRow) -> ChannelRef:
    """What a gateway needs to know about a channel row."""
    return ChannelRef(
        id=channel.id,
        provider=channel.provider,
        session_name=channel.session_name,
        webhook_secret=channel.webhook_secret,
        config=channel.config,
    )


def webhook_url(settings: Settings, channel: ChannelRow) -> str:
    return f"{settings.public_base_url.rstrip('/')}/webhooks/{channel.provider}/{channel.id}"


def public_channel(channel: ChannelRow, settings: Settings) -> Channel:
    """The channel as operators see it: never the webhook secret nor the provider's secrets, the QR only while pending."""
    values = {name: getattr(channel, name) for name in Channel.model_fields if hasattr(channel, name)}
    if channel.status != "pending_qr":
        values["qr"] = None
    if channel.provider == "cloud":
        values.update(phone_number_id=channel.config.get("phone_number_id"), webhook_url=webhook_url(settings, channel))
    return Channel(**values)


def _now() -> datetime:
    return datetime.now(UTC)


# -- state --


def is_stale(channel: ChannelRow, at: datetime | None) -> bool:
    """An event emitted before the last status change applied: a late retry or a replay."""
    last = channel.status_event_at
    return at is not None and last is not None and at < last - STALE_TOLERANCE


async def apply_state(
    db: Database, channel: ChannelRow, state: SessionState, *, force: bool = False, at: datetime | None = None
) -> ChannelRow:
    """Record what the gateway says about a session; link the number when it becomes ready.

    `force` (an operator action) may replace a disconnection the operator has to see. `at` orders
    changes: when a status event was emitted, or when an operator action began; an event older than
    the last change applied is ignored (a replayed signed WORKING must not revive a logged-out number)."""
    async with transaction(db):
        # Webhooks, operator actions and reconciliation race: decide on the locked, current row.
        channel = await store.lock_channel(db, channel.id) or channel
        if not force and is_stale(channel, at):
            return channel
        current = channel.status
        sticky = current == "disconnected" and channel.detail in STICKY_DETAILS
        if sticky and not force and state.status != "ready":
            # Late webhooks (WAHA restarting into SCAN_QR_CODE after a logout) must not hide it;
            # only pairing again (ready) or an operator action moves on.
            return channel
        detail = state.detail if state.detail in CHANNEL_DETAILS else "unknown"
        if detail != state.detail:
            log.warning("channel.unknown_detail", channel=channel.id, detail=state.detail)
        changes: dict = {"status": state.status, "detail": detail, "last_error": state.error}
        if at is not None:
            last = channel.status_event_at
            changes["status_event_at"] = at if last is None else max(last, at)
        if state.status == "pending_qr":
            changes["qr"] = state.qr
            changes["qr_updated_at"] = _now() if state.qr else None
        else:
            changes["qr"] = None
            changes["qr_updated_at"] = None
        expiring = current == "pending_qr" or channel.detail == "qr_expired"
        if state.status == "disconnected" and state.detail == "failed" and expiring:
            changes["detail"] = "qr_expired"
            changes["last_error"] = QR_EXPIRED
        if state.phone_number:
            changes["phone_number"] = state.phone_number
        if state.status == "ready" and state.phone_number:
            await _link_number(db, channel, state.phone_number, changes)
        if changes["status"] == "ready" and current != "ready":
            changes["connected_at"] = _now()
        updated = await store.update_channel(db, channel.id, changes)
    if updated.status != current or updated.detail != channel.detail:
        log.info(
            "channel.status",
            channel=channel.id,
            provider=channel.provider,
            status=updated.status,
            detail=updated.detail,
        )
    return updated


async def _link_number(db: Database, channel: ChannelRow, phone: str, changes: dict) -> None:
    """A number serves one assistant: refuse it (in `changes`) when another one holds it."""
    await store.release_numbers(db, channel.id, keep=phone)
    if await store.link_number(db, phone, channel.assistant_id, channel.id) is not None:
        return
    holder = await store.find_number_holder(db, phone)
    who = f"assistant '{holder['assistant_name']}' (id {holder['assistant_id']})" if holder else "another assistant"
    changes.update(
        status="disconnected",
        detail="number_conflict",
        last_error=(
            f"The number {phone} is already linked to {who}. Log out or delete that assistant's "
            "channel first, then reconnect here with this number, or pair a different phone."
        ),
    )
    log.warning("channel.number_conflict", channel=channel.id, holder=holder and holder["assistant_id"])


async def refresh_channel(rt: Runtime, channel: ChannelRow) -> ChannelRow:
    """Ask the gateway for the session's state and record it (heals missed webhooks)."""
    gateway = rt.gateway(channel.provider)
    ref = channel_ref(channel)
    try:
        state = await gateway.get_state(ref)
        if channel.detail == "number_conflict":
            # The refused phone is still linked at the gateway: unlink it so it stops receiving.
            if state.status == "ready":
                await gateway.logout(ref)
            return channel
    except GatewayError as exc:
        return await store.update_channel(rt.db, channel.id, {"last_error": exc.message})
    return await apply_state(rt.db, channel, state)


# -- the connection API --


def valid_phone(value: str, field: str, what: str) -> str:
    """The number in E.164 form; Invalid naming `field` when it is not one."""
    phone = normalise_phone(value)
    if phone is None:
        raise Invalid(
            f"{what} is not a valid phone number.",
            details=[{"field": field, "message": "digits with the country code and an optional leading '+', e.g. +15550100000"}],
        )
    return phone


def _session_name(settings: Settings, provider: str, assistant_id: int, config: CloudConfig | None) -> str:
    if provider == "waha" and settings.waha_session_name:
        return settings.waha_session_name
    if config is not None:
        return f"cloud-{config.phone_number_id}"  # one channel per Cloud API number
    return f"wa-{assistant_id}-{secrets.token_hex(4)}"


async def create_channel(rt: Runtime, body: ChannelCreate) -> Channel:
    """Create a channel for an assistant and start pairing: pending_qr with a QR, or
    disconnected with the gateway's error (reconnect later)."""
    await get_assistant(rt.db, body.assistant_id)
    provider = body.provider or rt.settings.gateway_provider
    if provider == "cloud" and body.config is None:
        raise Invalid(
            "The Cloud API needs the number's id, a token, the app secret and a verify token.",
            details=[{"field": "config", "message": "required for the cloud provider"}],
        )
    session_name = _session_name(rt.settings, provider, body.assistant_id, body.config)
    config = validate_config(body.config.model_dump()) if body.config is not None else None
    try:
        channel = await store.insert_channel(rt.db, body.assistant_id, provider, session_name, secrets.token_urlsafe(32), config)
    except asyncpg.UniqueViolationError as exc:
        what = "This Cloud API number is" if provider == "cloud" else f"The {provider} session '{session_name}' is"
        raise Conflict(
            f"{what} already used by another channel (WAHA_SESSION_NAME allows one channel). Delete that channel first.",
            code="session_taken",
        ) from exc
    log.info("channel.created", channel=channel.id, provider=provider, assistant=body.assistant_id)
    started = _now()
    try:
        state = await rt.gateway(provider).start_session(channel_ref(channel), webhook_url(rt.settings, channel))
    except GatewayError as exc:
        log.warning("channel.start_failed", channel=channel.id, provider=provider, error=exc.message)
        failed = SessionState(status="disconnected", detail="gateway_error", error=exc.message)
        return public_channel(await apply_state(rt.db, channel, failed, force=True, at=started), rt.settings)
    return public_channel(await apply_state(rt.db, channel, state, force=True, at=started), rt.settings)


async def list_channels(rt: Runtime, query: ChannelQuery) -> dict:
    records, total = await store.list_channels(rt.db, query.assistant_id, query.limit, query.offset)
    return page_of([public_channel(r, rt.settings) for r in records], total, query)


async def read_channel(rt: Runtime, channel_id: int) -> Channel:
    """The channel; while pairing, a stale QR is fetched again (bounded, best effort)."""
    channel = await get_channel(rt.db, channel_id)
    updated_at = channel.qr_updated_at
    stale = updated_at is None or (_now() - updated_at).total_seconds() > QR_REFRESH_SECONDS
    if channel.status == "pending_qr" and channel.provider != "sandbox" and stale:
        try:
            channel = await asyncio.wait_for(refresh_channel(rt, channel), timeout=rt.settings.gateway_timeout_seconds)
        except TimeoutError:
            log.warning("channel.qr_refresh_timeout", channel=channel_id)
    return public_channel(channel, rt.settings)


async def reconnect_channel(rt: Runtime, channel_id: int) -> Channel:
    """Start pairing again (a new QR) or resume the session; works from any state."""
    channel = await get_channel(rt.db, channel_id)
    gateway = rt.gateway(channel.provider)
    ref = channel_ref(channel)
    started = _now()  # what the gateway says from now on answers this action
    try:
        if channel.detail == "number_conflict":
            await gateway.logout(ref)  # the refused phone must not come back by itself
        state = await gateway.restart(ref, webhook_url(rt.settings, channel))
    except GatewayError as exc:
        await store.update_channel(rt.db, channel_id, {"last_error": exc.message})
        raise
    log.info("channel.reconnect", channel=channel_id, status=state.status)
    return public_channel(await apply_state(rt.db, channel, state, force=True, at=started), rt.settings)


async def request_pairing_code(rt: Runtime, channel_id: int, body: PairingRequest) -> PairingCode:
    """Link a phone by the code WhatsApp shows instead of scanning the QR (the channel must be waiting for a scan)."""
    channel = await get_channel(rt.db, channel_id)
    phone = valid_phone(body.phone_number, "phone_number", "The phone number")
    if channel.status != "pending_qr":
        raise Conflict("This connection is not waiting to be paired: reconnect it first.", code="not_pairing")
    code = await rt.gateway(channel.provider).request_pairing_code(channel_ref(channel), phone)
    log.info("channel.pairing_code", channel=channel_id)
    return PairingCode(channel_id=channel_id, phone_number=phone, code=code)


async def logout_channel(rt: Runtime, channel_id: int) -> Channel:
    """Unpair the phone; the number is free for any assistant afterwards."""
    channel = await get_channel(rt.db, channel_id)
    started = _now()  # every status event emitted before the logout is stale from now on
    try:
        await rt.gateway(channel.provider).logout(channel_ref(channel))
    except GatewayError as exc:
        await store.update_channel(rt.db, channel_id, {"last_error": exc.message})
        raise
    logged_out = SessionState(status="disconnected", detail="logged_out")
    async with transaction(rt.db):
        await store.release_numbers(rt.db, channel_id)
        updated = await apply_state(rt.db, channel, logged_out, force=True, at=started)
    log.info("channel.logged_out", channel=channel_id)
    return public_channel(updated, rt.settings)


async def delete_channel(rt: Runtime, channel_id: int) -> None:
    """Delete the channel and its gateway session (best effort: a bridge that is down does not block it)."""
    channel = await get_channel(rt.db, channel_id)
    try:
        await rt.gateway(channel.provider).delete_session(channel_ref(channel))
    except GatewayError as exc:
        log.warning("channel.delete_session_failed", channel=channel_id, error=exc.message)
    async with transaction(rt.db):
        await store.release_numbers(rt.db, channel_id)
        await store.delete_channel(rt.db, channel_id)
    log.info("channel.deleted", channel=channel_id)
