"""Ingest: every inbound gateway message stored once, and why it will (or won't) be answered.

Called by the webhook service for each parsed message. One transaction, no slow work: the
reply itself is produced by a `reply` job (see `backend.services.replies`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import structlog
from databases import Database

from backend import metrics
from backend.gateways.base import InboundMessage, MessageAck
from backend.runtime import Runtime
from backend.services.policies import ReplyPolicy, is_exact_command, mentions_any
from backend.store import contacts as contacts_store
from backend.store import jobs as jobs_store
from backend.store import messages as store

log = structlog.get_logger(__name__)

REPLY_JOB = "reply"


def reply_serial_key(contact_id: int) -> str:
    """One contact's replies run one at a time, in order."""
    return f"contact:{contact_id}"


async def load_policy(db: Database, assistant_id: int) -> ReplyPolicy:
    settings = await db.fetch_val("SELECT settings FROM assistants WHERE id = :id", {"id": assistant_id})
    return policy_from(settings or {})


def policy_from(settings: dict) -> ReplyPolicy:
    # Tolerate keys written by an older or newer version of the policy model.
    return ReplyPolicy(**{key: value for key, value in settings.items() if key in ReplyPolicy.model_fields})


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _is_backlog(channel: dict, message: InboundMessage) -> bool:
    """A message written before this connection existed: a bridge re-delivering history."""
    connected_at, sent_at = _aware(channel.get("connected_at")), _aware(message.timestamp)
    if connected_at is None or sent_at is None:
        return False
    # WhatsApp timestamps have whole seconds.
    return sent_at < connected_at.replace(microsecond=0)


def decide(policy: ReplyPolicy, channel: dict, contact: dict, message: InboundMessage, now: datetime) -> tuple[str, str | None]:
    """(status, reason) for a customer's message: `pending` waits for a reply, `ignored` never gets one.
    The reason of a pending message names a canned reply (opt_out, opt_in, handoff_request, media_without_text)."""
    text = message.text or ""
    if message.is_group and policy.ignore_groups:
        return "ignored", "group"
    if message.is_broadcast and policy.ignore_broadcasts:
        return "ignored", "broadcast"
    if _is_backlog(channel, message):
        return "ignored", "before_connection"
    if is_exact_command(text, policy.opt_out_words):
        return ("ignored", "opted_out") if contact["opted_out_at"] else ("pending", "opt_out")
    if contact["opted_out_at"] is not None:
        return ("pending", "opt_in") if is_exact_command(text, policy.opt_in_words) else ("ignored", "opted_out")
    if contact["paused_until"] is not None and contact["paused_until"] > now:
        return "ignored", "paused"
    if mentions_any(text, policy.handoff_words):
        return "pending", "handoff_request"
    if not text.strip():
        return ("pending", "media_without_text") if message.has_media else ("ignored", "empty")
    return "pending", None


async def ingest_inbound(rt: Runtime, channel: dict, message: InboundMessage, *, request_id: str | None = None) -> str:
    """Store one inbound message and queue its reply. Returns "stored", "duplicate" or "ignored:<reason>"."""
    db = rt.db
    async with db.connection() as connection, db.transaction():
        conn = connection.raw_connection
        contact = await contacts_store.upsert_contact_for_message(
            conn,
            channel["id"],
            channel["assistant_id"],
            message.chat_id,
            message.sender_phone,
            None if message.from_me else message.sender_name,
        )
        policy = policy_from(contact.pop("policy") or {})
        if message.from_me:
            outcome = await _ingest_own_side(db, channel, contact, message, policy)
        else:
            outcome = await _ingest_customer(rt, conn, channel, contact, message, policy, request_id)
    _count(channel, outcome)
    return outcome


