"""SQL for messages: inbound (unique per channel), outbound (idempotent), the thread, the counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg
from databases import Database

from backend.database import execute, fetch, fetchrow, fetchval, row, rows
from backend.store.batch import StatementBatcher
from backend.store.contacts import UPSERT_CONTACT

COLUMNS = (
    "id, channel_id, contact_id, direction, author, provider_message_id, idempotency_key, text, status, reason, "
    "error, sources, trace, degraded, reply_to_id, provider_timestamp, latency_ms, attempts, created_at, "
    "updated_at, sent_at"
)


@dataclass(frozen=True)
class MessageRow:
    id: int
    channel_id: int
    contact_id: int
    direction: str
    author: str
    provider_message_id: str | None
    idempotency_key: str | None
    text: str
    status: str
    reason: str | None
    error: str | None
    sources: list | None
    trace: dict | None
    degraded: bool
    reply_to_id: int | None
    provider_timestamp: datetime | None
    latency_ms: int | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    # Only on a thread's rows (`thread`): the attachment, if any (see backend.store.media).
    media_kind: str | None = None
    media_mimetype: str | None = None
    transcript_model: str | None = None
    audio_seconds: float | None = None
    transcribe_seconds: float | None = None
    media_error: str | None = None
    heard_language: str | None = None  # only on a voice note just heard: the language Whisper heard it in
    reactions: list[dict] | None = None  # [{emoji, sentiment}], on a reply the customer reacted to
    quote_id: str | None = None  # only on a waiting reply (`waiting_outbound`): the customer's message to quote
    # Only on the rows of a burst (`pending_inbound`):
    recent_contact: int | None = None
    recent_channel: int | None = None
    history: list[dict] | None = None


def _message(record) -> MessageRow | None:  # asyncpg record
    return MessageRow(**record) if record is not None else None


DELIVERED = ("sent", "delivered", "read", "played")
# Acks only move forward: a late "sent" never undoes "read".
ACK_RANK = {"pending": 0, "sending": 0, "sent": 1, "delivered": 2, "read": 3, "played": 4}


async def insert_message(db: Database, values: dict) -> int | None:
    """Store a message; None when its provider id is already stored (a duplicate delivery)."""
    return await fetchval(
        db,
        """
        INSERT INTO messages (channel_id, contact_id, direction, author, provider_message_id, text, status, reason,
                              provider_timestamp, sent_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
                $9, CASE WHEN $3 = 'out' THEN now() END)
        ON CONFLICT (channel_id, provider_message_id) DO NOTHING
        RETURNING id
        """,
        values["channel_id"],
        values["contact_id"],
        values["direction"],
        values["author"],
        values["provider_message_id"],
        values["text"],
        values["status"],
        values["reason"],
        values["provider_timestamp"],
    )


async def insert_message_checking_queue(conn: asyncpg.Connection, values: dict, serial_key: str) -> tuple[int | None, bool]:
    """`insert_message` and "is a job with this serial key already queued?" in one round trip
    (the webhook hot path). Returns (message id or None for a duplicate, queued)."""
    record = await conn.fetchrow(
        """
        WITH m AS (
            INSERT INTO messages (channel_id, contact_id, direction, author, provider_message_id, text, status,
                                  reason, provider_timestamp)
            VALUES ($1, $2, 'in', 'customer', $3, $4, $5, $6, $7)
            ON CONFLICT (channel_id, provider_message_id) DO NOTHING
            RETURNING id
        )
        SELECT (SELECT id FROM m) AS id,
               EXISTS (SELECT 1 FROM jobs WHERE serial_key = $8 AND status = 'queued') AS queued
        """,
        values["channel_id"],
        values["contact_id"],
        values["provider_message_id"],
        values["text"],
        values["status"],
        values["reason"],
        values["provider_timestamp"],
        serial_key,
    )
    return record["id"], record["queued"]


# The webhook hot path in one statement, jobs included (their rules, dedup and serial keys, are those of
# backend.store.jobs): one round trip where three owners' statements would take three.
INGEST_CUSTOMER = f"""
WITH c AS (
    {UPSERT_CONTACT}
    RETURNING c.id, c.opted_out_at IS NULL AND (c.paused_until IS NULL OR c.paused_until <= now()) AS usual
), m AS (
    INSERT INTO messages (channel_id, contact_id, direction, author, provider_message_id, text, status, reason,
                          provider_timestamp)
    SELECT $1, c.id, 'in', 'customer', $5, $6, $7, $8, $9 FROM c WHERE c.usual
    ON CONFLICT (channel_id, provider_message_id) DO NOTHING
    RETURNING id, contact_id
), j AS (
    INSERT INTO jobs (kind, payload, dedup_key, serial_key, run_at, max_attempts)
    SELECT CAST($10 AS text), jsonb_build_object('contact_id', m.contact_id) || CAST($11 AS jsonb),
           CAST($12 AS text) || m.contact_id, CAST($13 AS text) || m.contact_id,
           now() + make_interval(secs => $14), $15
    FROM m WHERE CAST($7 AS text) = 'pending'
    ON CONFLICT (dedup_key) WHERE status = 'queued' DO NOTHING
    RETURNING id
), wake AS (
    SELECT pg_notify(CAST($16 AS text), CAST($10 AS text)) FROM j
)
SELECT c.id AS contact_id, c.usual, (SELECT id FROM m) AS message_id, (SELECT id FROM j) AS job_id,
       EXISTS (SELECT FROM wake) AS woken
