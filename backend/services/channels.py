"""WhatsApp connections: channels, QR pairing, status kept fresh, number association, webhooks."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Literal

import asyncpg
import structlog
from databases import Database
from pydantic import BaseModel, ConfigDict, Field

from backend.database import pool_of
from backend.errors import Conflict, GatewayError, Invalid, NotFound, Unauthorized, Unavailable
from backend.gateways.base import (
    ChannelRef,
    GatewayEvent,
    InboundMessage,
    MessageAck,
    QrUpdated,
    SessionState,
    SessionStatusEvent,
)
from backend.gateways.ids import normalise_phone
from backend.http import Page, page_of
from backend.runtime import Runtime
from backend.services.assistants import get_assistant
from backend.settings import Settings
from backend.store import channels as store

log = structlog.get_logger(__name__)

Provider = Literal["sandbox", "waha", "evolution"]
# Disconnections the operator must see until they act.
STICKY_DETAILS = {"logged_out", "number_conflict"}
QR_REFRESH_SECONDS = 10  # WAHA rotates its QR about every 20 s
TOUCH_EVERY_SECONDS = 5  # last_event_at is for reconciliation: a few seconds' precision is plenty
QR_EXPIRED = "Nobody scanned the QR code in time. Reconnect to show a new one."
# Events carry the gateway's clock, operator actions ours; Evolution's time has whole seconds.
STALE_TOLERANCE = timedelta(seconds=1)
WEBHOOK_REFUSED = "The webhook's channel, signature or secret is wrong or missing."


class ChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assistant_id: int = Field(ge=1)
    provider: Provider | None = Field(default=None, description="Default GATEWAY_PROVIDER")


class ChannelQuery(Page):
    assistant_id: int | None = Field(default=None, ge=1)


class Channel(BaseModel):
    id: int
    assistant_id: int
    provider: str
    status: Literal["pending_qr", "ready", "disconnected"]
    detail: str
    qr: str | None = Field(description="Raw QR string to render, only while pending_qr")
    phone_number: str | None
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


class WebhookResult(BaseModel):
    received: int
    outcomes: list[str]


# -- shared helpers (also used by the reply pipeline) --


async def get_channel(db: Database, channel_id: int) -> dict:
    """The channel row as a dict; NotFound when there is none."""
    channel = await store.find_channel(db, channel_id)
    if channel is None:
        raise NotFound(f"Channel {channel_id} does not exist.", code="channel_not_found")
    return channel


def channel_ref(channel: Mapping) -> ChannelRef:
    """What a gateway needs to know about a channel row."""
    return ChannelRef(
        id=channel["id"],
        provider=channel["provider"],
        session_name=channel["session_name"],
        webhook_secret=channel["webhook_secret"],
    )


def webhook_url(settings: Settings, channel: Mapping) -> str:
    return f"{settings.public_base_url.rstrip('/')}/webhooks/{channel['provider']}/{channel['id']}"


def public_channel(channel: Mapping) -> Channel:
    """The channel as operators see it: never the webhook secret, the QR only while pending."""
    values = {name: channel[name] for name in Channel.model_fields}
    if channel["status"] != "pending_qr":
        values["qr"] = None
    return Channel(**values)


def _now() -> datetime:
    return datetime.now(UTC)


# -- state --


def is_stale(channel: Mapping, at: datetime | None) -> bool:
    """An event emitted before the last status change applied: a late retry or a replay."""
    last = channel.get("status_event_at")
    return at is not None and last is not None and at < last - STALE_TOLERANCE


async def apply_state(
    db: Database, channel: dict, state: SessionState, *, force: bool = False, at: datetime | None = None
) -> dict:
    """Record what the gateway says about a session; link the number when it becomes ready.

    `force` (an operator action) may replace a disconnection the operator has to see. `at` orders
    changes: when a status event was emitted, or when an operator action began; an event older than
    the last change applied is ignored (a replayed signed WORKING must not revive a logged-out number)."""
    async with db.transaction():
        # Webhooks, operator actions and reconciliation race: decide on the locked, current row.
        channel = await store.lock_channel(db, channel["id"]) or channel
        if not force and is_stale(channel, at):
            return channel
        current = channel["status"]
        sticky = current == "disconnected" and channel["detail"] in STICKY_DETAILS
        if sticky and not force and state.status != "ready":
            # Late webhooks (WAHA restarting into SCAN_QR_CODE after a logout) must not hide it;
            # only pairing again (ready) or an operator action moves on.
            return channel
        changes: dict = {"status": state.status, "detail": state.detail, "last_error": state.error}
        if at is not None:
            last = channel["status_event_at"]
            changes["status_event_at"] = at if last is None else max(last, at)
        if state.status == "pending_qr":
            changes["qr"] = state.qr
            changes["qr_updated_at"] = _now() if state.qr else None
        else:
            changes["qr"] = None
            changes["qr_updated_at"] = None
        expiring = current == "pending_qr" or channel["detail"] == "qr_expired"
        if state.status == "disconnected" and state.detail == "failed" and expiring:
            changes["detail"] = "qr_expired"
            changes["last_error"] = QR_EXPIRED
        if state.phone_number:
            changes["phone_number"] = state.phone_number
        if state.status == "ready" and state.phone_number:
            await _link_number(db, channel, state.phone_number, changes)
        if changes["status"] == "ready" and current != "ready":
            changes["connected_at"] = _now()
        updated = await store.update_channel(db, channel["id"], changes)
    if updated["status"] != current or updated["detail"] != channel["detail"]:
        log.info(
            "channel.status",
            channel=channel["id"],
            provider=channel["provider"],
            status=updated["status"],
            detail=updated["detail"],
        )
    return updated


async def _link_number(db: Database, channel: dict, phone: str, changes: dict) -> None:
    """A number serves one assistant: refuse it (in `changes`) when another one holds it."""
    await store.release_numbers(db, channel["id"], keep=phone)
    if await store.link_number(db, phone, channel["assistant_id"], channel["id"]) is not None:
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
    log.warning("channel.number_conflict", channel=channel["id"], holder=holder and holder["assistant_id"])


async def refresh_channel(rt: Runtime, channel: dict) -> dict:
    """Ask the gateway for the session's state and record it (heals missed webhooks)."""
    gateway = rt.gateway(channel["provider"])
    ref = channel_ref(channel)
    try:
        state = await gateway.get_state(ref)
        if channel["detail"] == "number_conflict":
            # The refused phone is still linked at the gateway: unlink it so it stops receiving.
            if state.status == "ready":
                await gateway.logout(ref)
            return channel
    except GatewayError as exc:
        return await store.update_channel(rt.db, channel["id"], {"last_error": exc.message})
    return await apply_state(rt.db, channel, state)


