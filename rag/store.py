"""SQL for chunks: write a document's chunks, and the dense (pgvector) and lexical (tsvector) searches.

Works on a `databases.Database` whose connections have the pgvector codec registered.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import asyncpg
import numpy as np
import structlog
from databases import Database

if TYPE_CHECKING:
    from rag.sentences import SentenceVectors

log = structlog.get_logger(__name__)

PASSAGE_COLUMNS = "c.id AS chunk_id, c.document_id, d.filename, c.position, c.heading, c.content AS text"


def config_named(parameter: str) -> str:
    """SQL for the text-search configuration named by `parameter`, `simple` when this server has none of that
    name (PostgreSQL has no to_regconfig; `hindi` exists from PostgreSQL 18 only)."""
    return f"coalesce((SELECT CAST(oid AS regconfig) FROM pg_ts_config WHERE cfgname = {parameter}), CAST('simple' AS regconfig))"


async def replace_chunks(
    db: Database,
    *,
    document_id: int,
    assistant_id: int,
    chunks: Sequence[tuple[int, str, str, int, str]],  # (position, heading, content, token_count, text-search config)
    vectors: np.ndarray,
    next_vectors: np.ndarray | None = None,
    next_model: str | None = None,
) -> None:
    """Swap a document's chunks for new ones (call inside a transaction so readers never see a mix).
    A configuration this server lacks is stored as `simple` (`config_named`). While the assistant is
    re-embedded, `next_vectors` are the new model's (`next_model`), swapped in with the other chunks'."""
    nexts = next_vectors if next_vectors is not None else [None] * len(chunks)
    records = [
        (document_id, assistant_id, position, heading, content, tokens, config, vector, next_vector, next_model)
        for (position, heading, content, tokens, config), vector, next_vector in zip(chunks, vectors, nexts, strict=True)
    ]
    async with db.connection() as connection:  # the transaction's connection, when there is one
        conn = connection.raw_connection
        await conn.execute("DELETE FROM chunks WHERE document_id = $1", document_id)
        if records:  # one executemany instead of a round trip per chunk
            await conn.executemany(
                f"""
                INSERT INTO chunks (document_id, assistant_id, position, heading, content, token_count, language, embedding,
                                    embedding_next, embedding_next_model)
                VALUES ($1, $2, $3, $4, $5, $6, {config_named("$7")}, $8, $9,
                        CASE WHEN $9::vector IS NULL THEN NULL ELSE $10 END)
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