FROM c  -- always one row (batched executions are matched by position)
"""


def ingest_batcher(db: Database) -> StatementBatcher:
    """Concurrent webhooks' `ingest_customer_message` statements, committed together; each batch
    takes its contact rows' locks in (channel, chat) order."""
    return StatementBatcher(db, INGEST_CUSTOMER, order_key=lambda args: (args[0], args[1]))


async def ingest_customer_message(
    batcher: StatementBatcher, contact: dict, message: dict, job: dict, notify_channel: str
) -> dict | None:
    """The webhook hot path in ONE statement (atomic on its own): upsert the contact, store the
    message unless the contact is opted out or paused (`usual` false: the caller decides again
    with the contact's real state), and queue a reply job unless one is queued already (the
    partial unique index on `dedup_key` decides on committed state, not on this statement's
    snapshot), waking the workers only when a job was added.

    `contact`: channel_id, chat_id, phone_number, name. `message`: provider_message_id, text, status,
    reason, provider_timestamp. `job`: kind, payload, dedup_prefix, serial_prefix, delay_seconds,
    max_attempts (`payload` gets the contact id). `batcher`: from `ingest_batcher`."""
    record = await batcher.fetchrow(
        contact["channel_id"],
        contact["chat_id"],
        contact["phone_number"],
        contact["name"],
        message["provider_message_id"],
        message["text"],
        message["status"],
        message["reason"],
        message["provider_timestamp"],
        job["kind"],
        job["payload"],
        job["dedup_prefix"],
        job["serial_prefix"],
        float(job["delay_seconds"]),
        job["max_attempts"],
        notify_channel,
    )
    return dict(record)


async def is_own_outbound(db: Database, channel_id: int, contact_id: int, provider_message_id: str, text: str) -> bool:
    """True when a fromMe message is the echo of something we sent (same provider id, or the same
    text sent to this contact moments ago, before the provider id was recorded)."""
    return bool(
        await fetchval(
            db,
            """
            SELECT EXISTS (
                SELECT 1 FROM messages WHERE channel_id = $1 AND provider_message_id = $2
                  AND direction = 'out' AND author IN ('bot', 'operator')
            ) OR EXISTS (
                SELECT 1 FROM messages WHERE contact_id = $3 AND direction = 'out'
                  AND author IN ('bot', 'operator') AND text = $4
                  AND status IN ('pending', 'sending', 'sent', 'delivered', 'read', 'played')
                  AND created_at > now() - interval '10 minutes'
            )
            """,
            channel_id,
            provider_message_id,
            contact_id,
            text,
        )
    )


