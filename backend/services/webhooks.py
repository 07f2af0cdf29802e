"""Gateway webhooks: who may send one (checked on the headers, before the body is read), then each event applied."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime

import asyncpg
import structlog
from pydantic import BaseModel

from backend.errors import Forbidden, Invalid, NotFound, Unauthorized
from backend.gateways.base import (
    GatewayEvent,
    InboundMessage,
    MessageAck,
    QrUpdated,
    ReactionEvent,
    SessionState,
    SessionStatusEvent,
)
from backend.runtime import Runtime
from backend.services.channels import apply_state, channel_ref, is_stale
from backend.services.feedback import record_reaction
from backend.services.inbound import ingest_inbound, record_ack
from backend.store import channels as store
from backend.store.channels import ChannelRow

log = structlog.get_logger(__name__)

TOUCH_EVERY_SECONDS = 5  # last_event_at is for reconciliation: a few seconds' precision is plenty
WEBHOOK_REFUSED = "The webhook's channel, signature or secret is wrong or missing."


class WebhookResult(BaseModel):
    received: int
    outcomes: list[str]


def body_limit(rt: Runtime, provider: str) -> tuple[int, str]:
    """The largest webhook body a provider may send, and the setting that says so: a gateway whose webhooks never
    carry a file says so itself (`webhook_max_bytes`); the others (Evolution inlines media as base64) WEBHOOK_MAX_MB."""
    own = getattr(rt.gateway(provider), "webhook_max_bytes", None)
    if own is not None:
        return min(own, rt.settings.webhook_max_bytes), f"the {provider} gateway's limit"
    return rt.settings.webhook_max_bytes, "WEBHOOK_MAX_MB"


async def admit_webhook(rt: Runtime, provider: str, channel_id: int, headers: Mapping[str, str]) -> ChannelRow:
    """The channel a webhook is for (with its assistant's settings), once what its headers prove checks
    out (before any body is read).

    An unknown channel, another provider's and a wrong credential all get the same 401: the answer
    does not tell which channels exist."""
    channel = await store.find_channel_for_webhook(rt.webhook_channel_reader, channel_id)
    if (
        channel is None
        or channel.provider != provider
        or not rt.gateway(provider).check_webhook_headers(channel_ref(channel), headers)
    ):
        log.warning("webhook.refused", provider=provider, channel=channel_id, known=channel is not None)
        raise Unauthorized(WEBHOOK_REFUSED, code="bad_signature")
    return channel


async def verify_subscription(rt: Runtime, provider: str, channel_id: int, params: Mapping[str, str]) -> str:
    """A gateway's handshake when its callback URL is saved (Meta's `hub.challenge`): the challenge to
    answer, or 403 (the same for an unknown channel)."""
    channel = await store.find_channel(rt.db, channel_id)
    challenge = None
    if channel is not None and channel.provider == provider:
        challenge = rt.gateway(provider).verification_challenge(channel_ref(channel), params)
    if challenge is None:
        log.warning("webhook.verification_refused", provider=provider, channel=channel_id, known=channel is not None)
        raise Forbidden("The verify token does not match this channel's.", code="bad_verify_token")
    log.info("webhook.verified", provider=provider, channel=channel_id)
    return challenge


async def handle_webhook(
    rt: Runtime,
    provider: str,
    channel_id: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    request_id: str | None = None,
    channel: ChannelRow | None = None,
) -> WebhookResult:
    """Verify, parse and apply one gateway webhook (`channel`: from `admit_webhook`, when the route
    checked the headers already). Only database work happens here: a customer's message is usually
    one statement after the channel's read."""
    if channel is None:
        channel = await admit_webhook(rt, provider, channel_id, headers)
    if not rt.gateway(provider).verify_webhook(channel_ref(channel), headers, body):
        log.warning("webhook.refused", provider=provider, channel=channel_id, known=True)
        raise Unauthorized(WEBHOOK_REFUSED, code="bad_signature")
    try:
        events = rt.gateway(provider).parse_webhook(headers, body, channel=channel_ref(channel))
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise Invalid(f"Malformed {provider} webhook: {exc}", code="malformed_webhook") from exc
    last_event_at = channel.last_event_at
    if last_event_at is None or (datetime.now(UTC) - last_event_at).total_seconds() >= TOUCH_EVERY_SECONDS:
        await store.touch_channel_event(rt.db, channel_id, TOUCH_EVERY_SECONDS)
    outcomes = []
    for event in events:
        channel, outcome = await _apply_event(rt, channel, event, request_id)
        outcomes.append(outcome)
    return WebhookResult(received=len(events), outcomes=outcomes)


async def _apply_event(rt: Runtime, channel: ChannelRow, event: GatewayEvent, request_id: str | None) -> tuple[ChannelRow, str]:
    """Apply one event; the channel as it is after it (state changes keep the assistant's settings read with it)."""
    if isinstance(event, (SessionStatusEvent, QrUpdated)) and is_stale(channel, event.at):
        log.info("webhook.stale_event", provider=channel.provider, channel=channel.id, at=event.at.isoformat())
        return channel, "ignored:stale"
    if isinstance(event, SessionStatusEvent):
        channel = replace(
            await apply_state(rt.db, channel, event.state, at=event.at), assistant_settings=channel.assistant_settings
        )
        return channel, f"status:{channel.status}"
    if isinstance(event, QrUpdated):
        if channel.status == "ready":
            return channel, "ignored:ready"
        state = SessionState(status="pending_qr", detail="scan_qr", qr=event.qr)
        updated = await apply_state(rt.db, channel, state, at=event.at)
        return replace(updated, assistant_settings=channel.assistant_settings), "qr"
    if isinstance(event, InboundMessage):
        if channel.detail == "number_conflict":
            return channel, "ignored:number_conflict"
        try:
            return channel, await ingest_inbound(rt, channel, event, request_id=request_id)
        except asyncpg.ForeignKeyViolationError:  # the channel was deleted since it was read
            raise NotFound(f"Channel {channel.id} was deleted.", code="channel_not_found") from None
    if isinstance(event, MessageAck):
        await record_ack(rt, channel, event)
        return channel, "ack"
    if isinstance(event, ReactionEvent):
        return channel, await record_reaction(rt, channel, event)  # feedback, never answered
    log.info("webhook.unknown_event", provider=channel.provider, channel=channel.id, name=event.name)
    return channel, f"unknown:{event.name}"
