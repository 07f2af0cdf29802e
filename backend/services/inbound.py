"""Ingest: every inbound gateway message stored once, and why it will (or won't) be answered.

Called by the webhook service for each parsed message. No slow work: the reply itself is produced
by a `reply` job (see `backend.services.replies`). The decision is `backend.services.decisions.decide`.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog
from databases import Database

from backend import metrics
from backend.database import transaction
from backend.gateways.base import InboundMessage, MediaRef, MessageAck
from backend.gateways.cloud import WINDOW_CLOSED
from backend.runtime import Runtime
from backend.services.decisions import USUAL, ContactState, aware, decide
from backend.services.policies import ReplyPolicy, is_exact_command, parse_policy
from backend.store import contacts as contacts_store
from backend.store import jobs as jobs_store
from backend.store import media as media_store
from backend.store import messages as store
from backend.store.channels import ChannelRow
from backend.store.contacts import ContactRow

log = structlog.get_logger(__name__)

REPLY_JOB = "reply"
SERIAL_PREFIX = "contact:"
DEDUP_PREFIX = "reply:contact:"


def reply_serial_key(contact_id: int) -> str:
    """One contact's replies run one at a time, in order."""
    return f"{SERIAL_PREFIX}{contact_id}"


def reply_dedup_key(contact_id: int) -> str:
    """At most one queued reply job per contact: it takes the whole burst."""
    return f"{DEDUP_PREFIX}{contact_id}"


async def ingest_inbound(rt: Runtime, channel: ChannelRow, message: InboundMessage, *, request_id: str | None = None) -> str:
    """Store one inbound message and queue its reply. Returns "stored", "duplicate" or "ignored:<reason>".
    `channel`: the webhook's channel row, with its assistant's stored settings (`assistant_settings`).

    A customer's text message is first decided as if the contact were usual (neither opted out nor paused)
    and, unless that decision changes the contact, stored with its reply job in ONE statement, which
    writes the message only if the contact really is usual. Everything else — own-side messages, media,
    commands, and contacts who are opted out or paused — is decided step by step on the locked contact."""
    policy = rt.policy_of(channel.assistant_settings)
    if not message.from_me and message.media is None:
        decision = decide(policy, channel.connected_at, USUAL, message)
        if not decision.changes_contact:
            outcome = await _ingest_usual(rt, channel, message, policy, decision, request_id)
            if outcome is not None:
                _count(channel, outcome)
                return outcome
    outcome = await _ingest_step_by_step(rt, channel, message, request_id)
    _count(channel, outcome)
    return outcome


def _job_payload(channel_id: int, request_id: str | None, **more: int) -> dict:
    return {**more, "channel_id": channel_id, **({"request_id": request_id} if request_id else {})}


async def _ingest_usual(
    rt: Runtime, channel: ChannelRow, message: InboundMessage, policy: ReplyPolicy, decision, request_id: str | None
) -> str | None:
    """The one-statement path. None when the contact is not usual (then nothing but its last activity was written)."""
    result = await store.ingest_customer_message(
        rt.ingest_batcher,
        {
            "channel_id": channel.id,
            "chat_id": message.chat_id,
            "phone_number": message.sender_phone,
            "name": message.sender_name,
        },
        {
            "provider_message_id": message.provider_message_id,
            "text": message.text or "",
            "status": decision.status,
            "reason": decision.reason,
            "provider_timestamp": aware(message.timestamp),
        },
        {
            "kind": REPLY_JOB,
            "payload": _job_payload(channel.id, request_id),
            "dedup_prefix": DEDUP_PREFIX,
            "serial_prefix": SERIAL_PREFIX,
            "delay_seconds": policy.burst_window_seconds,
            "max_attempts": rt.settings.job_max_attempts,
        },
        jobs_store.CHANNEL,
    )
    if not result["usual"]:
        return None
    if result["message_id"] is None:
        return "duplicate"
    if not decision.answered:
        log.info(
            "inbound.ignored",
            channel=channel.id,
            contact=result["contact_id"],
            message=result["message_id"],
            reason=decision.reason,
        )
        return f"ignored:{decision.reason}"
    return "stored"


async def _ingest_step_by_step(rt: Runtime, channel: ChannelRow, message: InboundMessage, request_id: str | None) -> str:
    db = rt.db
    async with transaction(db) as conn:
        contact = await contacts_store.upsert_contact_for_message(
            conn,
            channel.id,
            channel.assistant_id,
            message.chat_id,
            message.sender_phone,
            None if message.from_me else message.sender_name,
        )
        policy = parse_policy(contact.assistant_settings)  # as this transaction sees it
        if message.from_me:
            return await _ingest_own_side(db, channel, contact, message, policy)
        return await _ingest_customer(rt, conn, channel, contact, message, policy, request_id)