BURST = f"""
SELECT {COLUMNS},
       (SELECT count(*) FROM (SELECT FROM messages r WHERE r.channel_id = $2 AND r.contact_id = $1 AND r.direction = 'out'
            AND r.author = 'bot' AND r.status NOT IN ('stale', 'failed') AND r.created_at > now() - interval '1 minute'
            LIMIT $3) x) AS recent_contact,
       (SELECT count(*) FROM (SELECT FROM messages r WHERE r.channel_id = $2 AND r.direction = 'out'
            AND r.author = 'bot' AND r.status NOT IN ('stale', 'failed') AND r.created_at > now() - interval '1 minute'
            LIMIT $4) x) AS recent_channel,
       (SELECT json_agg(json_build_object('id', h.id, 'direction', h.direction, 'author', h.author, 'text', h.text,
                                          'at', extract(epoch FROM h.created_at)) ORDER BY h.id DESC)
        FROM (SELECT id, direction, author, text, created_at FROM messages
              WHERE contact_id = $1 AND text <> ''
                AND id < (SELECT min(id) FROM messages WHERE contact_id = $1 AND direction = 'in' AND status = 'pending')
                AND ((direction = 'in' AND status = 'answered')
                     OR (direction = 'out' AND status IN ('sent', 'delivered', 'read', 'played')))
              ORDER BY id DESC LIMIT $5) h) AS history
FROM messages WHERE contact_id = $1 AND direction = 'in' AND status = 'pending' ORDER BY id
"""


async def pending_inbound(
    db: Database, contact_id: int, channel_id: int, caps: tuple[int, int], history_limit: int
) -> list[MessageRow]:
    """The contact's burst buffer (inbound messages still waiting for a reply, oldest first), in one
    round trip with what answering it needs; each row carries:
    - `recent_contact`, `recent_channel`: the bot's replies of the last minute to this contact and
      on the channel, counted up to `caps` (the rate limits: counting further changes nothing);
    - `history`: up to `history_limit` turns before the burst, newest first, as `conversation_before`
      gives them (`created_at` as epoch seconds in `at`)."""
    return [MessageRow(**record) for record in await fetch(db, BURST, contact_id, channel_id, caps[0], caps[1], history_limit)]


WAITING_OUTBOUND = f"""
SELECT {", ".join(f"m.{column.strip()}" for column in COLUMNS.split(","))},
       -- The customer wrote again after the message this part answers: the reply quotes it.
       CASE WHEN m.idempotency_key LIKE '%:0' AND EXISTS (
                SELECT FROM messages n WHERE n.contact_id = m.contact_id AND n.direction = 'in' AND n.id > m.reply_to_id)
            THEN q.provider_message_id END AS quote_id
FROM messages m LEFT JOIN messages q ON q.id = m.reply_to_id
WHERE m.contact_id = $1 AND m.direction = 'out' AND m.status IN ('pending', 'sending')
ORDER BY m.id
"""


async def waiting_outbound(db: Database, contact_id: int) -> list[MessageRow]:
    """Outbound messages stored but not yet known to be sent (pending, or sending when a worker died)."""
    return [MessageRow(**record) for record in await fetch(db, WAITING_OUTBOUND, contact_id)]


async def insert_outbound(db: Database, values: dict) -> int | None:
    """Store a reply before sending it; the idempotency key makes a repeated insert a no-op."""
    return await fetchval(
        db,
        """
        INSERT INTO messages (channel_id, contact_id, direction, author, idempotency_key, text, status, sources, trace,
                              degraded, reply_to_id)
        VALUES ($1, $2, 'out', $3, $4, $5, 'pending', $6, $7,
                $8, $9)
        ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
        RETURNING id
        """,
        values["channel_id"],
        values["contact_id"],
        values["author"],
        values["idempotency_key"],
        values["text"],
        values["sources"],
        values["trace"],
        values["degraded"],
        values["reply_to_id"],
    )


