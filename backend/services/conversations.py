"""Conversations for the console: contacts with their last message, threads, human takeover,
operator replies, and the overview numbers."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import structlog
from databases import Database
from pydantic import BaseModel, ConfigDict, Field

from backend.database import transaction
from backend.errors import Conflict, GatewayError, NotFound
from backend.gateways.base import UNSAFE_MIMETYPE, safe_mimetype
from backend.http import Page, page_of
from backend.runtime import Runtime
from backend.services.decisions import ContactState
from backend.services.inbound import queue_reply_job
from backend.services.policies import LanguageCode, parse_policy
from backend.store import contacts as contacts_store
from backend.store import media as media_store
from backend.store import messages as store
from backend.store.contacts import ContactRow
from backend.store.messages import MessageRow
from rag.languages import LANGUAGES

log = structlog.get_logger(__name__)

OPERATOR_SEND_WAIT_SECONDS = 10.0


class ContactQuery(Page):
    assistant_id: int | None = Field(default=None, ge=1)
    channel_id: int | None = Field(default=None, ge=1)
    q: str | None = Field(default=None, max_length=200, description="Part of a name, number, chat id, or of a message")
    status: Literal["unanswered", "failed", "paused"] | None = None


class LastMessage(BaseModel):
    text: str
    direction: str
    author: str
    status: str
    created_at: datetime


class Contact(BaseModel):
    id: int
    channel_id: int
    assistant_id: int
    chat_id: str
    phone_number: str | None
    name: str | None
    owner: Literal["bot", "human"] = Field(description="Who answers now: human while the bot is paused")
    paused_until: datetime | None
    paused_by: str | None = Field(description="operator, owner (replied from the phone) or customer (asked for a person)")
    opted_out: bool
    opted_out_at: datetime | None
    last_message_at: datetime | None
    last_message: LastMessage | None = None
    created_at: datetime
    language: str | None = Field(description="The customer's language (ISO 639-1), None until detected or set")
    language_name: str | None = Field(description="Its name as its speakers write it (Português)")
    language_source: Literal["detected", "operator"] | None = Field(
        description="detected from the customer's messages, or set by an operator (then detection leaves it alone)"
    )
    language_set_at: datetime | None


class ContactPage(BaseModel):
    items: list[Contact]
    total: int
    limit: int
    offset: int


class MessageMedia(BaseModel):
    kind: str = Field(description="voice, audio, image, video, document, sticker, location or contacts")
    mimetype: str | None
    transcript_model: str | None = Field(description="A voice note heard: the model that wrote its text")
    audio_seconds: float | None
    transcribe_seconds: float | None = Field(description="How long hearing it took")
    error: str | None = Field(description="Why it could not be fetched or heard")
    url: str = Field(description="The file (GET, the operator's token): play or view it")


class Reaction(BaseModel):
    emoji: str
    sentiment: Literal["positive", "negative"] | None = Field(description="👍 ❤️ positive, 👎 negative, other emoji none")


class Message(BaseModel):
    id: int
    contact_id: int
    direction: Literal["in", "out"]
    author: Literal["customer", "bot", "operator", "owner"]
    text: str
    status: str
    reason: str | None = Field(description="Why an inbound message was or was not answered")
    error: str | None
    sources: list[dict[str, Any]] | None
    trace: dict[str, Any] | None
    degraded: bool
    latency_ms: int | None = Field(description="From the customer's message to this reply sent")
    reply_to_id: int | None
    provider_message_id: str | None
    created_at: datetime
    sent_at: datetime | None
    media: MessageMedia | None = None
    reactions: list[Reaction] = Field(default_factory=list, description="The customer's reactions to this reply")


class Thread(BaseModel):
    contact: Contact
    items: list[Message]
    total: int
    limit: int
    offset: int


class PauseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    minutes: int | None = Field(default=None, ge=1, le=525600, description="Default: the assistant's pause_minutes")


class ContactChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    language: LanguageCode | None = Field(
        description="The customer's language, kept against detection; null gives it back to detection"
    )


class OperatorReply(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=4096)


WaitReason = Literal["handoff", "failed_send", "fallback"]
WAIT_REASONS: tuple[WaitReason, ...] = ("handoff", "failed_send", "fallback")


class StatsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assistant_id: int | None = Field(default=None, ge=1)
    days: int = Field(default=7, ge=1, le=365)


class DayCount(BaseModel):
    day: date
    inbound: int = Field(description="Customer messages")
    outbound: int = Field(description="Messages sent (bot, operators, the owner's phone)")
    conversations: int = Field(description="Customers who wrote")
    answered_by_bot: int = Field(description="Answers the bot sent")
    handed_to_person: int = Field(description="Customers who asked for a person")
    fallback: int = Field(description="Answers that were the fallback message (nothing in the documents)")
    ungrounded_replaced: int = Field(description="Generated answers not sent for stating facts the sources lack")
    failed_sends: int = Field(description="Messages that could not be sent")
    thumbs_up: int = Field(description="👍 / ❤️ reactions to the bot's replies")
    thumbs_down: int = Field(description="👎 reactions to the bot's replies")
    median_latency_ms: float | None = Field(description="From the customer's message to the answer sent")
    p90_latency_ms: float | None


class Stats(BaseModel):
    days: int
    assistant_id: int | None
    per_day: list[DayCount]
    inbound: int
    outbound: int
    failed: int
    unanswered: int = Field(description="Customer messages waiting for a reply or whose reply failed")
    ignored: int
    degraded: int = Field(description="Replies sent while the model was unavailable")
    median_latency_ms: float | None
    p90_latency_ms: float | None
    waiting_for_person: int = Field(description="Contacts waiting for a person right now, whenever they wrote (GET /api/inbox)")
    waiting_by_reason: dict[WaitReason, int] = Field(description="Those contacts by the reason they wait (the oldest one)")
    longest_wait_seconds: int | None = Field(description="How long the contact waiting longest has waited")


def message_of(message: MessageRow) -> Message:
    media = None
    if message.media_kind is not None:
        media = MessageMedia(
            kind=message.media_kind,
            mimetype=message.media_mimetype,
            transcript_model=message.transcript_model,
            audio_seconds=message.audio_seconds,
            transcribe_seconds=message.transcribe_seconds,
            error=message.media_error,
            url=f"/api/contacts/{message.contact_id}/messages/{message.id}/media",
        )
    values = {name: getattr(message, name) for name in Message.model_fields if name not in ("media", "reactions")}
    return Message(**values, media=media, reactions=message.reactions or [])


async def message_file(db: Database, contact_id: int, message_id: int) -> tuple[bytes, str]:
    """A message's attachment as stored (bytes, mimetype); NotFound when it has none or it was not fetched."""
    media = await media_store.find_media(db, message_id)
    message = await store.find_message(db, message_id)
    if media is None or media.data is None or message is None or message.contact_id != contact_id:
        raise NotFound("This message has no stored file.", code="media_not_found")
    # Rows stored before mimetypes were checked at ingest go through the same rule.
    return media.data, safe_mimetype(media.kind, media.mimetype) or UNSAFE_MIMETYPE