# -- the connection API --


def _session_name(settings: Settings, provider: str, assistant_id: int) -> str:
    if provider == "waha" and settings.waha_session_name:
        return settings.waha_session_name
    return f"wa-{assistant_id}-{secrets.token_hex(4)}"


async def create_channel(rt: Runtime, body: ChannelCreate) -> Channel:
    """Create a channel for an assistant and start pairing: pending_qr with a QR, or
    disconnected with the gateway's error (reconnect later)."""
    await get_assistant(rt.db, body.assistant_id)
    provider = body.provider or rt.settings.gateway_provider
    session_name = _session_name(rt.settings, provider, body.assistant_id)
    try:
        channel = await store.insert_channel(rt.db, body.assistant_id, provider, session_name, secrets.token_urlsafe(32))
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(
            f"The {provider} session '{session_name}' is already used by another channel "
            "(WAHA_SESSION_NAME allows one channel). Delete that channel first.",
            code="session_taken",
        ) from exc
    log.info("channel.created", channel=channel["id"], provider=provider, assistant=body.assistant_id)
    started = _now()
    try:
        state = await rt.gateway(provider).start_session(channel_ref(channel), webhook_url(rt.settings, channel))
    except GatewayError as exc:
        log.warning("channel.start_failed", channel=channel["id"], provider=provider, error=exc.message)
        failed = SessionState(status="disconnected", detail="gateway_error", error=exc.message)
        return public_channel(await apply_state(rt.db, channel, failed, force=True, at=started))
    return public_channel(await apply_state(rt.db, channel, state, force=True, at=started))


async def list_channels(db: Database, query: ChannelQuery) -> dict:
    records, total = await store.list_channels(db, query.assistant_id, query.limit, query.offset)
    return page_of([public_channel(r) for r in records], total, query)


async def read_channel(rt: Runtime, channel_id: int) -> Channel:
    """The channel; while pairing, a stale QR is fetched again (bounded, best effort)."""
    channel = await get_channel(rt.db, channel_id)
    updated_at = channel["qr_updated_at"]
    stale = updated_at is None or (_now() - updated_at).total_seconds() > QR_REFRESH_SECONDS
    if channel["status"] == "pending_qr" and channel["provider"] != "sandbox" and stale:
        try:
            channel = await asyncio.wait_for(refresh_channel(rt, channel), timeout=rt.settings.gateway_timeout_seconds)
        except TimeoutError:
            log.warning("channel.qr_refresh_timeout", channel=channel_id)
    return public_channel(channel)