STORE_REPLY = """
WITH contact AS (
    SELECT paused_until FROM contacts WHERE id = $1 FOR UPDATE
), state AS (
    SELECT $2 AND paused_until IS NOT NULL AND paused_until > now() AS taken_over,
           EXISTS (SELECT FROM messages WHERE contact_id = $1 AND direction = 'in' AND status = 'pending'
                                          AND id > $3) AS stale,
           EXISTS (SELECT FROM messages WHERE contact_id = $1 AND direction = 'out'
                                          AND status IN ('pending', 'sending')) AS waiting
    FROM contact
), parts AS (
    INSERT INTO messages (channel_id, contact_id, direction, author, idempotency_key, text, status, attempts, sources,
                          trace, degraded, reply_to_id, used_fallback, ungrounded, top_score)
    SELECT $4, $1, 'out', 'bot', 'reply:' || $3 || ':' || (part.n - 1), part.text,
           CASE WHEN part.n = 1 AND NOT state.waiting THEN 'sending' ELSE 'pending' END,
           CASE WHEN part.n = 1 AND NOT state.waiting THEN 1 ELSE 0 END,
           CASE WHEN part.n = 1 THEN CAST($6 AS jsonb) END, CASE WHEN part.n = 1 THEN CAST($7 AS jsonb) END, $8, $3,
           part.n = 1 AND $10, part.n = 1 AND $11, CASE WHEN part.n = 1 THEN CAST($12 AS double precision) END
    FROM state, unnest(CAST($5 AS text[])) WITH ORDINALITY AS part(text, n)
    WHERE NOT state.taken_over AND NOT state.stale
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id, status
), answered AS (
    UPDATE messages SET status = 'answered', error = NULL, updated_at = now()
    WHERE id = ANY(CAST($9 AS bigint[])) AND direction = 'in' AND status = 'pending'
      AND EXISTS (SELECT FROM state WHERE NOT taken_over AND NOT stale)
    RETURNING id
)
SELECT taken_over, stale, (SELECT count(*) FROM parts) AS stored, (SELECT count(*) FROM answered) AS answered,
       (SELECT id FROM parts WHERE status = 'sending') AS sending_id
FROM state
"""


async def store_reply(db: Database, reply: dict, answered_ids: list[int], *, pause_applies: bool) -> dict | None:
    """Store a bot reply (its parts, idempotency keys `reply:<latest>:<n>`) and mark the messages it
    answers, in one statement on the locked contact — unless the contact is paused
    (`pause_applies`) or wrote again after `reply["reply_to_id"]`. Returns {taken_over, stale,
    stored, answered, sending_id}, or None when the contact is gone.

    When nothing else waits to be sent, the first part is stored already `sending` (attempts 1):
    what `mark_sending` would commit next, one statement (and one index-heavy update) earlier.
    `sending_id` names it. `reply`: contact_id, channel_id, reply_to_id, parts, sources, trace,
    degraded, used_fallback, ungrounded, top_score (the best retrieval score): how the answer went, on the first part."""
    record = await fetchrow(
        db,
        STORE_REPLY,
        reply["contact_id"],
        pause_applies,
        reply["reply_to_id"],
        reply["channel_id"],
        reply["parts"],
        reply["sources"],
        reply["trace"],
        reply["degraded"],
        answered_ids,
        reply.get("used_fallback", False),
        reply.get("ungrounded", False),
        reply.get("top_score"),
    )
    return dict(record) if record is not None else None


async def find_message(db: Database, message_id: int) -> MessageRow | None:
    return _message(await fetchrow(db, f"SELECT {COLUMNS} FROM messages WHERE id = $1", message_id))


