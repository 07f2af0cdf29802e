"""The "Needs a person" inbox: customers the bot cannot help who wait for a person, the longest waiting first.

A thread waits when the customer asked for a person, got the fallback answer (which promises a
person's follow-up) or a message of the thread could not be sent, and no person has dealt with it
since: an operator's reply, the owner writing from the phone, or an operator handing it back to
the bot ends the wait."""

from __future__ import annotations

from datetime import datetime

from databases import Database
from pydantic import BaseModel, Field

from backend.http import Page
from backend.services.conversations import WAIT_REASONS, Contact, WaitReason, contact_of, waited_seconds
from backend.store import contacts as contacts_store


class InboxQuery(Page):
    assistant_id: int | None = Field(default=None, ge=1)


class WaitingContact(BaseModel):
    contact: Contact
    reason: WaitReason = Field(
        description="Why the customer waits (the oldest reason): handoff (asked for a person), "
        "failed_send (a message could not be sent), fallback (the documents had no answer)"
    )
    reasons: list[WaitReason] = Field(description="Every reason this thread waits for")
    waiting_since: datetime = Field(description="The customer's first message still waiting for a person")
    waited_seconds: int


class Inbox(BaseModel):
    items: list[WaitingContact]
    total: int
    by_reason: dict[WaitReason, int] = Field(description="Waiting contacts by the reason shown first")
    limit: int
    offset: int


async def inbox(db: Database, query: InboxQuery) -> Inbox:
    records = await contacts_store.waiting_contacts(db, query.assistant_id, query.limit, query.offset)
    summary = await contacts_store.waiting_summary(db, query.assistant_id)
    items = [
        WaitingContact(
            contact=contact_of(item.contact, item.last_message),
            reason=item.reason,
            reasons=item.reasons,
            waiting_since=item.waiting_since,
            waited_seconds=waited_seconds(item.waiting_since),
        )
        for item in records
    ]
    return Inbox(
        items=items,
        total=summary["total"],
        by_reason={reason: summary["by_reason"].get(reason, 0) for reason in WAIT_REASONS},
        limit=query.limit,
        offset=query.offset,
    )
