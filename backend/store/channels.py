"""SQL for channels, the numbers linked to assistants, and the sandbox gateway's state."""

from __future__ import annotations

import asyncpg
from databases import Database

from backend.database import row, rows

COLUMNS = (
    "id, assistant_id, provider, session_name, status, detail, qr, qr_updated_at, phone_number, "
    "webhook_secret, last_error, last_event_at, status_event_at, connected_at, created_at, updated_at"
)
EDITABLE = {
    "status", "detail", "qr", "qr_updated_at", "phone_number", "last_error", "last_event_at", "status_event_at", "connected_at",
}  # fmt: skip


async def insert_channel(db: Database, assistant_id: int, provider: str, session_name: str, webhook_secret: str) -> dict:
    return row(
        await db.fetch_one(
            f"""
            INSERT INTO channels (assistant_id, provider, session_name, webhook_secret)
            VALUES (:assistant_id, :provider, :session_name, :secret)
            RETURNING {COLUMNS}
            """,
            {"assistant_id": assistant_id, "provider": provider, "session_name": session_name, "secret": webhook_secret},
        )
    )


async def find_channel(db: Database, channel_id: int) -> dict | None:
    return row(await db.fetch_one(f"SELECT {COLUMNS} FROM channels WHERE id = :id", {"id": channel_id}))


WEBHOOK_LOOKUP = (
    "SELECT "
    + ", ".join(f"ch.{column.strip()}" for column in COLUMNS.split(","))
    + ", a.settings::text AS policy_json, ch.xmin AS channel_version, a.xmin AS assistant_version"
    + " FROM channels ch LEFT JOIN assistants a ON a.id = ch.assistant_id WHERE ch.id = $1"
)


async def find_channel_for_webhook(pool: asyncpg.Pool, channel_id: int) -> dict | None:
    """The channel and its assistant's reply policy (as jsonb text, cheap to cache by value) in one
    round trip, on the raw pool: every webhook starts here. `channel_version`/`assistant_version`
    (the rows' xmin) change with any write to either row: a cached copy checks it is current."""
    record = await pool.fetchrow(WEBHOOK_LOOKUP, channel_id)
    return dict(record) if record is not None else None


async def lock_channel(db: Database, channel_id: int) -> dict | None:
    """The row, locked until the transaction ends (state changes apply one at a time)."""
    return row(await db.fetch_one(f"SELECT {COLUMNS} FROM channels WHERE id = :id FOR UPDATE", {"id": channel_id}))


async def find_channel_by_session(db: Database, provider: str, session_name: str) -> dict | None:
    return row(
        await db.fetch_one(
            f"SELECT {COLUMNS} FROM channels WHERE provider = :provider AND session_name = :name",
            {"provider": provider, "name": session_name},
        )
    )


async def list_channels(db: Database, assistant_id: int | None, limit: int, offset: int) -> tuple[list[dict], int]:
    where = "WHERE assistant_id = :assistant_id" if assistant_id is not None else ""
    values = {"assistant_id": assistant_id} if assistant_id is not None else {}
    records = await db.fetch_all(
        f"SELECT {COLUMNS} FROM channels {where} ORDER BY id LIMIT :limit OFFSET :offset",
        {**values, "limit": limit, "offset": offset},
    )
    total = await db.fetch_val(f"SELECT count(*) FROM channels {where}", values)
    return rows(records), total


async def update_channel(db: Database, channel_id: int, changes: dict) -> dict | None:
    assert set(changes) <= EDITABLE, set(changes) - EDITABLE
    sets = ", ".join(f"{column} = :{column}" for column in changes)
    sets = f"{sets}, updated_at = now()" if sets else "updated_at = now()"
    return row(
        await db.fetch_one(f"UPDATE channels SET {sets} WHERE id = :id RETURNING {COLUMNS}", {**changes, "id": channel_id})
    )


async def touch_channel_event(pool: asyncpg.Pool, channel_id: int, version: int) -> int | None:
    """Record that the gateway spoke, if the row is still at `version` (its xmin): the row's new
    version, or None when it changed meanwhile or was touched recently enough. At most one write
    every few seconds: under a burst of webhooks every request would otherwise queue behind the
    same row lock."""
    return await pool.fetchval(
        "UPDATE channels SET last_event_at = now() WHERE id = $1 AND xmin = CAST($2 AS xid) "
        "AND (last_event_at IS NULL OR last_event_at < now() - interval '5 seconds') RETURNING xmin",
        channel_id,
        version,
    )


async def delete_channel(db: Database, channel_id: int) -> bool:
    return await db.fetch_val("DELETE FROM channels WHERE id = :id RETURNING id", {"id": channel_id}) is not None