async def set_inbound_status(
    db: Database, message_ids: list[int], status: str, reason: str | None = None, error: str | None = None
) -> None:
    await execute(
        db,
        "UPDATE messages SET status = $2, reason = coalesce($3, reason), error = $4, updated_at = now() "
        "WHERE id = ANY($1::bigint[]) AND direction = 'in'",
        message_ids,
        status,
        reason,
        error,
    )


async def mark_sending(db: Database, message_id: int) -> None:
    await execute(
        db, "UPDATE messages SET status = 'sending', attempts = attempts + 1, updated_at = now() WHERE id = $1", message_id
    )


MARK_SENT = """
WITH echo AS (
    -- The phone's echo of this very message may have been stored before we knew its id; it goes
    -- first (the unique provider id), hence referenced below.
    DELETE FROM messages WHERE $2::text IS NOT NULL AND provider_message_id = $2 AND author = 'owner' AND id <> $1
      AND channel_id = (SELECT channel_id FROM messages WHERE id = $1)
    RETURNING id
)
UPDATE messages m SET status = 'sent', provider_message_id = coalesce($2, m.provider_message_id),
       sent_at = now(), error = NULL, updated_at = now(),
       latency_ms = (SELECT round(extract(epoch FROM now() - q.created_at) * 1000)::int
                     FROM messages q WHERE q.id = m.reply_to_id)
WHERE m.id = $1 AND (SELECT count(*) FROM echo) >= 0
"""


async def mark_sent(db: Database, message_id: int, provider_message_id: str | None) -> None:
    """Record the send, its provider id and the latency from the customer's message (one statement)."""
    await execute(db, MARK_SENT, message_id, provider_message_id)


async def mark_failed(db: Database, message_id: int, error: str) -> None:
    await execute(
        db, "UPDATE messages SET status = 'failed', error = $1, updated_at = now() WHERE id = $2", error[:2000], message_id
    )


async def record_send_error(db: Database, message_id: int, error: str) -> None:
    await execute(db, "UPDATE messages SET error = $2, updated_at = now() WHERE id = $1", message_id, error[:2000])


async def fail_waiting(db: Database, contact_id: int, error: str, reason: str | None = None) -> int:
    """Everything of this contact still waiting becomes failed, with the error (and our reason code, when there is one)."""
    return len(
        await fetch(
            db,
            """
            UPDATE messages SET status = 'failed', error = $1, reason = coalesce($3, reason), updated_at = now()
            WHERE contact_id = $2 AND ((direction = 'in' AND status = 'pending')
                                        OR (direction = 'out' AND status IN ('pending', 'sending')))
            RETURNING id
            """,
            error[:2000],
            contact_id,
            reason,
        )
    )


async def apply_ack(
    db: Database, channel_id: int, provider_message_id: str, status: str, error: str | None = None, reason: str | None = None
) -> bool:
    """Move an outbound message's delivery status forward (a failure always applies, once, with its error and reason)."""
    lower = [name for name, rank in ACK_RANK.items() if rank < ACK_RANK.get(status, 0)]
    if status != "failed" and not lower:
        return False
    updated = await fetchval(
        db,
        """
        UPDATE messages SET status = $1, updated_at = now(),
               error = CASE WHEN $1 = 'failed' THEN coalesce($5, 'the gateway reported a delivery failure') ELSE error END,
               reason = CASE WHEN $1 = 'failed' THEN coalesce($6, reason) ELSE reason END
        WHERE channel_id = $2 AND provider_message_id = $3 AND direction = 'out'
          AND CASE WHEN $1 = 'failed' THEN status <> 'failed' ELSE status = ANY(CAST($4 AS text[])) END
        RETURNING id
        """,
        status,
        channel_id,
        provider_message_id,
        lower,
        error,
        reason,
    )
    return updated is not None