async def reconnect_channel(rt: Runtime, channel_id: int) -> Channel:
    """Start pairing again (a new QR) or resume the session; works from any state."""
    channel = await get_channel(rt.db, channel_id)
    gateway = rt.gateway(channel["provider"])
    ref = channel_ref(channel)
    started = _now()  # what the gateway says from now on answers this action
    try:
        if channel["detail"] == "number_conflict":
            await gateway.logout(ref)  # the refused phone must not come back by itself
        state = await gateway.restart(ref, webhook_url(rt.settings, channel))
    except GatewayError as exc:
        await store.update_channel(rt.db, channel_id, {"last_error": exc.message})
        raise
    log.info("channel.reconnect", channel=channel_id, status=state.status)
    return public_channel(await apply_state(rt.db, channel, state, force=True, at=started))


async def logout_channel(rt: Runtime, channel_id: int) -> Channel:
    """Unpair the phone; the number is free for any assistant afterwards."""
    channel = await get_channel(rt.db, channel_id)
    started = _now()  # every status event emitted before the logout is stale from now on
    try:
        await rt.gateway(channel["provider"]).logout(channel_ref(channel))
    except GatewayError as exc:
        await store.update_channel(rt.db, channel_id, {"last_error": exc.message})
        raise
    logged_out = SessionState(status="disconnected", detail="logged_out")
    async with rt.db.transaction():
        await store.release_numbers(rt.db, channel_id)
        updated = await apply_state(rt.db, channel, logged_out, force=True, at=started)
    log.info("channel.logged_out", channel=channel_id)
    return public_channel(updated)


async def delete_channel(rt: Runtime, channel_id: int) -> None:
    """Delete the channel and its gateway session (best effort: a bridge that is down does not block it)."""
    channel = await get_channel(rt.db, channel_id)
    try:
        await rt.gateway(channel["provider"]).delete_session(channel_ref(channel))
    except GatewayError as exc:
        log.warning("channel.delete_session_failed", channel=channel_id, error=exc.message)
    async with rt.db.transaction():
        await store.release_numbers(rt.db, channel_id)
        await store.delete_channel(rt.db, channel_id)
    log.info("channel.deleted", channel=channel_id)


# -- webhooks --


async def admit_webhook(rt: Runtime, provider: str, channel_id: int, headers: Mapping[str, str]) -> dict:
    """The channel a webhook is for, once what its headers prove checks out (before any body is read).

    An unknown channel, another provider's and a wrong credential all get the same 401: the answer
    does not tell which channels exist."""
    # The provider and the webhook secret of a channel never change, so a cached copy may vouch.
    channel = _webhook_channels(rt).get(channel_id) or await _read_webhook_channel(rt, channel_id)
    if (
        channel is None
        or channel["provider"] != provider
        or not rt.gateway(provider).check_webhook_headers(channel_ref(channel), headers)
    ):
        log.warning("webhook.refused", provider=provider, channel=channel_id, known=channel is not None)
        raise Unauthorized(WEBHOOK_REFUSED, code="bad_signature")
    return channel


async def handle_webhook(
    rt: Runtime,
    provider: str,
    channel_id: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    request_id: str | None = None,
    channel: dict | None = None,
) -> WebhookResult:
    """Verify, parse and apply one gateway webhook (`channel`: from `admit_webhook`, when the route
    checked the headers already). Only database work happens here: a customer's message is usually
    ONE statement (the channel comes from a cache the statement re-checks)."""
    if channel is None:
        channel = await admit_webhook(rt, provider, channel_id, headers)
    if not rt.gateway(provider).verify_webhook(channel_ref(channel), headers, body):
        log.warning("webhook.refused", provider=provider, channel=channel_id, known=True)
        raise Unauthorized(WEBHOOK_REFUSED, code="bad_signature")
    try:
        events = rt.gateway(provider).parse_webhook(headers, body)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise Invalid(f"Malformed {provider} webhook: {exc}", code="malformed_webhook") from exc
    if channel["cached"] and not _cache_serves(channel, events):
        channel = await _read_webhook_channel(rt, channel_id) or channel
    last_event_at = channel["last_event_at"]
    if last_event_at is None or (_now() - last_event_at).total_seconds() >= TOUCH_EVERY_SECONDS:
        known = channel["channel_version"]
        version = await store.touch_channel_event(pool_of(rt.db), channel_id, known)
        for copy in {id(c): c for c in (channel, _webhook_channels(rt).get(channel_id)) if c is not None}.values():
            copy["last_event_at"] = _now()
            if version is not None and copy["channel_version"] == known:
                copy["channel_version"] = version  # only our own write came between: the copy is still current
    outcomes = []
    for event in events:
        channel, outcome = await _apply_event_on_current(rt, channel, event, request_id)
        outcomes.append(outcome)
    return WebhookResult(received=len(events), outcomes=outcomes)


