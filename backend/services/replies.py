"""The reply job: answer a contact's waiting messages once, in order, surviving crashes.

A reply is stored (idempotency key `reply:<last inbound id>:<part>`) before it is sent, marked
`sending` (committed) before the gateway call and `sent` with the provider's id after it. A retry
skips what is sent and, for a message left in `sending` by a crash, first asks the gateway
whether it already has it. A customer message arriving while an answer is generated makes that
draft stale: it is dropped and the next job answers the whole, newer state.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from databases import Database

from backend import metrics
from backend.gateways.base import ChannelRef
from backend.gateways.errors import WindowClosed
from backend.runtime import Runtime
from backend.services.answers import answer_question
from backend.services.assistants import Assistant, to_assistant
from backend.services.channels import channel_ref
from backend.services.decisions import ContactState
from backend.services.inbound import queue_reply_job
from backend.services.languages import detection_candidates, fixed_text, reply_language, settle_contact_language
from backend.services.policies import ReplyPolicy, typing_seconds
from backend.services.voice import UNCLEAR, hear_voice_notes
from backend.store import contacts as contacts_store
from backend.store import messages as store
from backend.store.channels import ChannelRow
from backend.store.contacts import ContactRow
from backend.store.messages import MessageRow

log = structlog.get_logger(__name__)

CANNED_REASONS = ("opt_out", "opt_in", "handoff_request")
WORDLESS = ("media_without_text", UNCLEAR)
# A quick reply needs no lease extension (one round trip saved); a slow model's does.
HEARTBEAT_AFTER_SECONDS = 5.0
TYPING_AFTER_SECONDS = 0.5
SEND_AFTER_FAILURE = "the gateway did not confirm the send"
WINDOW_CLOSED_ERROR = "The customer last wrote more than 24 hours ago, so WhatsApp allows only a template message now."


class ChannelBusy(Exception):
    """The channel reached its replies-per-minute limit; try again when the window moves on."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"channel rate limit reached; retry in {delay:.0f}s")
        self.delay = delay


@dataclass
class Conversation:
    """What one reply job works with."""

    contact: ContactRow
    channel: ChannelRow
    assistant: Assistant
    gateway: Any
    ref: ChannelRef
    has_waiting: bool = True  # outbound messages stored but not known to be sent

    @property
    def policy(self) -> ReplyPolicy:
        return self.assistant.policies


async def load_conversation(rt: Runtime, contact_id: int) -> Conversation | None:
    """The contact, its channel and assistant in one statement, which also waits for ingests of
    this contact in flight (see `contacts_store.load_conversation`)."""
    loaded = await contacts_store.load_conversation(rt.db, contact_id)
    if loaded is None:
        return None  # deleted with its channel: nothing left to answer
    contact, channel, assistant, has_waiting = loaded
    conversation = Conversation(contact, channel, to_assistant(assistant), rt.gateway(channel.provider), channel_ref(channel))
    conversation.has_waiting = has_waiting
    return conversation


async def reply_to_contact(rt: Runtime, contact_id: int, heartbeat=None) -> None:
    """The whole reply job for one contact (safe to run again at any point)."""
    started = time.monotonic()
    conversation = await load_conversation(rt, contact_id)
    if conversation is None:
        return
    # Anything stored by an earlier attempt (or an operator) goes out first, in order.
    if conversation.has_waiting:
        await deliver_waiting(rt, conversation)
    # Read after load_conversation waited for ingests in flight: each of them either committed
    # before (its message is here) or saw this job running and queued the next one.
    policy = conversation.policy
    batch = await store.pending_inbound(rt.db, contact_id, conversation.channel.id, _rate_caps(policy), policy.history_turns * 2)
    if not batch:
        return
    batch = await hear_voice_notes(
        rt,
        conversation.gateway,
        conversation.ref,
        batch,
        language=conversation.contact.language,
        among=detection_candidates(conversation.assistant),
    )
    draft = await _draft_reply(rt, conversation, batch)
    if heartbeat is not None and time.monotonic() - started > HEARTBEAT_AFTER_SECONDS:
        await heartbeat()
    if draft is None:
        return
    stored = await _store_draft(rt, conversation, batch, draft)
    if stored is not None:
        await deliver_waiting(rt, conversation, marked_sending=stored)