async def thread(db: Database, contact_id: int, limit: int, offset: int) -> tuple[list[MessageRow], int]:
    """A contact's messages both ways, oldest first (the page counts from the newest)."""
    records = await fetch(
        db,
        f"""
        SELECT latest.*, mm.kind AS media_kind, mm.mimetype AS media_mimetype, mm.transcript_model, mm.audio_seconds,
               mm.transcribe_seconds,
               mm.error AS media_error,
               (SELECT json_agg(json_build_object('emoji', r.emoji, 'sentiment', r.sentiment) ORDER BY r.created_at)
                FROM message_reactions r WHERE r.message_id = latest.id) AS reactions
        FROM (SELECT {COLUMNS} FROM messages WHERE contact_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3) latest
        LEFT JOIN message_media mm ON mm.message_id = latest.id
        ORDER BY latest.id
        """,
        contact_id,
        limit,
        offset,
    )
    total = await fetchval(db, "SELECT count(*) FROM messages WHERE contact_id = $1", contact_id)
    return [MessageRow(**record) for record in records], total


FIRST_PART = "reply:%:0"  # a bot reply's first part: one per answer, whatever its length


async def daily_counts(db: Database, assistant_id: int | None, days: int) -> list[dict]:
    """Per day: messages both ways and what became of the customers' questions (see `DayCount`)."""
    return rows(
        await fetch(
            db,
            """
            SELECT date_trunc('day', m.created_at)::date AS day,
                   count(*) FILTER (WHERE m.direction = 'in') AS inbound,
                   count(*) FILTER (WHERE m.direction = 'out' AND m.status IN ('sent', 'delivered', 'read', 'played'))
                       AS outbound,
                   count(DISTINCT m.contact_id) FILTER (WHERE m.direction = 'in') AS conversations,
                   count(*) FILTER (WHERE m.author = 'bot' AND m.idempotency_key LIKE $3
                                    AND m.status IN ('sent', 'delivered', 'read', 'played')) AS answered_by_bot,
                   count(*) FILTER (WHERE m.direction = 'in' AND m.reason = 'handoff_request') AS handed_to_person,
                   count(*) FILTER (WHERE m.author = 'bot' AND m.used_fallback) AS fallback,
                   count(*) FILTER (WHERE m.author = 'bot' AND m.ungrounded) AS ungrounded_replaced,
                   count(*) FILTER (WHERE m.direction = 'out' AND m.status = 'failed') AS failed_sends,
                   coalesce(sum(r.up), 0) AS thumbs_up,
                   coalesce(sum(r.down), 0) AS thumbs_down,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY m.latency_ms)
                       FILTER (WHERE m.idempotency_key LIKE $3 AND m.latency_ms IS NOT NULL) AS median_latency_ms,
                   percentile_cont(0.9) WITHIN GROUP (ORDER BY m.latency_ms)
                       FILTER (WHERE m.idempotency_key LIKE $3 AND m.latency_ms IS NOT NULL) AS p90_latency_ms
            FROM messages m JOIN channels ch ON ch.id = m.channel_id
            LEFT JOIN LATERAL (
                SELECT count(*) FILTER (WHERE x.sentiment = 'positive') AS up,
                       count(*) FILTER (WHERE x.sentiment = 'negative') AS down
                FROM message_reactions x WHERE x.message_id = m.id
            ) r ON m.direction = 'out'
            WHERE m.created_at > now() - make_interval(days => $1)
              AND (CAST($2 AS bigint) IS NULL OR ch.assistant_id = $2)
            GROUP BY 1 ORDER BY 1
            """,
            days,
            assistant_id,
            FIRST_PART,
        )
    )