async def _ingest_customer(
    rt: Runtime,
    conn: asyncpg.Connection,
    channel: ChannelRow,
    contact: ContactRow,
    message: InboundMessage,
    policy: ReplyPolicy,
    request_id: str | None,
) -> str:
    db = rt.db
    now = datetime.now(UTC)
    decision = decide(policy, channel.connected_at, ContactState.of(contact.opted_out_at, contact.paused_until, now), message)
    message_id, job_queued = await store.insert_message_checking_queue(
        conn,
        {
            "channel_id": channel.id,
            "contact_id": contact.id,
            "provider_message_id": message.provider_message_id,
            "text": message.text or "",
            "status": decision.status,
            "reason": decision.reason,
            "provider_timestamp": aware(message.timestamp),
        },
        reply_serial_key(contact.id),
    )
    if message_id is None:
        return "duplicate"
    if message.media is not None:
        await _keep_media(rt, conn, message_id, message.media)
    if decision.reason == "opt_out":
        await contacts_store.set_opted_out(db, contact.id, True)
    elif decision.reason == "opt_in":
        await contacts_store.set_opted_out(db, contact.id, False)
    elif decision.reason == "handoff_request":
        await contacts_store.pause_contact(db, contact.id, now + timedelta(minutes=policy.pause_minutes), "customer")
    if not decision.answered:
        log.info("inbound.ignored", channel=channel.id, contact=contact.id, message=message_id, reason=decision.reason)
        return f"ignored:{decision.reason}"
    # The contact row is locked until commit, so this check and the reply job's reads cannot interleave;
    # a job already queued takes this message with the rest of the burst.
    if not job_queued:
        await _enqueue_reply(rt, contact.id, channel.id, policy.burst_window_seconds, request_id)
    return "stored"


async def _keep_media(rt: Runtime, conn: asyncpg.Connection, message_id: int, media: MediaRef) -> None:
    """What the reply job needs to fetch the file, or the file itself when the webhook carried it (bounded)."""
    data = error = None
    if media.inline_base64:
        if len(media.inline_base64) * 3 // 4 > rt.settings.media_max_bytes:
            error = "too_large"  # see media_store.REFUSED_ON_ARRIVAL
        else:
            try:
                data = base64.b64decode(media.inline_base64, validate=True)
            except binascii.Error:
                error = "unreadable"
    await media_store.insert_media(
        conn, message_id, media.kind, media.mimetype, media.filename, media.size, media.handle, data, error
    )


async def queue_reply_job(
    rt: Runtime, contact_id: int, channel_id: int, delay_seconds: float, request_id: str | None = None
) -> None:
    """Queue a reply job for the contact unless one is already queued (it will take the whole burst).
    Call with the contact row locked, so this check and the job's reads of the burst cannot interleave."""
    if await jobs_store.serial_key_queued(rt.db, reply_serial_key(contact_id)):
        return
    await _enqueue_reply(rt, contact_id, channel_id, delay_seconds, request_id)


async def _enqueue_reply(rt: Runtime, contact_id: int, channel_id: int, delay_seconds: float, request_id: str | None) -> None:
    await jobs_store.enqueue_job(
        rt.db,
        REPLY_JOB,
        _job_payload(channel_id, request_id, contact_id=contact_id),
        dedup_key=reply_dedup_key(contact_id),
        serial_key=reply_serial_key(contact_id),
        delay_seconds=delay_seconds,
        max_attempts=rt.settings.job_max_attempts,
    )


async def _ingest_own_side(
    db: Database, channel: ChannelRow, contact: ContactRow, message: InboundMessage, policy: ReplyPolicy
) -> str:
    """A fromMe message: our own reply echoed back, or the owner typing on the phone (human takeover)."""
    text = message.text or ""
    if message.sent_by_api or await store.is_own_outbound(db, channel.id, contact.id, message.provider_message_id, text):
        return "ignored:own_echo"
    resume = is_exact_command(text, policy.resume_words)
    message_id = await store.insert_message(
        db,
        {
            "channel_id": channel.id,
            "contact_id": contact.id,
            "direction": "out",
            "author": "owner",
            "provider_message_id": message.provider_message_id,
            "text": text,
            "status": "sent",
            "reason": "resume_command" if resume else "owner_reply",
            "provider_timestamp": aware(message.timestamp),
        },
    )
    if message_id is None:
        return "duplicate"
    if message.is_group or message.is_broadcast:
        return "ignored:from_me"
    if resume:
        await contacts_store.resume_contact(db, contact.id)
        log.info("inbound.resumed_by_owner", channel=channel.id, contact=contact.id)
        return "ignored:resume_command"
    until = datetime.now(UTC) + timedelta(minutes=policy.pause_minutes)
    await contacts_store.pause_contact(db, contact.id, until, "owner")
    log.info("inbound.owner_took_over", channel=channel.id, contact=contact.id, paused_until=until.isoformat())
    return "ignored:owner_reply"


def failure_reason(error_code: str | None) -> str | None:
    """Our reason for a provider's delivery failure code, where it means something to the operator."""
    return "window_closed" if error_code == str(WINDOW_CLOSED) else None


def _count(channel: ChannelRow, outcome: str) -> None:
    provider = channel.provider
    if outcome == "duplicate":
        metrics.DUPLICATE_WEBHOOKS.labels(provider).inc()
        return
    metrics.MESSAGES_IN.labels(provider).inc()
    if outcome.startswith("ignored:"):
        metrics.MESSAGES_IGNORED.labels(outcome.removeprefix("ignored:")).inc()


async def record_ack(rt: Runtime, channel: ChannelRow, ack: MessageAck) -> None:
    """Delivery status of one of our outbound messages (sent → delivered → read; or failed, with the provider's reason)."""
    error = reason = None
    if ack.status == "failed" and (ack.error or ack.error_code):
        error = f"{ack.error or 'delivery failed'} (error {ack.error_code})" if ack.error_code else ack.error
        reason = failure_reason(ack.error_code)
    if await store.apply_ack(rt.db, channel.id, ack.provider_message_id, ack.status, error, reason):
        log.debug("message.ack", channel=channel.id, provider_message_id=ack.provider_message_id, status=ack.status)
