"""SQL for chunks: write a document's chunks, and the dense (pgvector) and lexical (tsvector) searches.

Works on a `databases.Database` whose connections have the pgvector codec registered.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import structlog
from databases import Database

log = structlog.get_logger(__name__)

PASSAGE_COLUMNS = "c.id AS chunk_id, c.document_id, d.filename, c.position, c.heading, c.content AS text"


async def replace_chunks(
    db: Database,
    *,
    document_id: int,
    assistant_id: int,
    language: str,
    chunks: Sequence[tuple[int, str, str, int]],  # (position, heading, content, token_count)
    vectors: np.ndarray,
) -> None:
    """Swap a document's chunks for new ones (call inside a transaction so readers never see a mix)."""
    await db.execute("DELETE FROM chunks WHERE document_id = :id", {"id": document_id})
    records = [
        (document_id, assistant_id, position, heading, content, tokens, language, vector)
        for (position, heading, content, tokens), vector in zip(chunks, vectors, strict=True)
    ]
    if not records:
        return
    async with db.connection() as connection:  # the transaction's connection, when there is one
        # The raw asyncpg connection: one executemany instead of a round trip per chunk.
        await connection.raw_connection.executemany(
            """
            INSERT INTO chunks (document_id, assistant_id, position, heading, content, token_count, language, embedding)
            VALUES ($1, $2, $3, $4, $5, $6, CAST($7 AS regconfig), $8)
            """,
            records,
        )


async def delete_chunks(db: Database, document_id: int) -> None:
    await db.execute("DELETE FROM chunks WHERE document_id = :id", {"id": document_id})


_ITERATIVE_SCAN: dict[str, bool] = {}  # database URL -> its pgvector has hnsw.iterative_scan (asked once)
# pgvector's maximum; without iterative scan (pgvector < 0.8) the widest beam is what keeps k results despite the filter.
HNSW_MAX_EF_SEARCH = 1000


def has_iterative_scan(extversion: str | None) -> bool:
    """pgvector added `hnsw.iterative_scan` in 0.8.0; on older versions setting it is an error."""
    numbers = [int(n) for n in re.findall(r"\d+", extversion or "")[:2]]
    return len(numbers) == 2 and tuple(numbers) >= (0, 8)


async def _iterative_scan(db: Database) -> bool:
    key = str(db.url)
    if key not in _ITERATIVE_SCAN:
        version = await db.fetch_val("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        _ITERATIVE_SCAN[key] = has_iterative_scan(version)
        if not _ITERATIVE_SCAN[key]:
            log.warning("pgvector.old_version", version=version, hint="pgvector >= 0.8 filters HNSW searches better")
    return _ITERATIVE_SCAN[key]


async def dense_search(
    db: Database,
    assistant_id: int,
    vector: np.ndarray,
    limit: int,
    *,
    exclude_documents: Sequence[int] = (),
    ef_search: int = 100,
) -> list[dict]:
    """Nearest chunks by cosine distance (HNSW); iterative scan keeps k results despite the filter."""
    iterative = await _iterative_scan(db)
    ef = min(max(ef_search, limit), HNSW_MAX_EF_SEARCH) if iterative else HNSW_MAX_EF_SEARCH
    async with db.transaction():
        await db.execute(f"SET LOCAL hnsw.ef_search = {int(ef)}")
        if iterative:
            await db.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        records = await db.fetch_all(
            f"""
            SELECT * FROM (
                SELECT {PASSAGE_COLUMNS}, c.embedding <=> CAST(:q AS vector) AS distance
                FROM chunks c JOIN documents d ON d.id = c.document_id
                WHERE c.assistant_id = :assistant AND NOT (c.document_id = ANY(CAST(:exclude AS bigint[])))
                ORDER BY c.embedding <=> CAST(:q AS vector)
                LIMIT :limit
            ) nearest ORDER BY distance
            """,
            {
                "q": np.asarray(vector, dtype=np.float32),
                "assistant": assistant_id,
                "exclude": list(exclude_documents),
                "limit": limit,
            },
        )
    return [{**dict(r._mapping), "score": 1.0 - float(r._mapping["distance"])} for r in records]


async def lexical_search(
    db: Database,
    assistant_id: int,
    query: str,
    language: str,
    limit: int,
    *,
    exclude_documents: Sequence[int] = (),
    vector: np.ndarray | None = None,
) -> list[dict]:
    """Full-text matches ranked by ts_rank_cd. Words are OR-ed: a question rarely shares all of its
    words with the passage that answers it; phrases inside a word (XK-4471) stay phrases.
    With `vector`, each hit also carries its cosine similarity (`cosine`) to the query."""
    cosine = ", 1 - (c.embedding <=> CAST(:q AS vector)) AS cosine" if vector is not None else ""
    values = {"q": np.asarray(vector, dtype=np.float32)} if vector is not None else {}
    records = await db.fetch_all(
        f"""
        SELECT {PASSAGE_COLUMNS}, ts_rank_cd(c.tsv, q, 1) AS score{cosine}
        FROM chunks c JOIN documents d ON d.id = c.document_id,
             to_tsquery(CAST(:lang AS regconfig),
                        replace(CAST(plainto_tsquery(CAST(:lang AS regconfig), :query) AS text), '&', '|')) q
        WHERE c.assistant_id = :assistant AND c.tsv @@ q
          AND NOT (c.document_id = ANY(CAST(:exclude AS bigint[])))
        ORDER BY score DESC, c.id
        LIMIT :limit
        """,
        {
            "lang": language,
            "query": query,
            "assistant": assistant_id,
            "exclude": list(exclude_documents),
            "limit": limit,
            **values,
        },
    )
    return [{**dict(r._mapping), "score": float(r._mapping["score"])} for r in records]


async def stale_documents(db: Database, assistant_id: int, embedding_model: str) -> list[int]:
    """Documents whose chunks were embedded by another model: unusable until re-indexed."""
    records = await db.fetch_all(
        """
        SELECT id FROM documents
        WHERE assistant_id = :assistant AND embedding_model IS NOT NULL AND embedding_model <> :model
        ORDER BY id
        """,
        {"assistant": assistant_id, "model": embedding_model},
    )
    return [r._mapping["id"] for r in records]