async def totals(db: Database, assistant_id: int | None, days: int) -> dict:
    return row(
        await fetchrow(
            db,
            """
            SELECT count(*) FILTER (WHERE m.direction = 'in') AS inbound,
                   count(*) FILTER (WHERE m.direction = 'out' AND m.status IN ('sent', 'delivered', 'read', 'played'))
                       AS outbound,
                   count(*) FILTER (WHERE m.status = 'failed') AS failed,
                   count(*) FILTER (WHERE m.direction = 'in' AND m.status IN ('pending', 'failed')) AS unanswered,
                   count(*) FILTER (WHERE m.direction = 'in' AND m.status = 'ignored') AS ignored,
                   count(*) FILTER (WHERE m.degraded AND m.idempotency_key LIKE $1) AS degraded,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY m.latency_ms)
                       FILTER (WHERE m.idempotency_key LIKE $1 AND m.latency_ms IS NOT NULL) AS median_latency_ms,
                   percentile_cont(0.9) WITHIN GROUP (ORDER BY m.latency_ms)
                       FILTER (WHERE m.idempotency_key LIKE $1 AND m.latency_ms IS NOT NULL) AS p90_latency_ms
            FROM messages m JOIN channels ch ON ch.id = m.channel_id
            WHERE m.created_at > now() - make_interval(days => $2)
              AND (CAST($3 AS bigint) IS NULL OR ch.assistant_id = $3)
            """,
            FIRST_PART,
            days,
            assistant_id,
        )
    )


async def weakly_answered_questions(db: Database, assistant_id: int, min_score: float, since_days: int, limit: int) -> list[dict]:
    """Inbound customer messages whose bot reply was weak: the fallback, little of value retrieved
    (below `min_score`), no model answering (degraded), a generated answer stopped for stating
    facts the sources lack (ungrounded), or a reply the customer gave a 👎."""
    return rows(
        await fetch(
            db,
            """
            SELECT q.id AS message_id, q.text, q.created_at, r.id AS reply_id,
                   r.used_fallback, r.top_score
            FROM messages r
            JOIN messages q ON q.id = r.reply_to_id
            JOIN channels ch ON ch.id = r.channel_id
            WHERE ch.assistant_id = $1 AND r.author = 'bot' AND q.author = 'customer' AND q.text <> ''
              AND r.created_at > now() - make_interval(days => $2)
              -- Filled by an FAQ saved from the gaps page (deleting that FAQ empties the column).
              AND r.gap_filled_by IS NULL
              AND (r.used_fallback OR r.degraded OR r.ungrounded OR r.top_score < $3
                   OR EXISTS (SELECT FROM message_reactions x WHERE x.message_id = r.id AND x.sentiment = 'negative'))
            ORDER BY r.id DESC
            LIMIT $4
            """,
            assistant_id,
            since_days,
            min_score,
            limit,
        )
    )


async def mark_gap_filled(db: Database, assistant_id: int, question_ids: list[int], document_id: int) -> int:
    """Note on the weak bot replies to these customer questions that `document_id` now answers them; how many."""
    return await fetchval(
        db,
        """
        WITH filled AS (
            UPDATE messages r
            SET gap_filled_by = $3
            FROM channels ch
            WHERE ch.id = r.channel_id AND ch.assistant_id = $1 AND r.author = 'bot'
              AND r.reply_to_id = ANY(CAST($2 AS bigint[]))
            RETURNING r.id
        )
        SELECT count(*) FROM filled
        """,
        assistant_id,
        question_ids,
        document_id,
    )


@dataclass(frozen=True)
class AnsweredQuestion:
    """A bot reply and the customer's message it answered."""

    reply_id: int
    question: str
    answer: str


async def find_answered_question(db: Database, assistant_id: int, reply_id: int) -> AnsweredQuestion | None:
    """The bot reply `reply_id` in one of the assistant's threads, with its question; None when it is not one."""
    record = await fetchrow(
        db,
        """
        SELECT r.id AS reply_id, coalesce(q.text, '') AS question, r.text AS answer
        FROM messages r
        JOIN channels ch ON ch.id = r.channel_id
        LEFT JOIN messages q ON q.id = r.reply_to_id
        WHERE r.id = $2 AND ch.assistant_id = $1 AND r.author = 'bot'
        """,
        assistant_id,
        reply_id,
    )
    return AnsweredQuestion(**record) if record is not None else None