async def channels_to_reconcile(db: Database, stale_seconds: float, limit: int = 200) -> list[dict]:
    """Channels whose status a missed webhook may have left wrong: not ready (except those the
    operator logged out), or ready but silent for `stale_seconds`."""
    return rows(
        await db.fetch_all(
            f"""
            SELECT {COLUMNS} FROM channels
            WHERE (status <> 'ready' AND detail <> 'logged_out')
               OR (status = 'ready'
                   AND coalesce(last_event_at, connected_at, updated_at) < now() - make_interval(secs => :stale))
            ORDER BY updated_at
            LIMIT :limit
            """,
            {"stale": float(stale_seconds), "limit": limit},
        )
    )


# -- numbers linked to assistants --


async def link_number(db: Database, phone_number: str, assistant_id: int, channel_id: int) -> dict | None:
    """Link a number to an assistant through a channel. Returns None when the number is
    already linked to another assistant (nothing changes then)."""
    return row(
        await db.fetch_one(
            """
            INSERT INTO assistant_phone_numbers (phone_number, assistant_id, channel_id)
            VALUES (:phone, :assistant_id, :channel_id)
            ON CONFLICT (phone_number) DO UPDATE SET channel_id = EXCLUDED.channel_id
                WHERE assistant_phone_numbers.assistant_id = EXCLUDED.assistant_id
            RETURNING phone_number, assistant_id, channel_id
            """,
            {"phone": phone_number, "assistant_id": assistant_id, "channel_id": channel_id},
        )
    )


async def find_number_holder(db: Database, phone_number: str) -> dict | None:
    """Who holds a number: the assistant's id and name, and the channel."""
    return row(
        await db.fetch_one(
            """
            SELECT n.phone_number, n.assistant_id, n.channel_id, a.name AS assistant_name
            FROM assistant_phone_numbers n JOIN assistants a ON a.id = n.assistant_id
            WHERE n.phone_number = :phone
            """,
            {"phone": phone_number},
        )
    )


async def release_numbers(db: Database, channel_id: int, keep: str | None = None) -> None:
    """Unlink the numbers a channel holds (all but `keep`)."""
    await db.execute(
        "DELETE FROM assistant_phone_numbers WHERE channel_id = :id AND phone_number IS DISTINCT FROM :keep",
        {"id": channel_id, "keep": keep},
    )


# -- the sandbox gateway --

SANDBOX_COLUMNS = "channel_id, state, qr, phone_number, updated_at"


async def upsert_sandbox_session(db: Database, channel_id: int, state: str, qr: str | None, phone_number: str | None) -> dict:
    return row(
        await db.fetch_one(
            f"""
            INSERT INTO sandbox_sessions (channel_id, state, qr, phone_number)
            VALUES (:channel_id, :state, :qr, :phone)
            ON CONFLICT (channel_id) DO UPDATE
                SET state = EXCLUDED.state, qr = EXCLUDED.qr, phone_number = EXCLUDED.phone_number, updated_at = now()
            RETURNING {SANDBOX_COLUMNS}
            """,
            {"channel_id": channel_id, "state": state, "qr": qr, "phone": phone_number},
        )
    )


async def find_sandbox_session(db: Database, channel_id: int) -> dict | None:
    return row(await db.fetch_one(f"SELECT {SANDBOX_COLUMNS} FROM sandbox_sessions WHERE channel_id = :id", {"id": channel_id}))


async def delete_sandbox_session(db: Database, channel_id: int) -> None:
    await db.execute("DELETE FROM sandbox_sessions WHERE channel_id = :id", {"id": channel_id})


async def insert_outbox(db: Database, channel_id: int, provider_message_id: str, chat_id: str, text: str) -> dict:
    return row(
        await db.fetch_one(
            """
            INSERT INTO sandbox_outbox (channel_id, provider_message_id, chat_id, text)
            VALUES (:channel_id, :pid, :chat_id, :text)
            RETURNING id, provider_message_id, chat_id, text, created_at
            """,
            {"channel_id": channel_id, "pid": provider_message_id, "chat_id": chat_id, "text": text},
        )
    )


async def list_outbox(db: Database, channel_id: int, limit: int, offset: int) -> tuple[list[dict], int]:
    records = await db.fetch_all(
        """
        SELECT id, provider_message_id, chat_id, text, created_at FROM sandbox_outbox
        WHERE channel_id = :id ORDER BY id LIMIT :limit OFFSET :offset
        """,
        {"id": channel_id, "limit": limit, "offset": offset},
    )
    total = await db.fetch_val("SELECT count(*) FROM sandbox_outbox WHERE channel_id = :id", {"id": channel_id})
    return rows(records), total


async def find_outbox_message(db: Database, channel_id: int, chat_id: str, text: str) -> str | None:
    return await db.fetch_val(
        """
        SELECT provider_message_id FROM sandbox_outbox
        WHERE channel_id = :id AND chat_id = :chat_id AND text = :text
        ORDER BY id DESC LIMIT 1
        """,
        {"id": channel_id, "chat_id": chat_id, "text": text},
    )
