"""SQL for knowledge documents (their chunks live in `rag.store`) and the questions behind weak answers."""

from __future__ import annotations

from databases import Database

from backend.database import row, rows

COLUMNS = (
    "id, assistant_id, filename, content_type, size_bytes, sha256, status, progress, error, chunk_count, "
    "embedding_model, created_at, updated_at"
)


async def insert_document(db: Database, values: dict) -> dict | None:
    """The new row, or None when this assistant already has a file with the same sha256."""
    return row(
        await db.fetch_one(
            f"""
            INSERT INTO documents (assistant_id, filename, content_type, size_bytes, sha256, content)
            VALUES (:assistant_id, :filename, :content_type, :size_bytes, :sha256, :content)
            ON CONFLICT (assistant_id, sha256) DO NOTHING
            RETURNING {COLUMNS}
            """,
            values,
        )
    )


async def find_document_by_sha256(db: Database, assistant_id: int, sha256: str) -> dict | None:
    return row(
        await db.fetch_one(
            f"SELECT {COLUMNS} FROM documents WHERE assistant_id = :a AND sha256 = :sha",
            {"a": assistant_id, "sha": sha256},
        )
    )


async def filenames_starting_with(db: Database, assistant_id: int, prefix: str) -> set[str]:
    """This assistant's document names that begin with `prefix` (taken as written, no wildcards)."""
    pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    records = await db.fetch_all(
        "SELECT filename FROM documents WHERE assistant_id = :a AND filename LIKE :pattern",
        {"a": assistant_id, "pattern": pattern},
    )
    return {r._mapping["filename"] for r in records}


async def find_document(db: Database, assistant_id: int, document_id: int) -> dict | None:
    return row(
        await db.fetch_one(
            f"SELECT {COLUMNS} FROM documents WHERE assistant_id = :a AND id = :id", {"a": assistant_id, "id": document_id}
        )
    )


async def find_document_for_indexing(db: Database, document_id: int) -> dict | None:
    """The document with its bytes and its assistant's full-text language."""
    return row(
        await db.fetch_one(
            """
            SELECT d.id, d.assistant_id, d.filename, d.content, a.language
            FROM documents d JOIN assistants a ON a.id = d.assistant_id WHERE d.id = :id
            """,
            {"id": document_id},
        )
    )


async def list_documents(db: Database, assistant_id: int, limit: int, offset: int) -> tuple[list[dict], int]:
    records = await db.fetch_all(
        f"SELECT {COLUMNS} FROM documents WHERE assistant_id = :a ORDER BY id LIMIT :limit OFFSET :offset",
        {"a": assistant_id, "limit": limit, "offset": offset},
    )
    total = await db.fetch_val("SELECT count(*) FROM documents WHERE assistant_id = :a", {"a": assistant_id})
    return rows(records), total


async def list_document_ids(db: Database, assistant_id: int) -> list[int]:
    records = await db.fetch_all("SELECT id FROM documents WHERE assistant_id = :a ORDER BY id", {"a": assistant_id})
    return [r._mapping["id"] for r in records]


async def delete_document(db: Database, assistant_id: int, document_id: int) -> bool:
    """Chunks go with it (ON DELETE CASCADE)."""
    deleted = await db.fetch_val(
        "DELETE FROM documents WHERE assistant_id = :a AND id = :id RETURNING id", {"a": assistant_id, "id": document_id}
    )
    return deleted is not None


async def mark_pending(db: Database, document_id: int) -> None:
    await db.execute(
        "UPDATE documents SET status = 'pending', progress = 0, error = NULL, updated_at = now() WHERE id = :id",
        {"id": document_id},
    )


async def mark_indexing(db: Database, document_id: int, progress: float) -> None:
    await db.execute(
        "UPDATE documents SET status = 'indexing', progress = :p, error = NULL, updated_at = now() WHERE id = :id",
        {"id": document_id, "p": progress},
    )


async def mark_ready(db: Database, document_id: int, chunk_count: int, embedding_model: str) -> None:
    await db.execute(
        """
        UPDATE documents SET status = 'ready', progress = 1, error = NULL, chunk_count = :n,
               embedding_model = :model, updated_at = now()
        WHERE id = :id
        """,
        {"id": document_id, "n": chunk_count, "model": embedding_model},
    )


async def mark_failed(db: Database, document_id: int, error: str) -> None:
    await db.execute(
        "UPDATE documents SET status = 'failed', error = :error, updated_at = now() WHERE id = :id",
        {"id": document_id, "error": error[:2000]},
    )


async def weakly_answered_questions(db: Database, assistant_id: int, min_score: float, since_days: int, limit: int) -> list[dict]:
    """Inbound customer messages whose bot reply was weak: the fallback, little of value retrieved, no
    model answering (degraded), or a generated answer stopped for stating facts the sources lack."""
    return rows(
        await db.fetch_all(
            """
            SELECT q.id AS message_id, q.text, q.created_at, r.id AS reply_id,
                   coalesce((r.trace->>'used_fallback')::boolean, false) AS used_fallback,
                   (r.trace->>'top_score')::double precision AS top_score
            FROM messages r
            JOIN messages q ON q.id = r.reply_to_id
            JOIN channels ch ON ch.id = r.channel_id
            WHERE ch.assistant_id = :a AND r.author = 'bot' AND q.author = 'customer' AND q.text <> ''
              AND r.created_at > now() - make_interval(days => :days)
              -- Filled by an FAQ saved from the gaps page (deleting that FAQ empties the column).
              AND r.gap_filled_by IS NULL
              AND (coalesce((r.trace->>'used_fallback')::boolean, false)
                   OR r.degraded
                   OR coalesce((r.trace->>'ungrounded')::boolean, false)
                   OR (r.trace->>'top_score' IS NOT NULL AND (r.trace->>'top_score')::double precision < :min_score))
            ORDER BY r.id DESC
            LIMIT :limit
            """,
            {"a": assistant_id, "min_score": min_score, "days": since_days, "limit": limit},
        )
    )


async def mark_gap_filled(db: Database, assistant_id: int, question_ids: list[int], document_id: int) -> int:
    """Note on the weak bot replies to these customer questions that `document_id` now answers them; how many."""
    return await db.fetch_val(
        """
        WITH filled AS (
            UPDATE messages r
            SET gap_filled_by = :doc
            FROM channels ch
            WHERE ch.id = r.channel_id AND ch.assistant_id = :a AND r.author = 'bot'
              AND r.reply_to_id = ANY(CAST(:ids AS bigint[]))
            RETURNING r.id
        )
        SELECT count(*) FROM filled
        """,
        {"a": assistant_id, "ids": question_ids, "doc": document_id},
    )
