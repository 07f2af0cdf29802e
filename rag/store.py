"""SQL for chunks: write a document's chunks, and the dense (pgvector) and lexical (tsvector) searches.

Works on a `databases.Database` whose connections have the pgvector codec registered.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import asyncpg
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
    records = [
        (document_id, assistant_id, position, heading, content, tokens, language, vector)
        for (position, heading, content, tokens), vector in zip(chunks, vectors, strict=True)
    ]
    async with db.connection() as connection:  # the transaction's connection, when there is one
        conn = connection.raw_connection
        await conn.execute("DELETE FROM chunks WHERE document_id = $1", document_id)
        if records:  # one executemany instead of a round trip per chunk
            await conn.executemany(
                """
                INSERT INTO chunks (document_id, assistant_id, position, heading, content, token_count, language, embedding)
                VALUES ($1, $2, $3, $4, $5, $6, CAST($7 AS regconfig), $8)
                """,
                records,
            )


# pgvector's maximum; without iterative scan (pgvector < 0.8) the widest beam is what keeps k results despite the filter.
HNSW_MAX_EF_SEARCH = 1000


def has_iterative_scan(extversion: str | None) -> bool:
    """pgvector added `hnsw.iterative_scan` in 0.8.0; on older versions setting it is an error."""
    numbers = [int(n) for n in re.findall(r"\d+", extversion or "")[:2]]
    return len(numbers) == 2 and tuple(numbers) >= (0, 8)


async def pgvector_version(conn: asyncpg.Connection) -> str | None:
    """The installed pgvector's version. Asked per search rather than remembered: one small catalog
    read on the search's own connection, and right even after an upgrade."""
    return await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")


# What a search connection should have from its start (`make_database` passes these as server
# settings): dense_search then needs no transaction and no SET LOCAL round trips; it checks them
# on every query and falls back to SET LOCAL when they differ.
SESSION_SETTINGS = {"hnsw.ef_search": "100", "hnsw.iterative_scan": "relaxed_order"}

DENSE = f"""
WITH settings AS (
    SELECT current_setting('hnsw.ef_search', true) AS ef_search,
           {{iterative_setting}} AS iterative,
           ARRAY(SELECT id FROM documents
                 WHERE $5::text IS NOT NULL AND assistant_id = $2
                   AND embedding_model IS NOT NULL AND embedding_model <> $5
                 ORDER BY id) AS stale
)
SELECT settings.ef_search AS session_ef_search, settings.iterative AS session_iterative,
       settings.stale AS session_stale, nearest.*
FROM settings LEFT JOIN LATERAL (
    SELECT * FROM (
        SELECT {PASSAGE_COLUMNS}, c.embedding <=> $1 AS distance
        FROM chunks c JOIN documents d ON d.id = c.document_id
        WHERE c.assistant_id = $2 AND NOT (c.document_id = ANY($3::bigint[]))
        ORDER BY c.embedding <=> $1
        LIMIT $4
    ) nearest ORDER BY distance
) nearest ON TRUE
"""
# pgvector < 0.8 has no hnsw.iterative_scan: never name it there.
DENSE_ITERATIVE = DENSE.format(iterative_setting="current_setting('hnsw.iterative_scan', true)")
DENSE_PLAIN = DENSE.format(iterative_setting="NULL")


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
    hits, _ = await dense_search_fresh(
        db, assistant_id, vector, limit, None, exclude_documents=exclude_documents, ef_search=ef_search
    )
    return hits


async def dense_search_fresh(
    db: Database,
    assistant_id: int,
    vector: np.ndarray,
    limit: int,
    embedding_model: str | None,
    *,
    exclude_documents: Sequence[int] = (),
    ef_search: int = 100,
) -> tuple[list[dict], list[int]]:
    """`dense_search` and `stale_documents(embedding_model)` (None: not asked) in one round trip after
    the version check: (hits from fresh documents only, the stale documents' ids)."""
    exclude = list(exclude_documents)
    async with db.connection() as connection:
        # The raw connection: no SQL compilation, no logging of a 384-float vector per query.
        conn = connection.raw_connection
        iterative = has_iterative_scan(await pgvector_version(conn))
        ef = min(max(ef_search, limit), HNSW_MAX_EF_SEARCH) if iterative else HNSW_MAX_EF_SEARCH
        query = np.asarray(vector, dtype=np.float32)
        sql = DENSE_ITERATIVE if iterative else DENSE_PLAIN
        records = await conn.fetch(sql, query, assistant_id, exclude, limit, embedding_model)
        first = records[0]
        stale = list(first["session_stale"])
        in_effect = first["session_ef_search"] == str(ef) and (not iterative or first["session_iterative"] == "relaxed_order")
        if stale and any(record["document_id"] in stale for record in records):
            exclude += stale  # rare (an embedding model change not yet re-indexed): ask again without them
            in_effect = False
        if not in_effect:
            async with conn.transaction():
                settings = f"SET LOCAL hnsw.ef_search = {int(ef)}"
                if iterative:
                    settings += "; SET LOCAL hnsw.iterative_scan = relaxed_order"
                await conn.execute(settings)
                records = await conn.fetch(sql, query, assistant_id, exclude, limit, None)
    hits = [_hit(record, score=1.0 - float(record["distance"])) for record in records if record["chunk_id"] is not None]
    return hits, stale