def contact_of(contact: ContactRow, last: contacts_store.LastMessage | None = None) -> Contact:
    """The API shape of a contact (with its last message when the listing has one)."""
    state = ContactState.of(contact.opted_out_at, contact.paused_until, datetime.now(UTC))
    return Contact(
        **{key: getattr(contact, key) for key in ("id", "channel_id", "assistant_id", "chat_id", "phone_number", "name")},
        owner="human" if state.paused else "bot",
        paused_until=contact.paused_until if state.paused else None,
        paused_by=contact.paused_by if state.paused else None,
        opted_out=state.opted_out,
        opted_out_at=contact.opted_out_at,
        last_message_at=contact.last_message_at,
        last_message=LastMessage(**asdict(last)) if last is not None else None,
        created_at=contact.created_at,
        language=contact.language,
        language_name=LANGUAGES[contact.language].native if contact.language in LANGUAGES else None,
        language_source=contact.language_source,
        language_set_at=contact.language_set_at,
    )


async def _find(db: Database, contact_id: int) -> ContactRow:
    contact = await contacts_store.find_contact(db, contact_id)
    if contact is None:
        raise NotFound(f"Contact {contact_id} does not exist.", code="contact_not_found")
    return contact


async def list_contacts(db: Database, query: ContactQuery) -> dict:
    filters = query.model_dump(include={"assistant_id", "channel_id", "q", "status"})
    records, total = await contacts_store.list_contacts(db, filters, query.limit, query.offset)
    return page_of([contact_of(item.contact, item.last_message) for item in records], total, query)