async def _ingest_customer(
    rt: Runtime,
    conn: asyncpg.Connection,
    channel: dict,
    contact: dict,
    message: InboundMessage,
    policy: ReplyPolicy,
    request_id: str | None,
) -> str:
    db = rt.db
    now = datetime.now(UTC)
    status, reason = decide(policy, channel, contact, message, now)
    serial_key = reply_serial_key(contact["id"])
    message_id, job_queued = await store.insert_message_checking_queue(
        conn,
        {
            "channel_id": channel["id"],
            "contact_id": contact["id"],
            "provider_message_id": message.provider_message_id,
            "text": message.text or "",
            "status": status,
            "reason": reason,
            "provider_timestamp": _aware(message.timestamp),
        },
        serial_key,
    )
    if message_id is None:
        return "duplicate"
    if reason == "opt_out":
        await contacts_store.set_opted_out(db, contact["id"], True)
    elif reason == "opt_in":
        await contacts_store.set_opted_out(db, contact["id"], False)
    elif reason == "handoff_request":
        await contacts_store.pause_contact(db, contact["id"], now + timedelta(minutes=policy.pause_minutes), "customer")
    if status != "pending":
        log.info("inbound.ignored", channel=channel["id"], contact=contact["id"], message=message_id, reason=reason)
        return f"ignored:{reason}"
    # The contact row is locked until commit, so this check and the reply job's reads cannot interleave;
    # a job already queued takes this message with the rest of the burst.
    if not job_queued:
        await _enqueue_reply(rt, contact["id"], channel["id"], policy.burst_window_seconds, request_id)
    return "stored"


async def queue_reply_job(
    rt: Runtime, contact_id: int, channel_id: int, delay_seconds: float, request_id: str | None = None
) -> None:
    """Queue a reply job for the contact unless one is already queued (it will take the whole burst).
    Call with the contact row locked, so this check and the job's reads of the burst cannot interleave."""
    if await store.queued_job_exists(rt.db, reply_serial_key(contact_id)):
        return
    await _enqueue_reply(rt, contact_id, channel_id, delay_seconds, request_id)


async def _enqueue_reply(rt: Runtime, contact_id: int, channel_id: int, delay_seconds: float, request_id: str | None) -> None:
    payload: dict = {"contact_id": contact_id, "channel_id": channel_id}
    if request_id:
        payload["request_id"] = request_id
    await jobs_store.enqueue_job(
        rt.db,
        REPLY_JOB,
        payload,
        serial_key=reply_serial_key(contact_id),
        delay_seconds=delay_seconds,
        max_attempts=rt.settings.job_max_attempts,
    )


async def _ingest_own_side(db: Database, channel: dict, contact: dict, message: InboundMessage, policy: ReplyPolicy) -> str:
    """A fromMe message: our own reply echoed back, or the owner typing on the phone (human takeover)."""
    text = message.text or ""
    if message.sent_by_api or await store.is_own_outbound(db, channel["id"], contact["id"], message.provider_message_id, text):
        return "ignored:own_echo"
    resume = is_exact_command(text, policy.resume_words)
    message_id = await store.insert_message(
        db,
        {
            "channel_id": channel["id"],
            "contact_id": contact["id"],
            "direction": "out",
            "author": "owner",
            "provider_message_id": message.provider_message_id,
            "text": text,
            "status": "sent",
            "reason": "resume_command" if resume else "owner_reply",
            "provider_timestamp": _aware(message.timestamp),
        },
    )
    if message_id is None:
        return "duplicate"
    if message.is_group or message.is_broadcast:
        return "ignored:from_me"
    if resume:
        await contacts_store.resume_contact(db, contact["id"])
        log.info("inbound.resumed_by_owner", channel=channel["id"], contact=contact["id"])
        return "ignored:resume_command"
    until = datetime.now(UTC) + timedelta(minutes=policy.pause_minutes)
    await contacts_store.pause_contact(db, contact["id"], until, "owner")
    log.info("inbound.owner_took_over", channel=channel["id"], contact=contact["id"], paused_until=until.isoformat())
    return "ignored:owner_reply"


def _count(channel: dict, outcome: str) -> None:
    provider = channel.get("provider", "unknown")
    if outcome == "duplicate":
        metrics.DUPLICATE_WEBHOOKS.labels(provider).inc()
        return
    metrics.MESSAGES_IN.labels(provider).inc()
    if outcome.startswith("ignored:"):
        metrics.MESSAGES_IGNORED.labels(outcome.removeprefix("ignored:")).inc()


async def record_ack(rt: Runtime, channel: dict, ack: MessageAck) -> None:
    """Delivery status of one of our outbound messages (sent → delivered → read; or failed)."""
    if await store.apply_ack(rt.db, channel["id"], ack.provider_message_id, ack.status):
        log.debug("message.ack", channel=channel["id"], provider_message_id=ack.provider_message_id, status=ack.status)
