"""SQL for messages: inbound (unique per channel), outbound (idempotent), the thread, the counts."""

from __future__ import annotations

import asyncpg
from databases import Database

from backend.database import row, rows

COLUMNS = (
    "id, channel_id, contact_id, direction, author, provider_message_id, idempotency_key, text, status, reason, "
    "error, sources, trace, degraded, reply_to_id, provider_timestamp, latency_ms, attempts, created_at, "
    "updated_at, sent_at"
)
DELIVERED = ("sent", "delivered", "read", "played")
# Acks only move forward: a late "sent" never undoes "read".
ACK_RANK = {"pending": 0, "sending": 0, "sent": 1, "delivered": 2, "read": 3, "played": 4}


async def insert_message(db: Database, values: dict) -> int | None:
    """Store a message; None when its provider id is already stored (a duplicate delivery)."""
    return await db.fetch_val(
        """
        INSERT INTO messages (channel_id, contact_id, direction, author, provider_message_id, text, status, reason,
                              provider_timestamp, sent_at)
        VALUES (:channel_id, :contact_id, :direction, :author, :provider_message_id, :text, :status, :reason,
                :provider_timestamp, CASE WHEN :direction = 'out' THEN now() END)
        ON CONFLICT (channel_id, provider_message_id) DO NOTHING
        RETURNING id
        """,
        values,
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


async def is_own_outbound(db: Database, channel_id: int, contact_id: int, provider_message_id: str, text: str) -> bool:
    """True when a fromMe message is the echo of something we sent (same provider id, or the same
    text sent to this contact moments ago, before the provider id was recorded)."""
    return bool(
        await db.fetch_val(
            """
            SELECT EXISTS (
                SELECT 1 FROM messages WHERE channel_id = :channel_id AND provider_message_id = :pid
                  AND direction = 'out' AND author IN ('bot', 'operator')
            ) OR EXISTS (
                SELECT 1 FROM messages WHERE contact_id = :contact_id AND direction = 'out'
                  AND author IN ('bot', 'operator') AND text = :text
                  AND status IN ('pending', 'sending', 'sent', 'delivered', 'read', 'played')
                  AND created_at > now() - interval '10 minutes'
            )
            """,
            {"channel_id": channel_id, "contact_id": contact_id, "pid": provider_message_id, "text": text},
        )
    )


async def queued_job_exists(db: Database, serial_key: str) -> bool:
    return bool(
        await db.fetch_val(
            "SELECT EXISTS (SELECT 1 FROM jobs WHERE serial_key = :key AND status = 'queued')", {"key": serial_key}
        )
    )


async def pending_inbound(db: Database, contact_id: int) -> list[dict]:
    """The contact's burst buffer: inbound messages still waiting for a reply, oldest first."""
    return rows(
        await db.fetch_all(
            f"SELECT {COLUMNS} FROM messages WHERE contact_id = :id AND direction = 'in' AND status = 'pending' ORDER BY id",
            {"id": contact_id},
        )
    )


async def waiting_outbound(db: Database, contact_id: int) -> list[dict]:
    """Outbound messages stored but not yet known to be sent (pending, or sending when a worker died)."""
    return rows(
        await db.fetch_all(
            f"SELECT {COLUMNS} FROM messages WHERE contact_id = :id AND direction = 'out' "
            "AND status IN ('pending', 'sending') ORDER BY id",
            {"id": contact_id},
        )
    )


async def insert_outbound(db: Database, values: dict) -> int | None:
    """Store a reply before sending it; the idempotency key makes a repeated insert a no-op."""
    return await db.fetch_val(
        """
        INSERT INTO messages (channel_id, contact_id, direction, author, idempotency_key, text, status, sources, trace,
                              degraded, reply_to_id)
        VALUES (:channel_id, :contact_id, 'out', :author, :idempotency_key, :text, 'pending', :sources, :trace,
                :degraded, :reply_to_id)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id
        """,
        values,
    )


async def find_message(db: Database, message_id: int) -> dict | None:
    return row(await db.fetch_one(f"SELECT {COLUMNS} FROM messages WHERE id = :id", {"id": message_id}))


async def set_inbound_status(
    db: Database, message_ids: list[int], status: str, reason: str | None = None, error: str | None = None
) -> None:
    await db.execute(
        "UPDATE messages SET status = :status, reason = coalesce(:reason, reason), error = :error, updated_at = now() "
        "WHERE id = ANY(:ids) AND direction = 'in'",
        {"ids": message_ids, "status": status, "reason": reason, "error": error},
    )


async def mark_sending(db: Database, message_id: int) -> None:
    await db.execute(
        "UPDATE messages SET status = 'sending', attempts = attempts + 1, updated_at = now() WHERE id = :id",
        {"id": message_id},
    )


async def mark_sent(db: Database, message_id: int, provider_message_id: str | None) -> None:
    """Record the send, its provider id and the latency from the customer's message."""
    async with db.transaction():
        if provider_message_id:
            # The phone's echo of this very message may have been stored before we knew its id.
            await db.execute(
                "DELETE FROM messages WHERE provider_message_id = :pid AND author = 'owner' AND id <> :id "
                "AND channel_id = (SELECT channel_id FROM messages WHERE id = :id)",
                {"id": message_id, "pid": provider_message_id},
            )
        await db.execute(
            """
            UPDATE messages m SET status = 'sent', provider_message_id = coalesce(:pid, m.provider_message_id),
                   sent_at = now(), error = NULL, updated_at = now(),
                   latency_ms = (SELECT round(extract(epoch FROM now() - q.created_at) * 1000)::int
                                 FROM messages q WHERE q.id = m.reply_to_id)
            WHERE m.id = :id
            """,
            {"id": message_id, "pid": provider_message_id},
        )


async def mark_failed(db: Database, message_id: int, error: str) -> None:
    await db.execute(
        "UPDATE messages SET status = 'failed', error = :error, updated_at = now() WHERE id = :id",
        {"id": message_id, "error": error[:2000]},
    )


async def record_send_error(db: Database, message_id: int, error: str) -> None:
    await db.execute(
        "UPDATE messages SET error = :error, updated_at = now() WHERE id = :id", {"id": message_id, "error": error[:2000]}
    )


async def fail_waiting(db: Database, contact_id: int, error: str) -> int:
    """After the last attempt: everything of this contact still waiting becomes failed, with the reason."""
    return len(
        await db.fetch_all(
            """
            UPDATE messages SET status = 'failed', error = :error, updated_at = now()
            WHERE contact_id = :id AND ((direction = 'in' AND status = 'pending')
                                        OR (direction = 'out' AND status IN ('pending', 'sending')))
            RETURNING id
            """,
            {"id": contact_id, "error": error[:2000]},
        )
    )


async def conversation_before(db: Database, contact_id: int, before_id: int, limit: int) -> list[dict]:
    """The latest turns before a message, newest first: customer messages that were answered and
    replies that went out (bot, operator, owner)."""
    return rows(
        await db.fetch_all(
            """
            SELECT id, direction, author, text, created_at FROM messages
            WHERE contact_id = :id AND id < :before AND text <> ''
              AND ((direction = 'in' AND status = 'answered')
                   OR (direction = 'out' AND status IN ('sent', 'delivered', 'read', 'played')))
            ORDER BY id DESC LIMIT :limit
            """,
            {"id": contact_id, "before": before_id, "limit": limit},
        )
    )


async def recent_bot_replies(db: Database, channel_id: int, contact_id: int) -> dict:
    """Replies the bot made in the last minute, to this contact and on the whole channel."""
    return row(
        await db.fetch_one(
            """
            SELECT count(*) FILTER (WHERE contact_id = :contact_id) AS contact, count(*) AS channel
            FROM messages
            WHERE channel_id = :channel_id AND direction = 'out' AND author = 'bot'
              AND status NOT IN ('stale', 'failed') AND created_at > now() - interval '1 minute'
            """,
            {"channel_id": channel_id, "contact_id": contact_id},
        )
    )


async def apply_ack(db: Database, channel_id: int, provider_message_id: str, status: str) -> bool:
    if status == "failed":
        condition = "status <> 'failed'"
    else:
        lower = [name for name, rank in ACK_RANK.items() if rank < ACK_RANK.get(status, 0)]
        if not lower:
            return False
        condition = "status = ANY(:lower)"
    params = {"channel_id": channel_id, "pid": provider_message_id, "status": status}
    if status != "failed":
        params["lower"] = lower
    updated = await db.fetch_val(
        f"""
        UPDATE messages SET status = :status, updated_at = now(),
               error = CASE WHEN :status = 'failed' THEN 'the gateway reported a delivery failure' ELSE error END
        WHERE channel_id = :channel_id AND provider_message_id = :pid AND direction = 'out' AND {condition}
        RETURNING id
        """,
        params,
    )
    return updated is not None


async def thread(db: Database, contact_id: int, limit: int, offset: int) -> tuple[list[dict], int]:
    """A contact's messages both ways, oldest first (the page counts from the newest)."""
    records = await db.fetch_all(
        f"""
        SELECT * FROM (
            SELECT {COLUMNS} FROM messages WHERE contact_id = :id ORDER BY id DESC LIMIT :limit OFFSET :offset
        ) latest ORDER BY id
        """,
        {"id": contact_id, "limit": limit, "offset": offset},
    )
    total = await db.fetch_val("SELECT count(*) FROM messages WHERE contact_id = :id", {"id": contact_id})
    return rows(records), total


async def daily_counts(db: Database, assistant_id: int | None, days: int) -> list[dict]:
    return rows(
        await db.fetch_all(
            """
            SELECT date_trunc('day', m.created_at)::date AS day,
                   count(*) FILTER (WHERE m.direction = 'in') AS inbound,
                   count(*) FILTER (WHERE m.direction = 'out' AND m.status IN ('sent', 'delivered', 'read', 'played'))
                       AS outbound
            FROM messages m JOIN channels ch ON ch.id = m.channel_id
            WHERE m.created_at > now() - make_interval(days => :days)
              AND (CAST(:assistant_id AS bigint) IS NULL OR ch.assistant_id = :assistant_id)
            GROUP BY 1 ORDER BY 1
            """,
            {"assistant_id": assistant_id, "days": days},
        )
    )


async def totals(db: Database, assistant_id: int | None, days: int) -> dict:
    return row(
        await db.fetch_one(
            """
            SELECT count(*) FILTER (WHERE m.direction = 'in') AS inbound,
                   count(*) FILTER (WHERE m.direction = 'out' AND m.status IN ('sent', 'delivered', 'read', 'played'))
                       AS outbound,
                   count(*) FILTER (WHERE m.status = 'failed') AS failed,
                   count(*) FILTER (WHERE m.direction = 'in' AND m.status IN ('pending', 'failed')) AS unanswered,
                   count(*) FILTER (WHERE m.direction = 'in' AND m.status = 'ignored') AS ignored,
                   count(*) FILTER (WHERE m.degraded AND m.idempotency_key LIKE :first_part) AS degraded,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY m.latency_ms)
                       FILTER (WHERE m.idempotency_key LIKE :first_part AND m.latency_ms IS NOT NULL) AS median_latency_ms,
                   percentile_cont(0.9) WITHIN GROUP (ORDER BY m.latency_ms)
                       FILTER (WHERE m.idempotency_key LIKE :first_part AND m.latency_ms IS NOT NULL) AS p90_latency_ms
            FROM messages m JOIN channels ch ON ch.id = m.channel_id
            WHERE m.created_at > now() - make_interval(days => :days)
              AND (CAST(:assistant_id AS bigint) IS NULL OR ch.assistant_id = :assistant_id)
            """,
            {"assistant_id": assistant_id, "days": days, "first_part": "reply:%:0"},
        )
    )
