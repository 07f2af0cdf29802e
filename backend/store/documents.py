"""SQL for knowledge documents (the search over their chunks lives in `rag.store`)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

from databases import Database

from backend.database import execute, fetch, fetchrow, fetchval


@dataclass(frozen=True)
class DocumentRow:
    id: int
    assistant_id: int
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    status: str  # pending, indexing, ready or failed
    progress: float  # of indexing, 0-1
    error: str | None
    chunk_count: int
    embedding_model: str | None  # "provider:model" of its chunks; None until indexed
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class DocumentToIndex:
    """A document's bytes, with its assistant's full-text language."""

    id: int
    assistant_id: int
    filename: str
    content: bytes
    language: str


COLUMNS = ", ".join(field.name for field in fields(DocumentRow))


def _document(record) -> DocumentRow | None:  # asyncpg record
    return DocumentRow(**record) if record is not None else None


async def insert_document(
    db: Database, *, assistant_id: int, filename: str, content_type: str, content: bytes, sha256: str
) -> DocumentRow | None:
    """The new row, or None when this assistant already has a file with the same sha256."""
    return _document(
        await fetchrow(
            db,
            f"""
            INSERT INTO documents (assistant_id, filename, content_type, size_bytes, sha256, content)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (assistant_id, sha256) DO NOTHING
            RETURNING {COLUMNS}
            """,
            assistant_id,
            filename,
            content_type,
            len(content),
            sha256,
            content,
        )
    )


async def find_document_by_sha256(db: Database, assistant_id: int, sha256: str) -> DocumentRow | None:
    return _document(
        await fetchrow(db, f"SELECT {COLUMNS} FROM documents WHERE assistant_id = $1 AND sha256 = $2", assistant_id, sha256)
    )


async def filenames_starting_with(db: Database, assistant_id: int, prefix: str) -> set[str]:
    """This assistant's document names that begin with `prefix` (taken as written, no wildcards)."""
    pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    records = await fetch(
        db, "SELECT filename FROM documents WHERE assistant_id = $1 AND filename LIKE $2", assistant_id, pattern
    )
    return {r["filename"] for r in records}


async def find_document(db: Database, assistant_id: int, document_id: int) -> DocumentRow | None:
    return _document(
        await fetchrow(db, f"SELECT {COLUMNS} FROM documents WHERE assistant_id = $1 AND id = $2", assistant_id, document_id)
    )


async def find_document_to_index(db: Database, document_id: int) -> DocumentToIndex | None:
    record = await fetchrow(
        db,
        """
        SELECT d.id, d.assistant_id, d.filename, d.content, a.language
        FROM documents d JOIN assistants a ON a.id = d.assistant_id WHERE d.id = $1
        """,
        document_id,
    )
    return DocumentToIndex(**record) if record is not None else None


async def list_documents(db: Database, assistant_id: int, limit: int, offset: int) -> tuple[list[DocumentRow], int]:
    records = await fetch(
        db, f"SELECT {COLUMNS} FROM documents WHERE assistant_id = $1 ORDER BY id LIMIT $2 OFFSET $3", assistant_id, limit, offset
    )
    total = await fetchval(db, "SELECT count(*) FROM documents WHERE assistant_id = $1", assistant_id)
    return [_document(r) for r in records], total


async def list_document_ids(db: Database, assistant_id: int) -> list[int]:
    return [r["id"] for r in await fetch(db, "SELECT id FROM documents WHERE assistant_id = $1 ORDER BY id", assistant_id)]


async def delete_document(db: Database, assistant_id: int, document_id: int) -> bool:
    """Chunks go with it (ON DELETE CASCADE)."""
    deleted = await fetchval(
        db, "DELETE FROM documents WHERE assistant_id = $1 AND id = $2 RETURNING id", assistant_id, document_id
    )
    return deleted is not None


async def mark_pending(db: Database, document_id: int) -> None:
    await execute(
        db, "UPDATE documents SET status = 'pending', progress = 0, error = NULL, updated_at = now() WHERE id = $1", document_id
    )


async def mark_indexing(db: Database, document_id: int, progress: float) -> None:
    await execute(
        db,
        "UPDATE documents SET status = 'indexing', progress = $2, error = NULL, updated_at = now() WHERE id = $1",
        document_id,
        progress,
    )


async def mark_ready(db: Database, document_id: int, chunk_count: int, embedding_model: str) -> None:
    await execute(
        db,
        """
        UPDATE documents SET status = 'ready', progress = 1, error = NULL, chunk_count = $2,
               embedding_model = $3, updated_at = now()
        WHERE id = $1
        """,
        document_id,
        chunk_count,
        embedding_model,
    )


async def mark_failed(db: Database, document_id: int, error: str) -> None:
    await execute(
        db, "UPDATE documents SET status = 'failed', error = $2, updated_at = now() WHERE id = $1", document_id, error[:2000]
    )


@dataclass(frozen=True)
class JobState:
    status: str  # queued, running, done, failed or cancelled
    last_error: str | None


async def latest_job(db: Database, kind: str, dedup_key: str) -> JobState | None:
    """The newest job of `kind` with this dedup key (a re-embedding's, say), whatever its state."""
    record = await fetchrow(
        db, "SELECT status, last_error FROM jobs WHERE kind = $1 AND dedup_key = $2 ORDER BY id DESC LIMIT 1", kind, dedup_key
    )
    return JobState(**record) if record is not None else None
