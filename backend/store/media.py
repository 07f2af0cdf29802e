"""SQL for message_media: a customer's attachment, its bytes once fetched, and what hearing a voice note gave."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from databases import Database

from backend.database import execute, fetch, fetchrow

# Errors a file gets when it arrives (its bytes in the webhook): nothing to fetch again.
REFUSED_ON_ARRIVAL = frozenset({"too_large", "unreadable"})
COLUMNS = (
    "message_id, kind, mimetype, filename, size_bytes, handle, data, transcript_model, audio_seconds, transcribe_seconds, error"
)


@dataclass(frozen=True)
class MediaRow:
    message_id: int
    kind: str
    mimetype: str | None
    filename: str | None
    size_bytes: int | None
    handle: str
    data: bytes | None
    transcript_model: str | None
    audio_seconds: float | None
    transcribe_seconds: float | None
    error: str | None


async def insert_media(
    conn: asyncpg.Connection, message_id: int, kind: str, mimetype: str | None, filename: str | None, size: int | None,
    handle: str, data: bytes | None, error: str | None,
) -> None:  # fmt: skip
    await conn.execute(
        "INSERT INTO message_media (message_id, kind, mimetype, filename, size_bytes, handle, data, error) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (message_id) DO NOTHING",
        message_id, kind, mimetype, filename, size, handle, data, error,
    )  # fmt: skip


async def find_media(db: Database, message_id: int) -> MediaRow | None:
    record = await fetchrow(db, f"SELECT {COLUMNS} FROM message_media WHERE message_id = $1", message_id)
    return MediaRow(**record) if record is not None else None


async def media_of(db: Database, message_ids: list[int]) -> dict[int, MediaRow]:
    records = await fetch(db, f"SELECT {COLUMNS} FROM message_media WHERE message_id = ANY(CAST($1 AS bigint[]))", message_ids)
    return {record["message_id"]: MediaRow(**record) for record in records}


async def save_download(db: Database, message_id: int, data: bytes) -> None:
    await execute(
        db, "UPDATE message_media SET data = $2, size_bytes = $3, error = NULL, updated_at = now() WHERE message_id = $1",
        message_id, data, len(data),
    )  # fmt: skip


async def save_heard(
    db: Database, message_id: int, transcript: str, model: str, audio_seconds: float, transcribe_seconds: float
) -> None:
    """A voice note's transcript becomes the message's text: the customer's words everywhere text is read."""
    await execute(
        db,
        """
        WITH m AS (UPDATE messages SET text = $2, updated_at = now() WHERE id = $1)
        UPDATE message_media SET transcript_model = $3, audio_seconds = $4, transcribe_seconds = $5, error = NULL,
               updated_at = now()
        WHERE message_id = $1
        """,
        message_id, transcript, model, audio_seconds, transcribe_seconds,
    )  # fmt: skip


async def save_media_error(db: Database, message_id: int, error: str) -> None:
    await execute(db, "UPDATE message_media SET error = $2, updated_at = now() WHERE message_id = $1", message_id, error[:500])


async def forget_old_files(db: Database, days: float, *, batch: int = 500) -> int:
    """Drop the bytes of files older than `days` (what they were and what was heard stay); how many."""
    return len(
        await fetch(
            db,
            """
            UPDATE message_media SET data = NULL, updated_at = now()
            WHERE message_id IN (SELECT message_id FROM message_media
                                 WHERE data IS NOT NULL AND created_at < now() - make_interval(secs => $1) LIMIT $2)
            RETURNING message_id
            """,
            float(days) * 86400,
            batch,
        )
    )
