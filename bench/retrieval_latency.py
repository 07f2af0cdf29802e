"""p50/p99 of a hybrid top-8 query at 10k and 100k chunks, and HNSW recall@8 against exact search.

Embedding 100k real chunks takes hours on a small CPU, so the corpus is built in two parts:
1. real: a sample of BEIR documents indexed through our ingestion path (`ingest_texts`: load,
   chunk, embed with the real model, store);
2. synthetic: copies of those real chunks (same text, so the full-text side sees the real word
   distribution) whose vector lies between the source's real vector and another real chunk's
   (w x source + (1-w) x other, w uniform in 0.5..1) plus a little Gaussian noise, re-normalised
   (`--synthetic noise`: the source's vector plus noise only, i.e. tight clusters of near-copies),
   written with `rag.store.replace_chunks` into documents of 25 chunks each. The HNSW index is dropped during
   the bulk load and rebuilt from its own definition (as read from pg_indexes) afterwards.

Queries are real BEIR queries through `rag.retrieval.search(mode="hybrid", top_k=8)` (embedding
included). Recall: `rag.store.dense_search` (HNSW) against the same query with index scans off.

    python -m bench.retrieval_latency [BEIR folder] [--sizes 10000,100000] [--real-docs N] [--queries N]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import re
import time

import numpy as np

from bench.common import (
    ROOT,
    bench_assistant,
    bench_runtime,
    dataset_path,
    document_filename,
    document_text,
    load_beir,
    parser,
    percentile,
    quiet_logs,
    refresh_term_stats,
    run,
    server_setting,
    table,
    warm_up_embedder,
)

TOP_K = 8
LEXICAL_VARIANTS = (
    "OR words, ts_rank_cd(,1) (the library before the IDF cut)",
    "OR words, ts_rank(,1)",
    "OR words in <=5% of chunks, ts_rank(,1)",
)
GOAL_P99_MS = 50.0
GOAL_RECALL = 0.95
CHUNKS_PER_SYNTHETIC_DOC = 25


SYNTHETIC = "synthetic-"
DESCRIBE = {
    "mix": "w x its source's real vector + (1-w) x another real chunk's, w ~ U(0.5, 1)",
    "noise": "its source's real vector",
}
# The definition in migrations/versions/0002 (only used when a run died between drop and rebuild).
HNSW_INDEX = "CREATE INDEX chunks_embedding ON chunks USING hnsw (embedding vector_cosine_ops)"


def migration_hnsw_options() -> str | None:
    """The WITH (...) build parameters of chunks_embedding in migrations/versions/0002: the
    default of --hnsw, so a reused database is rebuilt the way a fresh one is migrated."""
    source = " ".join((ROOT / "migrations" / "versions" / "0002_knowledge.py").read_text(encoding="utf-8").split())
    found = re.search(r"USING hnsw \(embedding vector_cosine_ops\) WITH \(([^)]*)\)", source)
    return found.group(1).strip() if found else None


async def real_chunks(rt, assistant, data, doc_ids: list[str]) -> list[dict]:
    """Index the sample for real, or (--data-dir) reuse an earlier run's real chunks after dropping its synthetic ones."""
    from backend.services.knowledge import ingest_texts

    started = time.perf_counter()
    reused = await rt.db.fetch_val(
        "SELECT count(*) FROM documents WHERE assistant_id = :a AND status = 'ready' AND filename NOT LIKE :s",
        {"a": assistant.id, "s": SYNTHETIC + "%"},
    )
    if reused:
        synthetic = {"a": assistant.id, "s": SYNTHETIC + "%"}
        await rt.db.execute("DROP INDEX IF EXISTS chunks_embedding")  # cheaper to rebuild than to vacuum
        await rt.db.execute("DELETE FROM documents WHERE assistant_id = :a AND filename LIKE :s", synthetic)
        await rt.db.execute("VACUUM ANALYZE chunks")
    else:
        await ingest_texts(rt, assistant.id, [(document_filename(d), document_text(*data.corpus[d])) for d in doc_ids])
    if await rt.db.fetch_val("SELECT count(*) FROM pg_indexes WHERE indexname = 'chunks_embedding'") == 0:
        await rt.db.execute(HNSW_INDEX)
    records = await rt.db.fetch_all(
        "SELECT heading, content, token_count, embedding FROM chunks WHERE assistant_id = :a ORDER BY id",
        {"a": assistant.id},
    )
    elapsed = time.perf_counter() - started
    if reused:
        print(f"real: reusing {reused:,} documents -> {len(records):,} chunks an earlier run embedded and stored")
    else:
        print(f"real: {len(doc_ids):,} documents -> {len(records):,} chunks embedded and stored in {elapsed:,.0f} s")
    return [dict(r._mapping) for r in records]