def _webhook_channels(rt: Runtime) -> dict[int, dict]:
    """Channel rows recently read by webhooks of this runtime (its database), by id."""
    return rt._cache.setdefault("webhook_channels", {})


async def _read_webhook_channel(rt: Runtime, channel_id: int) -> dict | None:
    channel = await store.find_channel_for_webhook(pool_of(rt.db), channel_id)
    cache = _webhook_channels(rt)
    if channel is None:
        cache.pop(channel_id, None)
        return None
    if len(cache) >= 10_000:
        cache.clear()
    cache[channel_id] = {**channel, "cached": True}
    return {**channel, "cached": False}


def _cache_serves(channel: dict, events: list[GatewayEvent]) -> bool:
    """Only customer messages may be decided on a cached channel (the ingest statement checks the
    copy is current); state changes always read the row."""
    return channel["detail"] != "number_conflict" and all(isinstance(event, InboundMessage) for event in events)


async def _apply_event_on_current(rt: Runtime, channel: dict, event: GatewayEvent, request_id: str | None) -> tuple[dict, str]:
    from backend.services.inbound import StaleChannel

    for _ in range(3):
        try:
            return await _apply_event(rt, channel, event, request_id)
        except StaleChannel:
            fresh = await _read_webhook_channel(rt, channel["id"])
            if fresh is None:
                raise NotFound(f"Channel {channel['id']} was deleted.", code="channel_not_found") from None
            channel = fresh
    raise Unavailable("The channel kept changing while this webhook was applied; send it again.", code="channel_busy")


async def _apply_event(rt: Runtime, channel: dict, event: GatewayEvent, request_id: str | None) -> tuple[dict, str]:
    if isinstance(event, (SessionStatusEvent, QrUpdated)) and is_stale(channel, event.at):
        log.info("webhook.stale_event", provider=channel["provider"], channel=channel["id"], at=event.at.isoformat())
        return channel, "ignored:stale"
    if isinstance(event, SessionStatusEvent):
        channel = await apply_state(rt.db, channel, event.state, at=event.at)
        return channel, f"status:{channel['status']}"
    if isinstance(event, QrUpdated):
        if channel["status"] == "ready":
            return channel, "ignored:ready"
        state = SessionState(status="pending_qr", detail="scan_qr", qr=event.qr)
        return await apply_state(rt.db, channel, state, at=event.at), "qr"
    if isinstance(event, InboundMessage):
        if channel["detail"] == "number_conflict":
            return channel, "ignored:number_conflict"
        from backend.services.inbound import ingest_inbound

        return channel, await ingest_inbound(rt, channel, event, request_id=request_id)
    if isinstance(event, MessageAck):
        from backend.services.inbound import record_ack

        await record_ack(rt, channel, event)
        return channel, "ack"
    log.info("webhook.unknown_event", provider=channel["provider"], channel=channel["id"], name=event.name)
    return channel, f"unknown:{event.name}"


# -- the sandbox gateway's pretend phone --


async def _sandbox_channel(db: Database, channel_id: int) -> dict:
    channel = await get_channel(db, channel_id)
    if channel["provider"] != "sandbox":
        raise Conflict(f"Channel {channel_id} uses {channel['provider']}, not the sandbox.", code="not_sandbox")
    return channel


async def sandbox_scan(rt: Runtime, channel_id: int, body: SandboxScan) -> Channel:
    """Pretend a phone scanned the QR: the channel becomes ready as that number."""
    channel = await _sandbox_channel(rt.db, channel_id)
    phone = f"+1555{channel_id:07d}" if body.phone_number is None else normalise_phone(body.phone_number)
    if phone is None:
        raise Invalid(
            "The phone number is not valid.",
            details=[{"field": "phone_number", "message": "digits with an optional leading '+', e.g. +15550100000"}],
        )
    gateway = rt.gateway("sandbox")
    ref = channel_ref(channel)
    webhook = await gateway.scan(ref, phone)
    await handle_webhook(rt, "sandbox", channel_id, gateway.webhook_headers(ref), webhook)
    return public_channel(await get_channel(rt.db, channel_id))


async def sandbox_message(
    rt: Runtime, channel_id: int, body: SandboxMessage, *, request_id: str | None = None
) -> SandboxDelivery:
    """A customer writes to the sandbox number: delivered exactly like a gateway webhook."""
    channel = await _sandbox_channel(rt.db, channel_id)
    sender = normalise_phone(body.sender)
    if sender is None:
        raise Invalid(
            "The sender is not a valid phone number.",
            details=[{"field": "from", "message": "digits with an optional leading '+', e.g. +15550100000"}],
        )
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