def _rate_caps(policy: ReplyPolicy) -> tuple[int, int]:
    return policy.max_replies_per_contact_per_minute, policy.max_replies_per_channel_per_minute


@dataclass
class Draft:
    parts: list[str]
    sources: list[dict] | None = None
    trace: dict | None = None
    degraded: bool = False
    # How the answer went (the knowledge gaps, the inbox and the outcome counts read these).
    used_fallback: bool = False
    ungrounded: bool = False
    top_score: float | None = None


# The fixed text (backend.services.texts) and, for a command, the kind of its words.
CANNED_TEXTS = {
    "opt_out": ("opt_out", "opt_out"),
    "opt_in": ("opt_in", "opt_in"),
    "handoff_request": ("handoff", "handoff"),
    "media_without_text": ("media", None),
    UNCLEAR: ("voice_unclear", None),
}


def _canned(assistant: Assistant, batch: list[MessageRow], contact_language: str | None) -> tuple[str, str] | None:
    """A fixed reply (reason, text) when the latest message asks for one, or no message of the burst has words
    (media without a caption, a voice note nobody could hear), in the contact's reply language — a command's
    confirmation in the language of its words ("PARAR" opts out in Portuguese whoever wrote it)."""
    last = batch[-1]
    if last.reason in CANNED_REASONS:
        reason = last.reason
    elif all(message.reason in WORDLESS for message in batch):
        reason = UNCLEAR if any(message.reason == UNCLEAR for message in batch) else "media_without_text"
    else:
        return None
    key, command = CANNED_TEXTS[reason]
    said_in = assistant.policies.languages_of_command(command, last.text) if command else ()
    return reason, fixed_text(assistant, key, reply_language(contact_language, assistant.served_languages, said_in))


async def _draft_reply(rt: Runtime, conversation: Conversation, batch: list[MessageRow]) -> Draft | None:
    policy, contact = conversation.policy, conversation.contact
    db = rt.db
    ids = [message.id for message in batch]
    question = "\n".join(message.text for message in batch if message.text.strip())
    language = await settle_contact_language(rt, contact, conversation.assistant, question)
    canned = _canned(conversation.assistant, batch, language)
    if canned is None or canned[0] != "opt_out":
        # The contact's state may have changed since these messages were stored.
        now = datetime.now(UTC)
        if canned is None or canned[0] != "handoff_request":
            state = ContactState.of(contact.opted_out_at, contact.paused_until, now)
            if state.opted_out:
                return await _ignore(db, ids, "opted_out")
            if state.paused:
                return await _ignore(db, ids, "paused")
        recent = batch[-1]  # every burst row carries the counts of the bot's recent replies
        if recent.recent_contact >= policy.max_replies_per_contact_per_minute:
            # A contact (often another bot) writing faster than any person: stop the loop.
            metrics.REPLY_FAILURES.labels("rate_limited").inc()
            return await _ignore(db, ids, "rate_limited")
        if recent.recent_channel >= policy.max_replies_per_channel_per_minute:
            raise ChannelBusy(delay=15)
    if canned is not None:
        return Draft(parts=[canned[1]], trace={"canned": canned[0], "contact_language": language})
    reply_in = reply_language(language, conversation.assistant.served_languages)
    # The read receipt goes out while the answer is prepared, and "typing…" too once the answer takes
    # long enough to be seen (an instant answer would only flash it: one gateway call saved per reply).
    # Both are done before the reply is sent.
    seen = asyncio.ensure_future(
        _best_effort(conversation.gateway.mark_seen(conversation.ref, contact.chat_id, _provider_ids(batch)))
    )
    typing = _SlowTyping(conversation, contact.chat_id)
    try:
        history = conversation_history(policy, batch[0], batch[0].history or [])

        started = time.perf_counter()
        answer = await answer_question(rt, conversation.assistant, question, history, language=reply_in)
        answer_ms = round((time.perf_counter() - started) * 1000, 1)
        await typing.settle()
        await seen
    finally:
        typing.cancel()
        if not seen.done():
            seen.cancel()
    trace = {
        **answer.trace,
        "used_fallback": answer.used_fallback,
        "top_score": answer.top_score,
        "degraded_reason": answer.degraded_reason,
        "question": question,
        "answered_message_ids": ids,
        "history_turns": len(history),
        "answer_ms": answer_ms,
        "contact_language": language,
        "reply_language": reply_in,
    }
    fallback = answer.text or fixed_text(conversation.assistant, "fallback", reply_in)
    parts = [part for part in answer.parts if part.strip()] or [fallback]
    return Draft(
        parts=parts,
        sources=answer.sources,
        trace=trace,
        degraded=answer.degraded,
        used_fallback=answer.used_fallback,
        ungrounded=answer.ungrounded,
        top_score=answer.top_score,
    )