def _hit(record, **extra) -> dict:  # noqa: ANN001 - asyncpg record
    hit = {key: value for key, value in record.items() if not key.startswith("session_")}
    hit.update(extra)
    return hit


# The IDF cut: a question's words found in more than this share of the assistant's chunks
# ("the", "cells", "patients") are dropped from the OR query; they add little but noise to the
# ranking and make every search rank a third of the corpus. Small knowledge bases (fewer chunks
# than TERM_CUT_MIN_CHUNKS, where every word is "common") keep all words. Phrases inside a word
# (XK-4471 -> 'xk-4471' <-> 'xk' <-> '4471') are always kept: rare by nature.
TERM_CUT_MAX_SHARE = 0.05
TERM_CUT_MIN_CHUNKS = 200
# Every matching chunk is ranked before the best are kept (~5 us each), so the time grows with
# the matches: the rarest words are kept while their chunk counts add up to at most this (the
# rarest always). 1500: lexical p99 ~15 ms at 100k chunks; on SciFact (12k chunks) it costs
# nothing measurable (hybrid nDCG@10 0.7029 vs 0.7033 uncapped; 1000 would cost 0.008).
TERM_CUT_MAX_MATCHES = 1500

LEXICAL = f"""
WITH terms AS (
    SELECT DISTINCT term, position('<' IN term) > 0 AS phrase FROM unnest(string_to_array(
        CAST(plainto_tsquery(CAST(CAST($1 AS text) AS regconfig), $2) AS text), ' & ')) AS term
), counted AS (
    SELECT t.term, t.phrase, total.chunks, coalesce(s.ndoc, 1) AS ndoc,  -- not in term_stats: one chunk or none
           sum(CASE WHEN t.phrase THEN 0 ELSE coalesce(s.ndoc, 1) END)
               OVER (ORDER BY t.phrase DESC, coalesce(s.ndoc, 1), t.term ROWS UNBOUNDED PRECEDING) AS running
    FROM terms t
    CROSS JOIN (SELECT coalesce(max(chunk_count), 0) AS chunks FROM term_stat_totals WHERE assistant_id = $3) total
    LEFT JOIN term_stats s
           ON s.assistant_id = $3 AND s.lexeme = replace(substr(t.term, 2, length(t.term) - 2), repeat(chr(39), 2), chr(39))
), kept AS (
    SELECT term FROM counted
    WHERE phrase OR chunks < {TERM_CUT_MIN_CHUNKS}
       OR (ndoc <= chunks * {TERM_CUT_MAX_SHARE} AND (running <= {TERM_CUT_MAX_MATCHES} OR running = ndoc))
), query AS MATERIALIZED (  -- built once: inlined, to_tsquery ran again for every matching chunk
    SELECT to_tsquery(CAST(CAST($1 AS text) AS regconfig),
                      coalesce((SELECT string_agg(term, ' | ') FROM kept),
                               (SELECT string_agg(term, ' | ') FROM terms))) AS q  -- none rare: all words
), stale AS (  -- documents embedded by another model than $4 (none when $4 is NULL)
    SELECT ARRAY(SELECT id FROM documents
                 WHERE $4::text IS NOT NULL AND assistant_id = $3
                   AND embedding_model IS NOT NULL AND embedding_model <> $4) AS ids
)
SELECT {PASSAGE_COLUMNS}, best.score{{embedding}}
FROM (  -- ranked on chunks alone: the other columns are read for the kept hits only
    SELECT c.id, ts_rank(c.tsv, q, 1) AS score
    FROM chunks c, query, stale
    WHERE c.assistant_id = $3 AND c.tsv @@ q AND NOT (c.document_id = ANY(stale.ids))
    ORDER BY score DESC, c.id
    LIMIT $5
) best JOIN chunks c ON c.id = best.id JOIN documents d ON d.id = c.document_id
ORDER BY best.score DESC, c.id
"""
LEXICAL_PLAIN = LEXICAL.format(embedding="")
LEXICAL_WITH_EMBEDDING = LEXICAL.format(embedding=", c.embedding")


