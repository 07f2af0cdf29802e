"""SQL for channels, the numbers linked to assistants, and the sandbox gateway's state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from databases import Database

from backend.database import assignments, execute, fetch, fetchrow, fetchval, row, rows
from backend.store.batch import StatementBatcher

COLUMNS = (
    "id, assistant_id, provider, session_name, status, detail, qr, qr_updated_at, phone_number, "
    "webhook_secret, last_error, last_event_at, status_event_at, connected_at, created_at, updated_at, config"
)


@dataclass(frozen=True)
class ChannelRow:
    id: int
    assistant_id: int
    provider: str
    session_name: str
    status: str
    detail: str
    qr: str | None
    qr_updated_at: datetime | None
    phone_number: str | None
    webhook_secret: str = field(repr=False)
    last_error: str | None = None
    last_event_at: datetime | None = None
    status_event_at: datetime | None = None
    connected_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    config: dict = field(default_factory=dict, repr=False)  # the provider's settings, secrets included
    assistant_settings: str | None = None  # the assistant's stored settings (jsonb text), read with the webhook's channel


def _channel(record) -> ChannelRow | None:  # asyncpg record
    return ChannelRow(**record) if record is not None else None


EDITABLE = {
    "status", "detail", "qr", "qr_updated_at", "phone_number", "last_error", "last_event_at", "status_event_at", "connected_at",
}  # fmt: skip


async def insert_channel(
    db: Database, assistant_id: int, provider: str, session_name: str, webhook_secret: str, config: dict | None = None
) -> ChannelRow:
    return _channel(
        await fetchrow(
            db,
            f"""
            INSERT INTO channels (assistant_id, provider, session_name, webhook_secret, config)
            VALUES ($1, $2, $3, $4, $5)
            RETURNING {COLUMNS}
            """,
            assistant_id,
            provider,
            session_name,
            webhook_secret,
            config or {},
        )
    )


async def find_channel(db: Database, channel_id: int) -> ChannelRow | None:
    return _channel(await fetchrow(db, f"SELECT {COLUMNS} FROM channels WHERE id = $1", channel_id))


# Always one row (NULLs for an unknown channel), as the batcher needs.
WEBHOOK_LOOKUP = (
    "SELECT "
    + ", ".join(f"ch.{column.strip()}" for column in COLUMNS.split(","))
    + ", a.settings::text AS assistant_settings FROM (SELECT CAST($1 AS bigint) AS id) wanted"
    + " LEFT JOIN channels ch ON ch.id = wanted.id LEFT JOIN assistants a ON a.id = ch.assistant_id"
)


def webhook_channel_reader(db: Database) -> StatementBatcher:
    """Concurrent webhooks' channel reads, sent together (one round trip for many: every webhook starts with one)."""
    return StatementBatcher(db, WEBHOOK_LOOKUP)


async def find_channel_for_webhook(reader: StatementBatcher, channel_id: int) -> ChannelRow | None:
    """The channel with its assistant's stored settings (the reply policy, as jsonb text); None when there is no such channel."""
    record = await reader.fetchrow(channel_id)
    return ChannelRow(**record) if record["id"] is not None else None


async def lock_channel(db: Database, channel_id: int) -> ChannelRow | None:
    """The row, locked until the transaction ends (state changes apply one at a time)."""
    return _channel(await fetchrow(db, f"SELECT {COLUMNS} FROM channels WHERE id = $1 FOR UPDATE", channel_id))


async def list_channels(db: Database, assistant_id: int | None, limit: int, offset: int) -> tuple[list[ChannelRow], int]:
    # $1 NULL: every assistant's channels.
    where = "WHERE (CAST($1 AS bigint) IS NULL OR assistant_id = $1)"
    records = await fetch(
        db, f"SELECT {COLUMNS} FROM channels {where} ORDER BY id LIMIT $2 OFFSET $3", assistant_id, limit, offset
    )
    total = await fetchval(db, f"SELECT count(*) FROM channels {where}", assistant_id)
    return [ChannelRow(**record) for record in records], total


async def update_channel(db: Database, channel_id: int, changes: dict) -> ChannelRow | None:
    sets, values = assignments(EDITABLE, changes, 2)
    return _channel(
        await fetchrow(db, f"UPDATE channels SET {sets}updated_at = now() WHERE id = $1 RETURNING {COLUMNS}", channel_id, *values)
    )


async def touch_channel_event(db: Database, channel_id: int, every_seconds: float) -> None:
    """Record that the gateway spoke, at most once every `every_seconds`: under a burst of webhooks
    every request would otherwise queue behind the same row lock."""
    await execute(
        db,
        "UPDATE channels SET last_event_at = now() WHERE id = $1 "
        "AND (last_event_at IS NULL OR last_event_at < now() - make_interval(secs => $2))",
        channel_id,
        float(every_seconds),
    )


async def delete_channel(db: Database, channel_id: int) -> bool:
    return await fetchval(db, "DELETE FROM channels WHERE id = $1 RETURNING id", channel_id) is not None


