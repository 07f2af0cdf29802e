"""SQL for contacts: the people (or groups) writing to a channel, with their pause/opt-out state."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

import asyncpg
from databases import Database

from backend.database import execute, fetch, fetchrow, fetchval
from backend.store.assistants import DOCUMENT_LANGUAGES, AssistantRow
from backend.store.channels import ChannelRow

COLUMNS = (
    "c.id, c.channel_id, c.chat_id, c.phone_number, c.name, c.paused_until, c.paused_by, c.opted_out_at, "
    "c.last_message_at, c.created_at, c.language, c.language_source, c.language_set_at"
)
_CONTACT_FIELDS = [column.strip().removeprefix("c.") for column in COLUMNS.split(",")]
LAST_MESSAGE = """
    last.text AS last_message_text, last.direction AS last_message_direction, last.author AS last_message_author,
    last.status AS last_message_status, last.created_at AS last_message_created_at
"""
LAST_MESSAGE_JOIN = """
    LEFT JOIN LATERAL (
        SELECT m.text, m.direction, m.author, m.status, m.created_at FROM messages m
        WHERE m.contact_id = c.id ORDER BY m.id DESC LIMIT 1
    ) last ON TRUE
"""


@dataclass(frozen=True)
class ContactRow:
    id: int
    channel_id: int
    chat_id: str
    phone_number: str | None = None
    name: str | None = None
    paused_until: datetime | None = None
    paused_by: str | None = None
    opted_out_at: datetime | None = None
    last_message_at: datetime | None = None
    created_at: datetime | None = None
    language: str | None = None  # ISO 639-1; None until detected or set
    language_source: str | None = None  # detected | operator (never overwritten by detection)
    language_set_at: datetime | None = None
    assistant_id: int | None = None  # of its channel
    assistant_settings: dict | None = None  # its assistant's stored settings, where the query reads them


@dataclass(frozen=True)
class LastMessage:
    text: str
    direction: str
    author: str
    status: str
    created_at: datetime


@dataclass(frozen=True)
class ContactListing:
    """A contact in a list: with its last message, and why and since when it waits (in the inbox)."""

    contact: ContactRow
    last_message: LastMessage | None
    reason: str | None = None
    reasons: list[str] | None = None
    waiting_since: datetime | None = None


def _contact(record, **extra) -> ContactRow | None:  # asyncpg record
    return ContactRow(**{name: record[name] for name in _CONTACT_FIELDS}, **extra) if record is not None else None


def _listing(record) -> ContactListing:  # asyncpg record
    last = None
    if record["last_message_created_at"] is not None:
        last = LastMessage(
            **{field: record[f"last_message_{field}"] for field in ("text", "direction", "author", "status", "created_at")}
        )
    waiting = {name: record[name] for name in ("reason", "reasons", "waiting_since") if name in record.keys()}
    return ContactListing(_contact(record, assistant_id=record["assistant_id"]), last, **waiting)


# The contact for a chat, created on first contact ($1 channel, $2 chat, $3 phone number, $4 name). It takes the
# row lock until commit, which serialises a contact's ingests with its reply job's reads.
UPSERT_CONTACT = """
    INSERT INTO contacts AS c (channel_id, chat_id, phone_number, name, last_message_at)
    VALUES ($1, $2, $3, $4, now())
    ON CONFLICT (channel_id, chat_id) DO UPDATE
        SET last_message_at = now(),
            phone_number = coalesce(excluded.phone_number, c.phone_number),
            name = coalesce(excluded.name, c.name)
"""


async def upsert_contact_for_message(
    conn: asyncpg.Connection,
    channel_id: int,
    assistant_id: int,
    chat_id: str,
    phone_number: str | None,
    name: str | None,
) -> ContactRow:
    """The contact (see UPSERT_CONTACT) with its assistant's stored settings, in one round trip, on the caller's transaction."""
    record = await conn.fetchrow(
        f"""
        WITH c AS ({UPSERT_CONTACT} RETURNING {COLUMNS})
        SELECT c.*, a.settings AS assistant_settings FROM c LEFT JOIN assistants a ON a.id = $5
        """,
        channel_id,
        chat_id,
        phone_number,
        name,
        assistant_id,
    )
    return _contact(record, assistant_id=assistant_id, assistant_settings=record["assistant_settings"])


_CONVERSATION_CHANNEL = [field.name for field in fields(ChannelRow) if field.name != "assistant_settings"]
_CONVERSATION_ASSISTANT = [
    field.name for field in fields(AssistantRow) if field.name not in ("id", "settings", "document_languages")
]
CONVERSATION = f"""
SELECT {COLUMNS},
       {", ".join(f"ch.{column} AS ch_{column}" for column in _CONVERSATION_CHANNEL)},
       {", ".join(f"a.{column} AS a_{column}" for column in _CONVERSATION_ASSISTANT)}, a.settings::text AS a_settings,
       -- Only what an automatic assistant's languages need (12 ms on 50k passages).
       CASE WHEN cardinality(a.languages) = 0 THEN {DOCUMENT_LANGUAGES} ELSE '{{}}' END AS a_document_languages,
       EXISTS (SELECT FROM messages m WHERE m.contact_id = c.id AND m.direction = 'out'
                                        AND m.status IN ('pending', 'sending')) AS has_waiting