class _SlowTyping:
    """Shows "typing…" if the answer is not ready within TYPING_AFTER_SECONDS."""

    def __init__(self, conversation: Conversation, chat_id: str) -> None:
        self.calling = False
        self.task = asyncio.ensure_future(self._run(conversation, chat_id))

    async def _run(self, conversation: Conversation, chat_id: str) -> None:
        await asyncio.sleep(TYPING_AFTER_SECONDS)
        self.calling = True
        await _best_effort(conversation.gateway.set_typing(conversation.ref, chat_id, True))

    async def settle(self) -> None:
        """The answer is ready: never show typing now, but let a call under way finish first."""
        if self.calling:
            await self.task
        self.cancel()

    def cancel(self) -> None:
        if not self.task.done():
            self.task.cancel()


def _provider_ids(batch: list[MessageRow]) -> list[str]:
    return [message.provider_message_id for message in batch if message.provider_message_id]


async def _ignore(db: Database, ids: list[int], reason: str) -> None:
    await store.set_inbound_status(db, ids, "ignored", reason)
    metrics.MESSAGES_IGNORED.labels(reason).inc()
    log.info("reply.skipped", messages=ids, reason=reason)


def conversation_history(policy: ReplyPolicy, first: MessageRow, before: list[dict]) -> list[dict]:
    """Recent turns as memory, oldest first; a silence longer than the idle time starts afresh.
    `before`: the turns before `first`, newest first (`created_at` as epoch seconds in `at`)."""
    if policy.history_turns == 0:
        return []
    idle = policy.memory_idle_minutes * 60
    turns, newer_at = [], first.created_at.timestamp()
    for turn in before:
        if newer_at - turn["at"] > idle:
            break
        turns.append({"role": "user" if turn["direction"] == "in" else "assistant", "content": turn["text"]})
        newer_at = turn["at"]
    return turns[::-1]


async def _store_draft(rt: Runtime, conversation: Conversation, batch: list[MessageRow], draft: Draft) -> set[int] | None:
    """Store the reply and mark its messages answered — unless a newer message made it stale.
    One statement on the locked contact (`store.store_reply`). Returns the ids it stored as
    `sending` (see `deliver_waiting`), or None when nothing is to be sent."""
    db, contact_id = rt.db, conversation.contact.id
    ids = [message.id for message in batch]
    canned = (draft.trace or {}).get("canned")
    outcome = await store.store_reply(
        db,
        {
            "contact_id": contact_id,
            "channel_id": conversation.channel.id,
            "reply_to_id": batch[-1].id,
            "parts": draft.parts,
            "sources": draft.sources,
            "trace": draft.trace,
            "degraded": draft.degraded,
            "used_fallback": draft.used_fallback,
            "ungrounded": draft.ungrounded,
            "top_score": draft.top_score,
        },
        ids,
        # An operator (or the owner's phone) taking the conversation while we were thinking
        # silences the bot, except for the confirmations the customer asked for.
        pause_applies=canned not in ("opt_out", "handoff_request"),
    )
    if outcome is None:
        return None  # the contact was deleted meanwhile
    if outcome["taken_over"]:
        await _ignore(db, ids, "paused")
        return None
    if outcome["stale"]:
        # Make sure the newer state gets its own job (its ingest may have seen this one queued).
        await queue_reply_job(rt, contact_id, conversation.channel.id, delay_seconds=0)
        log.info("reply.stale_draft_dropped", contact=contact_id, answered=ids)
        return None
    return {outcome["sending_id"]} if outcome["sending_id"] is not None else set()