async def channels_to_reconcile(db: Database, stale_seconds: float, limit: int = 200) -> list[ChannelRow]:
    """Channels whose status a missed webhook may have left wrong: not ready (except those the
    operator logged out), or ready but silent for `stale_seconds`."""
    return [
        ChannelRow(**record)
        for record in (
            await fetch(
                db,
                f"""
            SELECT {COLUMNS} FROM channels
            WHERE (status <> 'ready' AND detail <> 'logged_out')
               OR (status = 'ready'
                   AND coalesce(last_event_at, connected_at, updated_at) < now() - make_interval(secs => $1))
            ORDER BY updated_at
            LIMIT $2
            """,
                float(stale_seconds),
                limit,
            )
        )
    ]


# -- numbers linked to assistants --


async def link_number(db: Database, phone_number: str, assistant_id: int, channel_id: int) -> dict | None:
    """Link a number to an assistant through a channel. Returns None when the number is
    already linked to another assistant (nothing changes then)."""
    return row(
        await fetchrow(
            db,
            """
            INSERT INTO assistant_phone_numbers (phone_number, assistant_id, channel_id)
            VALUES ($1, $2, $3)
            ON CONFLICT (phone_number) DO UPDATE SET channel_id = EXCLUDED.channel_id
                WHERE assistant_phone_numbers.assistant_id = EXCLUDED.assistant_id
            RETURNING phone_number, assistant_id, channel_id
            """,
            phone_number,
            assistant_id,
            channel_id,
        )
    )


async def find_number_holder(db: Database, phone_number: str) -> dict | None:
    """Who holds a number: the assistant's id and name, and the channel."""
    return row(
        await fetchrow(
            db,
            """
            SELECT n.phone_number, n.assistant_id, n.channel_id, a.name AS assistant_name
            FROM assistant_phone_numbers n JOIN assistants a ON a.id = n.assistant_id
            WHERE n.phone_number = $1
            """,
            phone_number,
        )
    )


async def release_numbers(db: Database, channel_id: int, keep: str | None = None) -> None:
    """Unlink the numbers a channel holds (all but `keep`)."""
    await execute(
        db, "DELETE FROM assistant_phone_numbers WHERE channel_id = $1 AND phone_number IS DISTINCT FROM $2", channel_id, keep
    )


# -- the sandbox gateway --

SANDBOX_COLUMNS = "channel_id, state, qr, phone_number, updated_at"


async def upsert_sandbox_session(db: Database, channel_id: int, state: str, qr: str | None, phone_number: str | None) -> dict:
    return row(
        await fetchrow(
            db,
            f"""
            INSERT INTO sandbox_sessions (channel_id, state, qr, phone_number)
            VALUES ($1, $2, $3, $4)
            ON CONFLICT (channel_id) DO UPDATE
                SET state = EXCLUDED.state, qr = EXCLUDED.qr, phone_number = EXCLUDED.phone_number, updated_at = now()
            RETURNING {SANDBOX_COLUMNS}
            """,
            channel_id,
            state,
            qr,
            phone_number,
        )
    )


async def find_sandbox_session(db: Database, channel_id: int) -> dict | None:
    return row(await fetchrow(db, f"SELECT {SANDBOX_COLUMNS} FROM sandbox_sessions WHERE channel_id = $1", channel_id))


async def delete_sandbox_session(db: Database, channel_id: int) -> None:
    await execute(db, "DELETE FROM sandbox_sessions WHERE channel_id = $1", channel_id)


async def insert_outbox(db: Database, channel_id: int, provider_message_id: str, chat_id: str, text: str) -> dict:
    return row(
        await fetchrow(
            db,
            """
            INSERT INTO sandbox_outbox (channel_id, provider_message_id, chat_id, text)
            VALUES ($1, $2, $3, $4)
            RETURNING id, provider_message_id, chat_id, text, created_at
            """,
            channel_id,
            provider_message_id,
            chat_id,
            text,
        )
    )


async def list_outbox(db: Database, channel_id: int, limit: int, offset: int) -> tuple[list[dict], int]:
    records = await fetch(
        db,
        """
        SELECT id, provider_message_id, chat_id, text, created_at FROM sandbox_outbox
        WHERE channel_id = $1 ORDER BY id LIMIT $2 OFFSET $3
        """,
        channel_id,
        limit,
        offset,
    )
    total = await fetchval(db, "SELECT count(*) FROM sandbox_outbox WHERE channel_id = $1", channel_id)
    return rows(records), total


async def find_outbox_message(db: Database, channel_id: int, chat_id: str, text: str) -> str | None:
    return await fetchval(
        db,
        """
        SELECT provider_message_id FROM sandbox_outbox
        WHERE channel_id = $1 AND chat_id = $2 AND text = $3
        ORDER BY id DESC LIMIT 1
        """,
        channel_id,
        chat_id,
        text,
    )