FROM contacts c JOIN channels ch ON ch.id = c.channel_id JOIN assistants a ON a.id = ch.assistant_id
WHERE c.id = $1
FOR SHARE OF c
"""


async def load_conversation(db: Database, contact_id: int) -> tuple[ContactRow, ChannelRow, AssistantRow, bool] | None:
    """(contact, channel, assistant with `settings` as jsonb text, has unsent outbound) in one
    round trip, or None when the contact is gone. FOR SHARE waits for ingests of this contact in
    flight, so every later statement sees their messages (the reply job's burst read relies on it)."""
    record = await fetchrow(db, CONVERSATION, contact_id)
    if record is None:
        return None
    values = dict(record)
    channel = ChannelRow(**{column: values.pop(f"ch_{column}") for column in _CONVERSATION_CHANNEL})
    assistant = {column: values.pop(f"a_{column}") for column in _CONVERSATION_ASSISTANT}
    assistant.update(
        id=channel.assistant_id, settings=values.pop("a_settings"), document_languages=values.pop("a_document_languages")
    )
    return _contact(values, assistant_id=channel.assistant_id), channel, AssistantRow(**assistant), values["has_waiting"]


async def lock_contact(db: Database, contact_id: int) -> ContactRow | None:
    """Read a contact and hold its row lock (inside a transaction) against concurrent ingests."""
    return _contact(await fetchrow(db, f"SELECT {COLUMNS} FROM contacts c WHERE c.id = $1 FOR UPDATE", contact_id))


async def find_contact(db: Database, contact_id: int) -> ContactRow | None:
    """The contact with its assistant's id and stored settings."""
    record = await fetchrow(
        db,
        f"""
            SELECT {COLUMNS}, ch.assistant_id, a.settings AS assistant_settings
            FROM contacts c JOIN channels ch ON ch.id = c.channel_id JOIN assistants a ON a.id = ch.assistant_id
            WHERE c.id = $1
            """,
        contact_id,
    )
    return (
        _contact(record, assistant_id=record["assistant_id"], assistant_settings=record["assistant_settings"]) if record else None
    )


async def pause_contact(db: Database, contact_id: int, until: datetime, by: str) -> ContactRow | None:
    return _contact(
        await fetchrow(
            db,
            f"UPDATE contacts c SET paused_until = $1, paused_by = $2 WHERE id = $3 RETURNING {COLUMNS}",
            until,
            by,
            contact_id,
        )
    )


async def resume_contact(db: Database, contact_id: int) -> ContactRow | None:
    return _contact(
        await fetchrow(
            db,
            "UPDATE contacts c SET paused_until = NULL, paused_by = NULL, handed_back_at = now() "
            f"WHERE id = $1 RETURNING {COLUMNS}",
            contact_id,
        )
    )


async def set_detected_language(db: Database, contact_id: int, language: str) -> str | None:
    """Set the contact's language from a detection unless an operator set it; the contact's language now."""
    return await fetchval(
        db,
        """
        WITH detected AS (
            UPDATE contacts SET language = $2, language_source = 'detected', language_set_at = now()
            WHERE id = $1 AND language_source IS DISTINCT FROM 'operator'
            RETURNING language
        )
        SELECT coalesce((SELECT language FROM detected), (SELECT language FROM contacts WHERE id = $1))
        """,
        contact_id,
        language,
    )


async def set_operator_language(db: Database, contact_id: int, language: str | None) -> ContactRow | None:
    """An operator's language for the contact (kept against detection), or None: detection decides again."""
    return _contact(
        await fetchrow(
            db,
            f"""
            UPDATE contacts c SET language = $2, language_source = CASE WHEN $2::text IS NOT NULL THEN 'operator' END,
                                  language_set_at = CASE WHEN $2::text IS NOT NULL THEN now() END
            WHERE id = $1 RETURNING {COLUMNS}
            """,
            contact_id,
            language,
        )
    )


async def set_opted_out(db: Database, contact_id: int, opted_out: bool) -> None:
    await execute(
        db,
        "UPDATE contacts SET opted_out_at = CASE WHEN $1 THEN coalesce(opted_out_at, now()) END WHERE id = $2",
        opted_out,
        contact_id,
    )


# Every filter is always in the statement; a NULL value turns it off (one statement text, one plan).
CONTACT_FILTERS = """
    (CAST($1 AS bigint) IS NULL OR ch.assistant_id = $1)
    AND (CAST($2 AS bigint) IS NULL OR c.channel_id = $2)
    AND (CAST($3 AS text) IS NULL OR c.name ILIKE $3 OR c.phone_number ILIKE $3 OR c.chat_id ILIKE $3
         OR EXISTS (SELECT 1 FROM messages m WHERE m.contact_id = c.id AND m.text ILIKE $3))  -- what was written or said
    AND (CAST($4 AS text) IS NULL
         OR ($4 = 'paused' AND c.paused_until > now())
         OR ($4 = 'unanswered' AND EXISTS (SELECT 1 FROM messages m WHERE m.contact_id = c.id AND m.direction = 'in'
                                           AND m.status IN ('pending', 'failed')))
         OR ($4 = 'failed' AND EXISTS (SELECT 1 FROM messages m WHERE m.contact_id = c.id AND m.status = 'failed')))
"""


def _filter_args(filters: dict) -> tuple:
    q = filters.get("q")
    pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" if q else None
    return filters.get("assistant_id"), filters.get("channel_id"), pattern, filters.get("status")


async def list_contacts(db: Database, filters: dict, limit: int, offset: int) -> tuple[list[ContactListing], int]:
    """Contacts, most recently active first, each with its last message."""
    args = _filter_args(filters)
    records = await fetch(
        db,
        f"""
        SELECT {COLUMNS}, ch.assistant_id, {LAST_MESSAGE}
        FROM contacts c JOIN channels ch ON ch.id = c.channel_id {LAST_MESSAGE_JOIN}
        WHERE {CONTACT_FILTERS}
        ORDER BY c.last_message_at DESC NULLS LAST, c.id DESC
        LIMIT $5 OFFSET $6
        """,
        *args,
        limit,
        offset,
    )
    total = await fetchval(
        db, f"SELECT count(*) FROM contacts c JOIN channels ch ON ch.id = c.channel_id WHERE {CONTACT_FILTERS}", *args
    )
    return [_listing(record) for record in records], total


# Who waits for a person, and why: a message that asked for one (`handoff`), one that could not be
# sent or answered (`failed_send`), or the fallback answer, which promises a person's follow-up
# (`fallback`) — each only when it came after the last time a person dealt with the thread (wrote
# to the customer, unless that failed, or handed the thread back). Opted-out customers wait for nobody.
# `since`: the customer's message the event answers (or the event itself), so the wait counts from
# when the customer wrote.
WAITING = """
WITH events AS (
    SELECT m.contact_id,
           CASE WHEN m.direction = 'in' AND m.reason = 'handoff_request' THEN 'handoff'
                WHEN m.status = 'failed' THEN 'failed_send'
                ELSE 'fallback' END AS reason,
           coalesce(q.created_at, m.created_at) AS since
    FROM messages m
    JOIN contacts c ON c.id = m.contact_id
    JOIN channels ch ON ch.id = c.channel_id
    LEFT JOIN messages q ON q.id = m.reply_to_id
    WHERE ((m.direction = 'in' AND m.reason = 'handoff_request') OR m.status = 'failed'
           OR (m.direction = 'out' AND m.author = 'bot' AND m.used_fallback AND m.status <> 'stale'))
      AND c.opted_out_at IS NULL
      AND (CAST($1 AS bigint) IS NULL OR ch.assistant_id = $1)
      -- A failure happens when the message is marked failed, not when it was written.
      AND CASE WHEN m.status = 'failed' THEN m.updated_at ELSE m.created_at END > greatest(
            c.handed_back_at,
            (SELECT max(h.created_at) FROM messages h
             WHERE h.contact_id = c.id AND h.author IN ('operator', 'owner') AND h.status <> 'failed'),
            '-infinity')
), waiting AS (
    SELECT contact_id, min(since) AS since,
           -- The reason shown first: the oldest; at the same moment, the customer's own request first.
           (array_agg(reason ORDER BY since, array_position(ARRAY['handoff', 'failed_send', 'fallback'], reason)))[1]
               AS reason,
           array_agg(DISTINCT reason ORDER BY reason) AS reasons
    FROM events GROUP BY contact_id
)
"""


async def waiting_contacts(db: Database, assistant_id: int | None, limit: int, offset: int) -> list[ContactListing]:
    """Contacts waiting for a person, the longest waiting first, each with why and since when, and its last message."""
    records = await fetch(
        db,
        f"""
        {WAITING}
        SELECT {COLUMNS}, ch.assistant_id, w.reason, w.reasons, w.since AS waiting_since, {LAST_MESSAGE}
        FROM waiting w JOIN contacts c ON c.id = w.contact_id JOIN channels ch ON ch.id = c.channel_id {LAST_MESSAGE_JOIN}
        ORDER BY w.since, c.id
        LIMIT $2 OFFSET $3
        """,
        assistant_id,
        limit,
        offset,
    )
    return [_listing(record) for record in records]


async def waiting_summary(db: Database, assistant_id: int | None) -> dict:
    """How many contacts wait for a person ({reason: count} by the reason shown first) and since when the longest has."""
    records = await fetch(
        db, f"{WAITING} SELECT reason, count(*) AS count, min(since) AS since FROM waiting GROUP BY reason", assistant_id
    )
    by_reason = {record["reason"]: record["count"] for record in records}
    oldest = min((record["since"] for record in records), default=None)
    return {"total": sum(by_reason.values()), "by_reason": by_reason, "oldest_since": oldest}