def _hit(record, **extra) -> dict:  # asyncpg record
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
WITH RECURSIVE configs AS (  -- the assistant's chunk languages, a probe each of chunks_assistant_language
    (SELECT language FROM chunks WHERE assistant_id = $3 ORDER BY language LIMIT 1)
    UNION ALL
    SELECT (SELECT c.language FROM chunks c WHERE c.assistant_id = $3 AND c.language > configs.language
            ORDER BY c.language LIMIT 1)
    FROM configs WHERE configs.language IS NOT NULL
), terms AS (  -- the question's words as each of those languages (and the fallback $1) stems them
    SELECT DISTINCT term, position('<' IN term) > 0 AS phrase
    FROM (SELECT language FROM configs WHERE language IS NOT NULL
          UNION ALL  -- no chunks yet: the assistant's language
          SELECT {config_named("CAST($1 AS text)")}
          WHERE NOT EXISTS (SELECT FROM configs WHERE language IS NOT NULL)) config,
         unnest(string_to_array(CAST(plainto_tsquery(config.language, $2) AS text), ' & ')) AS term
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
), query AS MATERIALIZED (  -- built once: inlined, it ran again for every matching chunk
    -- The terms are lexemes already (quoted): read as they are, not stemmed again by one language.
    SELECT CAST(coalesce((SELECT string_agg(term, ' | ') FROM kept),
                         (SELECT string_agg(term, ' | ') FROM terms)) AS tsquery) AS q  -- none rare: all words
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
    """Full-text matches ranked by ts_rank. The question is read in every language the assistant's chunks
    are in (each chunk's own configuration) and in `language` (the fallback), so a Portuguese question
    matches Portuguese chunks stemmed as Portuguese beside English ones. Words are OR-ed (a question rarely
    shares all of its words with the passage that answers it), minus the common ones (`TERM_CUT_MAX_SHARE`,
    from the stats `refresh_term_stats` keeps); phrases inside a word (XK-4471) stay phrases.
    With `embedding_model`, documents another model embedded are left out (as `dense_search_fresh`
    does); `with_embedding` adds each hit's vector (`embedding`)."""
    args = [language, query, assistant_id, embedding_model, limit]
    async with db.connection() as connection:
        records = await connection.raw_connection.fetch(LEXICAL_WITH_EMBEDDING if with_embedding else LEXICAL_PLAIN, *args)
    return [_hit(record, score=float(record["score"])) for record in records]


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


# --- Re-embedding (after a change of embedding model): the new vectors are written beside the old ones
# (`embedding_next`), then swapped in for a whole assistant at once, so no search ever compares two models.


async def search_model(db: Database, assistant_id: int, configured: str) -> str:
    """The model whose vectors an assistant's searches compare: `configured`, unless some of its documents
    still hold another model's vectors (a re-embedding not yet swapped in): then that one (the most used)."""
    async with db.connection() as connection:
        records = await connection.raw_connection.fetch(
            """
            SELECT embedding_model FROM documents
            WHERE assistant_id = $1 AND embedding_model IS NOT NULL AND embedding_model <> $2
            GROUP BY embedding_model ORDER BY count(*) DESC, embedding_model LIMIT 1
            """,
            assistant_id,
            configured,
        )
    return records[0]["embedding_model"] if records else configured


async def assistants_to_reembed(db: Database, model: str) -> list[int]:
    """Assistants with documents whose vectors another model gave."""
    async with db.connection() as connection:
        records = await connection.raw_connection.fetch(
            "SELECT DISTINCT assistant_id FROM documents WHERE embedding_model IS NOT NULL AND embedding_model <> $1 ORDER BY 1",
            model,
        )
    return [record["assistant_id"] for record in records]


async def chunks_to_reembed(db: Database, assistant_id: int, model: str, limit: int) -> list[dict]:
    """Chunks of the assistant's documents of another model that have no `model` vector yet (longest first,
    so a batch holds texts of similar length): chunk_id, heading, text."""
    async with db.connection() as connection:
        records = await connection.raw_connection.fetch(
            """
            SELECT c.id AS chunk_id, c.heading, c.content AS text
            FROM chunks c JOIN documents d ON d.id = c.document_id
            WHERE c.assistant_id = $1 AND d.embedding_model IS DISTINCT FROM $2
              AND c.embedding_next_model IS DISTINCT FROM $2
            ORDER BY length(c.content) DESC, c.id
            LIMIT $3
            """,
            assistant_id,
            model,
            limit,
        )
    return [dict(record) for record in records]


async def store_next_vectors(db: Database, rows: Sequence[tuple[int, np.ndarray, str]], model: str) -> None:
    """Each chunk's vector by `model` (chunk id, vector, its text-search configuration) beside its current one;
    the chunk's language is set again from its own text on the way."""
    async with db.connection() as connection:
        await connection.raw_connection.executemany(
            f"""
            UPDATE chunks SET embedding_next = $2, embedding_next_model = $4,
                   language = {config_named("$3")}
            WHERE id = $1
            """,
            [(chunk_id, np.asarray(vector, dtype=np.float32), config, model) for chunk_id, vector, config in rows],
        )


async def reembed_progress(db: Database, assistant_id: int, model: str) -> tuple[int, int]:
    """(chunks that have their `model` vector, chunks in all) of an assistant's documents of another model."""
    async with db.connection() as connection:
        record = await connection.raw_connection.fetchrow(
            """
            SELECT count(*) FILTER (WHERE c.embedding_next_model = $2) AS done, count(*) AS total
            FROM chunks c JOIN documents d ON d.id = c.document_id
            WHERE c.assistant_id = $1 AND d.embedding_model IS DISTINCT FROM $2
            """,
            assistant_id,
            model,
        )
    return int(record["done"]), int(record["total"])


async def swap_embeddings(db: Database, assistant_id: int, model: str) -> int | None:
    """When every chunk of the assistant has its `model` vector: swap them in, in one transaction, and record
    `model` on its documents. Returns the documents switched, or None when some chunk still lacks its vector
    (a document indexed meanwhile). Holds the assistant's chunk-writing lock (`lock_chunk_writes`)."""
    async with db.connection() as connection:
        conn = connection.raw_connection
        async with conn.transaction():
            await lock_chunk_writes(conn, assistant_id)
            missing = await conn.fetchval(
                """
                SELECT EXISTS (SELECT FROM chunks c JOIN documents d ON d.id = c.document_id
                               WHERE c.assistant_id = $1 AND d.embedding_model IS DISTINCT FROM $2
                                 AND c.embedding_next_model IS DISTINCT FROM $2)
                """,
                assistant_id,
                model,
            )
            if missing:
                return None
            await conn.execute(
                """
                UPDATE chunks c SET embedding = c.embedding_next, embedding_next = NULL, embedding_next_model = NULL
                FROM documents d
                WHERE d.id = c.document_id AND c.assistant_id = $1 AND d.embedding_model IS DISTINCT FROM $2
                """,
                assistant_id,
                model,
            )
            switched = await conn.fetchval(
                """
                WITH switched AS (
                    UPDATE documents SET embedding_model = $2, updated_at = now()
                    WHERE assistant_id = $1 AND embedding_model IS NOT NULL AND embedding_model <> $2 RETURNING id
                ) SELECT count(*) FROM switched
                """,
                assistant_id,
                model,
            )
            # The old model's sentence vectors (rag.sentences) answer nothing any more.
            await conn.execute(
                """
                DELETE FROM chunk_sentences s USING chunks c
                WHERE c.id = s.chunk_id AND c.assistant_id = $1 AND s.embedding_model <> $2
                """,
                assistant_id,
                model,
            )
    return int(switched)


async def lock_chunk_writes(conn: asyncpg.Connection, assistant_id: int) -> None:
    """Serialises, per assistant, the writing of a document's chunks with the swap of a re-embedding
    (inside the caller's transaction): a document's vectors are chosen knowing whether the swap happened."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('chunk_writes'), CAST($1 AS integer))", assistant_id)


# --- Sentences (rag.sentences): stored with their vectors at indexing, scored against the question at answer time.


async def replace_sentences(db: Database, rows: Sequence[tuple[int, SentenceVectors]], embedding_model: str) -> None:
    """Store each chunk's sentences (chunk id, its sentences) as embedded by `embedding_model`, replacing the ones
    that model gave before; other models' rows stay (a re-embedding runs beside them). Call inside the transaction
    that stores the chunks."""
    records = [
        (chunk_id, position, text, vector, embedding_model)
        for chunk_id, sentences in rows
        for position, (text, vector) in enumerate(zip(sentences.texts, sentences.vectors, strict=True))
    ]
    async with db.connection() as connection:
        conn = connection.raw_connection
        await conn.execute(
            "DELETE FROM chunk_sentences WHERE chunk_id = ANY($1::bigint[]) AND embedding_model = $2",
            [chunk_id for chunk_id, _ in rows],
            embedding_model,
        )
        if records:
            await conn.executemany(
                "INSERT INTO chunk_sentences (chunk_id, position, text, embedding, embedding_model) VALUES ($1, $2, $3, $4, $5)",
                records,
            )


async def chunk_ids_of(db: Database, document_id: int) -> list[int]:
    """A document's chunk ids in position order."""
    async with db.connection() as connection:
        records = await connection.raw_connection.fetch(
            "SELECT id FROM chunks WHERE document_id = $1 ORDER BY position", document_id
        )
    return [record["id"] for record in records]


SCORED_SENTENCES = """
SELECT s.chunk_id, s.position, s.text, s.embedding,
       CASE WHEN $2::vector IS NULL THEN NULL ELSE 1 - (s.embedding <=> $2::vector) END AS score
FROM chunk_sentences s
WHERE s.chunk_id = ANY($1::bigint[]) AND ($3::text IS NULL OR s.embedding_model = $3)
"""


async def scored_sentences(
    db: Database, chunk_ids: Sequence[int], vector: np.ndarray | None, embedding_model: str | None
) -> list[dict]:
    """Every stored sentence of these chunks with its vector (`embedding`) and its cosine similarity to `vector`
    (`score`, None without a vector), as embedded by `embedding_model` (any model when None). One query, no index
    needed: a few dozen rows."""
    query = None if vector is None else np.asarray(vector, dtype=np.float32)
    async with db.connection() as connection:
        records = await connection.raw_connection.fetch(SCORED_SENTENCES, list(chunk_ids), query, embedding_model)
    return [dict(record) for record in records]