async def lexical_search(
    db: Database,
    assistant_id: int,
    query: str,
    language: str,
    limit: int,
    *,
    embedding_model: str | None = None,
    with_embedding: bool = False,
) -> list[dict]:
    """Full-text matches ranked by ts_rank. Words are OR-ed (a question rarely shares all of its
    words with the passage that answers it), minus the common ones (`TERM_CUT_MAX_SHARE`, from the
    stats `refresh_term_stats` keeps); phrases inside a word (XK-4471) stay phrases.
    With `embedding_model`, documents another model embedded are left out (as `dense_search_fresh`
    does); `with_embedding` adds each hit's vector (`embedding`)."""
    args = [language, query, assistant_id, embedding_model, limit]
    async with db.connection() as connection:
        records = await connection.raw_connection.fetch(LEXICAL_WITH_EMBEDDING if with_embedding else LEXICAL_PLAIN, *args)
    return [_hit(record, score=float(record["score"])) for record in records]


UNKNOWN_TERMS = """
SELECT DISTINCT t.lexeme
FROM unnest(to_tsvector(CAST(CAST($1 AS text) AS regconfig), $2)) AS t
WHERE t.lexeme NOT IN (SELECT lexeme FROM unnest(to_tsvector(CAST(CAST($1 AS text) AS regconfig), $4)))
  AND NOT EXISTS (SELECT FROM chunks c WHERE c.assistant_id = $3 AND c.tsv @@ CAST(quote_literal(t.lexeme) AS tsquery))
ORDER BY t.lexeme
"""


async def unknown_terms(db: Database, assistant_id: int, text: str, language: str, ignore: str) -> list[str]:
    """The words of `text` (as stemmed lexemes) that no chunk of the assistant contains, less the
    words of `ignore`. One GIN probe per word of the question."""
    async with db.connection() as connection:
        records = await connection.raw_connection.fetch(UNKNOWN_TERMS, language, text, assistant_id, ignore)
    return [record["lexeme"] for record in records]


async def refresh_term_stats(db: Database, assistant_id: int) -> int:
    """Rebuild an assistant's lexeme document frequencies from its chunks (after indexing or
    deleting documents); returns its chunk count. ts_stat reads every tsvector of the assistant.
    Also moves the new chunks from the full-text index's pending list into the index proper."""
    chunks_of = f"SELECT tsv FROM chunks WHERE assistant_id = {int(assistant_id)}"
    async with db.connection() as connection:
        conn = connection.raw_connection
        async with conn.transaction():
            # Serialises concurrent refreshes of one assistant (their DELETE + INSERT would collide).
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('term_stats'), CAST($1 AS integer))", assistant_id)
            count = await conn.fetchval("SELECT count(*) FROM chunks WHERE assistant_id = $1", assistant_id)
            await conn.execute("DELETE FROM term_stats WHERE assistant_id = $1", assistant_id)
            await conn.execute(  # words of a single chunk are most of them: left out, they count as 1
                "INSERT INTO term_stats (assistant_id, lexeme, ndoc) SELECT $1, word, ndoc FROM ts_stat($2) WHERE ndoc > 1",
                assistant_id,
                chunks_of,
            )
            await conn.execute(
                """
                INSERT INTO term_stat_totals (assistant_id, chunk_count) VALUES ($1, $2)
                ON CONFLICT (assistant_id) DO UPDATE SET chunk_count = EXCLUDED.chunk_count, refreshed_at = now()
                """,
                assistant_id,
                count,
            )
        # GIN's fast update appends new entries to a pending list that every search reads in full
        # (5 ms per query at 100k chunks after a bulk upload) until a vacuum merges it: merge now.
        try:
            await conn.execute("SELECT gin_clean_pending_list('chunks_tsv')")
        except asyncpg.InsufficientPrivilegeError:  # only the index's owner may: autovacuum will do it
            log.info("term_stats.pending_list_left_to_vacuum", reason="the database role does not own chunks_tsv")
    return int(count)


async def stale_documents(db: Database, assistant_id: int, embedding_model: str) -> list[int]:
    """Documents whose chunks were embedded by another model: unusable until re-indexed."""
    async with db.connection() as connection:
        records = await connection.raw_connection.fetch(
            """
            SELECT id FROM documents
            WHERE assistant_id = $1 AND embedding_model IS NOT NULL AND embedding_model <> $2
            ORDER BY id
            """,
            assistant_id,
            embedding_model,
        )
    return [record["id"] for record in records]