async def deliver_waiting(
    rt: Runtime, conversation: Conversation, marked_sending: frozenset[int] | set[int] = frozenset()
) -> None:
    """Send the contact's stored, unsent messages in order; each at most once. `marked_sending`:
    messages this job has just stored as `sending` itself (no crash left them so: no need to ask
    the gateway whether it has them, nor to mark them again)."""
    contact, gateway, ref = conversation.contact, conversation.gateway, conversation.ref
    db = rt.db
    if window_closed(gateway.reply_window, contact.last_message_at):
        await _fail_window_closed(db, contact.id, WINDOW_CLOSED_ERROR)
        return
    waiting = await store.waiting_outbound(db, contact.id)
    typing = False
    try:
        for message in waiting:
            if message.id not in marked_sending:
                if message.status == "sending":
                    # A crash or timeout left the outcome unknown: the gateway may have it already.
                    found = await gateway.find_recent_outgoing(ref, contact.chat_id, message.text)
                    if found:
                        await store.mark_sent(db, message.id, found)
                        log.info("reply.recovered", message=message.id, provider_message_id=found)
                        continue
                await store.mark_sending(db, message.id)
            if message.author == "bot":
                pause = typing_seconds(conversation.policy, message.text)
                if pause > 0:
                    typing = True
                    await _best_effort(gateway.set_typing(ref, contact.chat_id, True))
                    await asyncio.sleep(pause)
            try:
                sent = await gateway.send_text(ref, contact.chat_id, message.text, reply_to=message.quote_id)
            except WindowClosed as exc:  # no retry can help: only a template may go out now
                await _fail_window_closed(db, contact.id, exc.message)
                return
            except Exception as exc:
                await store.record_send_error(db, message.id, _describe(exc))
                raise
            await store.mark_sent(db, message.id, sent.provider_message_id)
            _count_sent(conversation, message)
    finally:
        if typing:
            await _best_effort(gateway.set_typing(ref, contact.chat_id, False))


def _count_sent(conversation: Conversation, message: dict) -> None:
    metrics.MESSAGES_OUT.labels(conversation.channel.provider, message.author).inc()
    if message.author == "bot" and message.idempotency_key.endswith(":0"):
        latency = (datetime.now(UTC) - message.created_at).total_seconds()
        metrics.REPLY_LATENCY.observe(max(latency, 0))
        log.info("reply.sent", contact=conversation.contact.id, message=message.id, degraded=message.degraded)


def _describe(exc: Exception) -> str:
    """A send error as `code: sentence` (the reason codes of backend.workers.jobs), never a class name."""
    code = getattr(exc, "code", None) or "gateway_error"
    message = getattr(exc, "message", None) or "The gateway did not take the message."
    return f"{code}: {message}"


async def _best_effort(call) -> None:  # a gateway coroutine
    """Typing and read receipts are niceties: a provider without them must not block a reply."""
    try:
        await call
    except Exception as exc:
        log.debug("gateway.nicety_failed", error=_describe(exc))


def window_closed(window: timedelta | None, last_customer_message_at: datetime | None) -> bool:
    """Whether a free-form reply is past the provider's window after the customer's last message (the Cloud API's 24 hours).
    A contact's `last_message_at` is the customer's: the Cloud API echoes none of our own messages."""
    return window is not None and last_customer_message_at is not None and datetime.now(UTC) - last_customer_message_at > window


async def _fail_window_closed(db: Database, contact_id: int, error: str) -> None:
    count = await store.fail_waiting(db, contact_id, error, reason="window_closed")
    metrics.REPLY_FAILURES.labels("window_closed").inc()
    log.warning("reply.window_closed", contact=contact_id, messages=count)


async def give_up(rt: Runtime, contact_id: int, error: str) -> None:
    """After the last attempt: what is still waiting becomes `failed`, with the reason, in the thread."""
    count = await store.fail_waiting(rt.db, contact_id, error)
    metrics.REPLY_FAILURES.labels("gave_up").inc()
    log.error("reply.failed", contact=contact_id, messages=count, error=error)