async def get_contact(db: Database, contact_id: int) -> Contact:
    return contact_of(await _find(db, contact_id))


async def get_thread(db: Database, contact_id: int, page: Page) -> Thread:
    contact = contact_of(await _find(db, contact_id))
    records, total = await store.thread(db, contact_id, page.limit, page.offset)
    return Thread(contact=contact, items=[message_of(r) for r in records], total=total, limit=page.limit, offset=page.offset)


async def change_contact(db: Database, contact_id: int, change: ContactChange) -> Contact:
    """An operator's change to a contact: its language (detection no longer changes it), or back to detection."""
    record = await contacts_store.set_operator_language(db, contact_id, change.language)
    if record is None:
        raise NotFound(f"Contact {contact_id} does not exist.", code="contact_not_found")
    log.info("contact.language_set", contact=contact_id, language=change.language)
    return await get_contact(db, contact_id)


async def pause_contact(db: Database, contact_id: int, minutes: int | None, by: str = "operator") -> Contact:
    """Human takeover from the console: the bot stays quiet for this contact until resumed or the time is up."""
    record = await _find(db, contact_id)
    minutes = minutes or parse_policy(record.assistant_settings).pause_minutes
    await contacts_store.pause_contact(db, contact_id, datetime.now(UTC) + timedelta(minutes=minutes), by)
    log.info("contact.paused", contact=contact_id, minutes=minutes, by=by)
    return await get_contact(db, contact_id)


async def resume_contact(db: Database, contact_id: int) -> Contact:
    await _find(db, contact_id)
    await contacts_store.resume_contact(db, contact_id)
    log.info("contact.resumed", contact=contact_id)
    return await get_contact(db, contact_id)


async def operator_reply(rt: Runtime, contact_id: int, body: OperatorReply) -> tuple[Message, bool]:
    """Send an operator's message through the gateway (via the contact's reply queue, so it is
    stored first, sent once and never overtakes a bot reply) and pause the bot for this contact.
    Returns the message and whether the gateway confirmed it within a few seconds."""
    db = rt.db
    record = await _find(db, contact_id)
    if record.opted_out_at is not None:
        raise Conflict("This contact opted out of messages; they must write an opt-in word first.", code="opted_out")
    policy = parse_policy(record.assistant_settings)
    async with transaction(db):
        contact = await contacts_store.lock_contact(db, contact_id)
        message_id = await store.insert_outbound(
            db,
            {
                "channel_id": contact.channel_id,
                "contact_id": contact_id,
                "author": "operator",
                "idempotency_key": f"operator:{uuid.uuid4().hex}",
                "text": body.text,
                "sources": None,
                "trace": None,
                "degraded": False,
                "reply_to_id": None,
            },
        )
        until = datetime.now(UTC) + timedelta(minutes=policy.pause_minutes)
        if contact.paused_until is None or contact.paused_until < until:
            await contacts_store.pause_contact(db, contact_id, until, "operator")
        await queue_reply_job(rt, contact_id, contact.channel_id, delay_seconds=0)
    message = await _wait_for_send(db, message_id)
    if message.status == "failed":
        raise GatewayError(
            f"The gateway did not send the message: {message.error}",
            details={"message_id": message_id},
        )
    return message_of(message), message.status not in ("pending", "sending")


async def _wait_for_send(db: Database, message_id: int) -> dict:
    deadline = time.monotonic() + OPERATOR_SEND_WAIT_SECONDS
    delay = 0.02
    while True:
        message = await store.find_message(db, message_id)
        if message.status not in ("pending", "sending") or time.monotonic() > deadline:
            return message
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.25)


async def stats(db: Database, query: StatsQuery) -> Stats:
    per_day = await store.daily_counts(db, query.assistant_id, query.days)
    totals = await store.totals(db, query.assistant_id, query.days)
    waiting = await contacts_store.waiting_summary(db, query.assistant_id)
    return Stats(
        days=query.days,
        assistant_id=query.assistant_id,
        per_day=[DayCount(**d) for d in per_day],
        **totals,
        waiting_for_person=waiting["total"],
        waiting_by_reason={reason: waiting["by_reason"].get(reason, 0) for reason in WAIT_REASONS},
        longest_wait_seconds=waited_seconds(waiting["oldest_since"]),
    )


def waited_seconds(since: datetime | None) -> int | None:
    return None if since is None else max(0, int((datetime.now(UTC) - since).total_seconds()))
