"""Ingest: every inbound gateway message stored once, and why it will (or won't) be answered.

Called by the webhook service for each parsed message. One transaction, no slow work: the
reply itself is produced by a `reply` job (see `backend.services.replies`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog
from databases import Database

from backend import metrics
from backend.database import pool_of
from backend.gateways.base import InboundMessage, MessageAck
from backend.runtime import Runtime
from backend.services.policies import ReplyPolicy, is_exact_command, mentions_any
from backend.store import contacts as contacts_store
from backend.store import jobs as jobs_store
from backend.store import messages as store
from backend.store.batch import StatementBatcher

log = structlog.get_logger(__name__)

REPLY_JOB = "reply"
SERIAL_PREFIX = "contact:"
DEDUP_PREFIX = "reply:contact:"
# Outcomes that change the contact (opt-out, pause): taken on the locked contact, step by step.
SIDE_EFFECT_REASONS = {"opt_out", "opt_in", "handoff_request"}
_USUAL_CONTACT = {"opted_out_at": None, "paused_until": None}


class StaleChannel(Exception):
    """The channel row the caller holds (a cached copy) may be out of date for this message:
    read it again and call once more."""


def reply_serial_key(contact_id: int) -> str:
    """One contact's replies run one at a time, in order."""
    return f"{SERIAL_PREFIX}{contact_id}"


def reply_dedup_key(contact_id: int) -> str:
    """At most one queued reply job per contact: it takes the whole burst."""
    return f"{DEDUP_PREFIX}{contact_id}"


async def load_policy(db: Database, assistant_id: int) -> ReplyPolicy:
    settings = await db.fetch_val("SELECT settings FROM assistants WHERE id = :id", {"id": assistant_id})
    return policy_from(settings or {})


def policy_from(settings: dict) -> ReplyPolicy:
    # Tolerate keys written by an older or newer version of the policy model.
    return ReplyPolicy(**{key: value for key, value in settings.items() if key in ReplyPolicy.model_fields})


_POLICIES: dict[str, ReplyPolicy] = {}


def policy_from_json(settings: str | None) -> ReplyPolicy:
    """The policy of an assistant's settings as jsonb text, built once per distinct text
    (every webhook needs it; building the model costs more than the rest of the decision)."""
    key = settings or "{}"
    policy = _POLICIES.get(key)
    if policy is None:
        policy = policy_from(json.loads(key))
        if len(_POLICIES) > 1000:
            _POLICIES.clear()
        _POLICIES[key] = policy
    return policy


async def _channel_policy(db: Database, channel: dict) -> ReplyPolicy:
    if "policy_json" in channel:
        return policy_from_json(channel["policy_json"])
    return await load_policy(db, channel["assistant_id"])


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
    """Store one inbound message and queue its reply. Returns "stored", "duplicate" or "ignored:<reason>".
    Not inside a transaction: the usual case is one statement on a connection of its own.

    A channel row marked `cached` (the webhook service keeps recent ones) is only trusted by that
    one statement, which checks what the decision used; otherwise StaleChannel is raised."""
    if not message.from_me:
        policy = await _channel_policy(rt.db, channel)
        outcome = await _ingest_usual(rt, channel, message, policy, request_id)
        if outcome is not None:
            _count(channel, outcome)
            return outcome
    if channel.get("cached"):
        raise StaleChannel(f"channel {channel['id']}")
    return await _ingest_step_by_step(rt, channel, message, request_id=request_id)


async def _ingest_usual(
    rt: Runtime, channel: dict, message: InboundMessage, policy: ReplyPolicy, request_id: str | None
) -> str | None:
    """A customer's message to a contact neither opted out nor paused, which changes nothing about
    the contact: decided up front, stored with its reply job in one statement. None when the
    message or the contact is not usual (then nothing but the contact's last activity was written)."""
    status, reason = decide(policy, channel, _USUAL_CONTACT, message, datetime.now(UTC))
    if reason in SIDE_EFFECT_REASONS:
        return None
    payload: dict = {"channel_id": channel["id"]}
    if request_id:
        payload["request_id"] = request_id
    result = await store.ingest_customer_message(
        _ingest_batcher(rt),
        channel if "channel_version" in channel else None,
        {
            "channel_id": channel["id"],
            "chat_id": message.chat_id,
            "phone_number": message.sender_phone,
            "name": message.sender_name,
        },
        {
            "provider_message_id": message.provider_message_id,
            "text": message.text or "",
            "status": status,
            "reason": reason,
            "provider_timestamp": _aware(message.timestamp),
        },
        {
            "kind": REPLY_JOB,
            "payload": payload,
            "dedup_prefix": DEDUP_PREFIX,
            "serial_prefix": SERIAL_PREFIX,
            "delay_seconds": policy.burst_window_seconds,
            "max_attempts": rt.settings.job_max_attempts,
        },
        jobs_store.CHANNEL,
    )
    if result is None:
        raise StaleChannel(f"channel {channel['id']}")
    if not result["usual"]:
        return None
    if result["message_id"] is None:
        return "duplicate"
    if status != "pending":
        log.info(
            "inbound.ignored", channel=channel["id"], contact=result["contact_id"], message=result["message_id"], reason=reason
        )
        return f"ignored:{reason}"
    return "stored"


def _ingest_batcher(rt: Runtime) -> StatementBatcher:
    if "ingest_batcher" not in rt._cache:
        rt._cache["ingest_batcher"] = store.ingest_batcher(lambda: pool_of(rt.db))
    return rt._cache["ingest_batcher"]


async def _ingest_step_by_step(rt: Runtime, channel: dict, message: InboundMessage, *, request_id: str | None = None) -> str:
    """Any message, decided on the locked contact: own-side messages, opt-out/opt-in, handoff,
    and customers who are opted out or paused."""
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
        dedup_key=reply_dedup_key(contact_id),
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


_COUNTERS: dict[tuple, object] = {}


def _counter(metric, label: str):  # noqa: ANN001, ANN202 - a prometheus counter and its child
    # `labels()` hashes and validates on every call; the child it returns never changes.
    key = (id(metric), label)
    child = _COUNTERS.get(key)
    if child is None:
        child = _COUNTERS[key] = metric.labels(label)
    return child


def _count(channel: dict, outcome: str) -> None:
    provider = channel.get("provider", "unknown")
    if outcome == "duplicate":
        _counter(metrics.DUPLICATE_WEBHOOKS, provider).inc()
        return
    _counter(metrics.MESSAGES_IN, provider).inc()
    if outcome.startswith("ignored:"):
        _counter(metrics.MESSAGES_IGNORED, outcome.removeprefix("ignored:")).inc()


async def record_ack(rt: Runtime, channel: dict, ack: MessageAck) -> None:
    """Delivery status of one of our outbound messages (sent → delivered → read; or failed)."""
    if await store.apply_ack(rt.db, channel["id"], ack.provider_message_id, ack.status):
        log.debug("message.ack", channel=channel["id"], provider_message_id=ack.provider_message_id, status=ack.status)