def as_array(value) -> np.ndarray:  # numpy array or pgvector.Vector
    return np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value, dtype=np.float32)


async def grow_to(
    rt,
    assistant,
    real: list[dict],
    target: int,
    mode: str,
    noise: float,
    rng: np.random.Generator,
    embedder_name: str,
    hnsw_options: str | None = None,
    languages: tuple[str, ...] = ("english",),
):
    """Add synthetic chunks until the assistant has `target`; returns the mean cosine of a copy to its source."""
    from backend.database import execute, fetchval, transaction
    from backend.store.documents import insert_document, mark_ready
    from rag.store import replace_chunks

    have = await fetchval(rt.db, "SELECT count(*) FROM chunks WHERE assistant_id = $1", assistant.id)
    missing = target - have
    if missing <= 0:
        return None
    index_def = await fetchval(rt.db, "SELECT indexdef FROM pg_indexes WHERE indexname = 'chunks_embedding'")
    if hnsw_options:  # try other build parameters than the migration's
        index_def = f"{HNSW_INDEX} WITH ({hnsw_options})"
    started = time.perf_counter()
    await execute(rt.db, "DROP INDEX IF EXISTS chunks_embedding")
    sources = rng.integers(0, len(real), size=missing)
    base = np.stack([as_array(real[i]["embedding"]) for i in sources])
    if mode == "mix":
        # Between its source and another random real chunk: fills the space between real points
        # the way more documents would, instead of piling copies around each real point.
        others = np.stack([as_array(real[i]["embedding"]) for i in rng.integers(0, len(real), size=missing)])
        weight = rng.uniform(0.5, 1.0, size=(missing, 1)).astype(np.float32)
        vectors = weight * base + (1 - weight) * others
    else:
        vectors = base.copy()
    vectors += rng.normal(0.0, noise, size=base.shape).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = float(np.mean(np.sum(vectors * base, axis=1)))
    for start in range(0, missing, CHUNKS_PER_SYNTHETIC_DOC):
        picked = sources[start : start + CHUNKS_PER_SYNTHETIC_DOC]
        texts = [real[i]["content"] for i in picked]
        body = "\n\n".join(texts).encode()
        async with transaction(rt.db):
            record = await insert_document(
                rt.db,
                assistant_id=assistant.id,
                filename=f"{SYNTHETIC}{have + start}.txt",
                content_type="text/plain",
                sha256=hashlib.sha256(body + str(have + start).encode()).hexdigest(),
                content=body,
            )
            # With --other-languages, documents in turn are stemmed as those languages (a multilingual assistant).
            config = languages[(start // CHUNKS_PER_SYNTHETIC_DOC) % len(languages)]
            await replace_chunks(
                rt.db,
                document_id=record.id,
                assistant_id=assistant.id,
                chunks=[
                    (p, real[i]["heading"], real[i]["content"], real[i]["token_count"], config) for p, i in enumerate(picked)
                ],
                vectors=vectors[start : start + len(picked)],
            )
            await mark_ready(rt.db, record.id, len(picked), embedder_name)
    load_s = time.perf_counter() - started
    if hnsw_options:
        print(f"HNSW built with: {index_def}")
    started = time.perf_counter()
    async with rt.db.connection() as connection:  # one session for the build settings
        await connection.execute("SET maintenance_work_mem = '512MB'")
        await connection.execute("SET max_parallel_maintenance_workers = 1")
        await connection.execute(index_def)
        await connection.execute("ANALYZE chunks")
        await connection.execute("ANALYZE documents")
    build_s = time.perf_counter() - started
    print(
        f"synthetic: +{missing:,} chunks (vector = {DESCRIBE[mode]} + N(0, {noise}^2) per dimension, re-normalised; "
        f"mean cosine to its source {cosine:.3f}) loaded in {load_s:,.0f} s; HNSW rebuilt in {build_s:,.0f} s",
        flush=True,
    )
    return cosine


EXACT_SQL = """
SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id
WHERE c.assistant_id = :assistant
ORDER BY c.embedding <=> CAST(:q AS vector)
LIMIT :limit
"""


async def exact_ids(rt, assistant_id: int, vector: np.ndarray) -> list[int]:
    """The true nearest chunks: the same ordering with index scans off (a sequential scan + sort)."""
    async with rt.db.transaction():
        await rt.db.execute("SET LOCAL enable_indexscan = off")
        await rt.db.execute("SET LOCAL enable_bitmapscan = off")
        records = await rt.db.fetch_all(EXACT_SQL, {"q": vector, "assistant": assistant_id, "limit": TOP_K})
    return [r._mapping["id"] for r in records]


async def measure(
    rt, assistant, queries: list[str], vectors: np.ndarray, ef_values: list[int], warmup: int, variant_names: list[str]
) -> dict:
    from rag.retrieval import search
    from rag.store import dense_search

    for q in queries[:warmup]:  # page the indexes in; not timed
        await search(rt.db, rt.embedder, assistant.id, q, top_k=TOP_K, mode="hybrid")
    total, embed, dense, lexical = [], [], [], []
    for q in queries:
        started = time.perf_counter()
        found = await search(rt.db, rt.embedder, assistant.id, q, top_k=TOP_K, mode="hybrid")
        total.append((time.perf_counter() - started) * 1000)
        t = found.timings_ms
        embed.append(t.get("embed", 0.0))
        dense.append(t.get("dense", 0.0))
        lexical.append(t.get("lexical", 0.0))
    # Why lexical time grows with the corpus: every chunk matching the query is ranked.
    lang = "CAST(:lang AS regconfig)"
    or_query = f"to_tsquery({lang}, replace(CAST(plainto_tsquery({lang}, :q) AS text), '&', '|'))"
    size = await rt.db.fetch_val("SELECT count(*) FROM chunks WHERE assistant_id = :a", {"a": assistant.id})
    matching = [
        await rt.db.fetch_val(
            f"SELECT count(*) FROM chunks c WHERE c.assistant_id = :a AND c.tsv @@ {or_query}",
            {"a": assistant.id, "lang": assistant.language, "q": q},
        )
        for q in queries[:100]
    ]
    exact = [await exact_ids(rt, assistant.id, v) for v in vectors]
    recall = {}
    for ef in ef_values:
        hits, times = 0, []
        for v, truth in zip(vectors, exact, strict=True):
            started = time.perf_counter()
            approx = await dense_search(rt.db, assistant.id, v, TOP_K, ef_search=ef)
            times.append((time.perf_counter() - started) * 1000)
            hits += len({a["chunk_id"] for a in approx} & set(truth))
        recall[ef] = (hits / (TOP_K * len(vectors)), percentile(times, 50), percentile(times, 99))
    match = sum(matching) / len(matching) / size
    variant_times = {}
    if variant_names:
        from bench.retrieval_quality import LexicalVariants

        variants = LexicalVariants(rt, assistant)
        await variants.prepare()
        for name in variant_names:
            times = []
            for q in queries[:100]:
                started = time.perf_counter()
                await variants.search(name, q, max(TOP_K * 4, 20))
                times.append((time.perf_counter() - started) * 1000)
            variant_times[name] = (percentile(times, 50), percentile(times, 99))
    return {
        "total": total,
        "embed": embed,
        "dense": dense,
        "lexical": lexical,
        "recall": recall,
        "match": match,
        "variants": variant_times,
    }


async def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000", help="Chunk counts to measure at, ascending")
    p.add_argument("--real-docs", type=int, default=800, help="BEIR documents embedded for real")
    p.add_argument("--queries", type=int, default=300, help="Timed queries per size (real BEIR queries)")
    p.add_argument("--warmup", type=int, default=20, help="Untimed queries before timing")
    p.add_argument("--ef-search", default="40,100,200", help="hnsw.ef_search values for the recall check")
    p.add_argument(
        "--lexical-variants",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Also time the full-text variants of bench.retrieval_quality (lexical part only, 100 queries)",
    )
    p.add_argument(
        "--hnsw",
        default=migration_hnsw_options(),
        help="Build the HNSW index WITH these options (default: the migration's), e.g. 'm = 32, ef_construction = 128'",
    )
    p.add_argument("--synthetic", choices=("mix", "noise"), default="mix", help="How synthetic vectors are made (README)")
    p.add_argument("--noise", type=float, default=0.02, help="Std-dev of the per-dimension noise of synthetic vectors")
    p.add_argument(
        "--other-languages",
        default="",
        help="Text-search configurations synthetic documents take in turn besides english (e.g. portuguese,spanish,german): "
        "the full-text query is then built for each of the assistant's languages",
    )
    args = p.parse_args()
    languages = ("english", *[c.strip() for c in args.other_languages.split(",") if c.strip()])
    quiet_logs()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    variant_names = list(LEXICAL_VARIANTS) if args.lexical_variants else []
    ef_values = [int(e) for e in args.ef_search.split(",")]
    data = load_beir(dataset_path(args.dataset))
    rng = random.Random(args.seed)
    doc_ids = rng.sample(list(data.corpus), min(args.real_docs, len(data.corpus)))
    queries = list(data.queries.values())
    rng.shuffle(queries)
    queries = queries[: args.queries + args.warmup]
    timed = queries[args.warmup :] or queries
    print(
        f"dataset {data.name}; {len(timed)} timed queries (+{args.warmup} warm-up), hybrid top-{TOP_K}; "
        f"synthetic chunks' text-search configurations: {', '.join(languages)}"
    )

    async with bench_runtime(args) as rt:
        from rag.store import dense_search

        assistant = await bench_assistant(rt, "bench retrieval latency", reuse=args.data_dir is not None)
        await warm_up_embedder(rt)
        real = await real_chunks(rt, assistant, data, doc_ids)
        query_vectors = np.asarray(await rt.embedder.embed_queries(timed), dtype=np.float32)
        pgvector = await rt.db.fetch_val("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        print(
            f"server: PostgreSQL {await server_setting(rt, 'server_version')}, shared_buffers "
            f"{await server_setting(rt, 'shared_buffers')}, pgvector {pgvector}; "
            f"search uses hnsw.ef_search={dense_search.__kwdefaults__.get('ef_search')} (rag.store.dense_search default), "
            f"iterative scan relaxed_order",
            flush=True,
        )
        nprng = np.random.default_rng(args.seed)
        rows, recall_rows, verdicts, variant_rows = [], [], [], []
        for size in sizes:
            await grow_to(rt, assistant, real, size, args.synthetic, args.noise, nprng, rt.embedder.name, args.hnsw, languages)
            stats_s = await refresh_term_stats(rt, assistant.id)  # what the indexing job does after documents change
            print(f"word statistics refreshed in {stats_s:.2f} s", flush=True)
            count = await rt.db.fetch_val("SELECT count(*) FROM chunks WHERE assistant_id = :a", {"a": assistant.id})
            m = await measure(rt, assistant, timed, query_vectors, ef_values, args.warmup, variant_names)
            p50, p99 = percentile(m["total"], 50), percentile(m["total"], 99)
            rows.append(
                (
                    f"{count:,}",
                    f"{p50:.1f}",
                    f"{p99:.1f}",
                    f"{percentile(m['embed'], 50):.1f}/{percentile(m['embed'], 99):.1f}",
                    f"{percentile(m['dense'], 50):.1f}/{percentile(m['dense'], 99):.1f}",
                    f"{percentile(m['lexical'], 50):.1f}/{percentile(m['lexical'], 99):.1f}",
                )
            )
            for ef, (recall, d50, d99) in m["recall"].items():
                recall_rows.append((f"{count:,}", ef, f"{recall:.4f}", f"{d50:.1f}", f"{d99:.1f}"))
            print(
                f"{count:,} chunks: hybrid top-{TOP_K} p50={p50:.1f} ms p99={p99:.1f} ms; HNSW recall@{TOP_K} "
                + ", ".join(f"ef_search={ef}: {r[0]:.4f}" for ef, r in m["recall"].items())
                + f"; the query's words OR-ed (before the library's common-word cut) match {m['match']:.0%} of the chunks",
                flush=True,
            )
            verdicts.append((count, p99, m["recall"]))
            variant_rows += [(f"{count:,}", name, f"{t50:.1f}", f"{t99:.1f}") for name, (t50, t99) in m["variants"].items()]
        print()
        print(table(["chunks", "p50 ms", "p99 ms", "embed p50/p99", "dense p50/p99", "lexical p50/p99"], rows))
        print()
        print(table(["chunks", "ef_search", f"recall@{TOP_K}", "dense p50 ms", "dense p99 ms"], recall_rows))
        if variant_rows:
            print()
            print("full-text variants (the lexical query alone; see bench.retrieval_quality --sweep for their quality):")
            print(table(["chunks", "lexical variant", "p50 ms", "p99 ms"], variant_rows))
        count, p99, recall = verdicts[-1]
        ef_used = dense_search.__kwdefaults__.get("ef_search")
        used = recall.get(ef_used, next(iter(recall.values())))[0]
        ok = p99 < GOAL_P99_MS and used >= GOAL_RECALL
        print(
            f"goal at {count:,} chunks: p99 < {GOAL_P99_MS:.0f} ms with recall >= {GOAL_RECALL} -> "
            f"{'MET' if ok else 'NOT MET'} (p99 {p99:.1f} ms, recall@{TOP_K} {used:.4f} at ef_search={ef_used})"
        )


if __name__ == "__main__":
    run(main)
