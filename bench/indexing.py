"""Chunks per second through our whole ingestion path versus a bare `SentenceTransformer.encode`.

The path is `backend.services.knowledge.ingest_texts` (insert the document row, load and
normalise, chunk in model tokens, embed, write chunks to pgvector + tsvector in a transaction).
The baseline encodes exactly the chunk texts the path embedded, with the same model and batch
size, in the same process. The ratio path/bare is the figure (goal >= 0.85).

    python -m bench.indexing [BEIR folder] [--docs N] [--rounds R]
"""

from __future__ import annotations

import asyncio
import random
import time

from bench.common import (
    bench_assistant,
    bench_runtime,
    dataset_path,
    document_filename,
    document_text,
    load_beir,
    parser,
    quiet_logs,
    run,
    table,
    warm_up_embedder,
)

GOAL = 0.85


async def ingest_round(rt, docs: list[tuple[str, str]], label: str) -> tuple[int, float, list[str]]:  # noqa: ANN001
    """Ingest into a fresh assistant (so nothing is a duplicate); returns chunks, seconds, chunk texts."""
    from backend.services.knowledge import ingest_texts
    from rag.chunking import Chunk

    assistant = await bench_assistant(rt, f"bench indexing {label}")
    started = time.perf_counter()
    ids = await ingest_texts(rt, assistant.id, docs)
    elapsed = time.perf_counter() - started
    records = await rt.db.fetch_all(
        "SELECT heading, content FROM chunks WHERE document_id = ANY(CAST(:ids AS bigint[])) ORDER BY document_id, position",
        {"ids": ids},
    )
    # Exactly what the path embedded for each stored chunk.
    texts = [Chunk(0, r._mapping["heading"], r._mapping["content"], 0).embedding_text for r in records]
    return len(texts), elapsed, texts


def bare_encode(model, texts: list[str], batch_size: int) -> float:  # noqa: ANN001 - SentenceTransformer
    started = time.perf_counter()
    model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    return time.perf_counter() - started


async def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--docs", type=int, default=300, help="Documents per round, a random sample (0 = the whole corpus)")
    p.add_argument("--rounds", type=int, default=1, help="Rounds (alternating which side runs first)")
    args = p.parse_args()
    quiet_logs()
    data = load_beir(dataset_path(args.dataset))
    doc_ids = list(data.corpus)
    if args.docs and args.docs < len(doc_ids):
        doc_ids = random.Random(args.seed).sample(doc_ids, args.docs)
    docs = [(document_filename(d), document_text(*data.corpus[d])) for d in doc_ids]
    size_mb = sum(len(t.encode()) for _, t in docs) / 1e6
    print(f"dataset {data.name}: {len(docs):,} of {len(data.corpus):,} documents ({size_mb:.1f} MB of text) per round")

    async with bench_runtime(args, fresh=True) as rt:
        load_s = await warm_up_embedder(rt)
        embedder = rt.embedder
        model = embedder.model  # the very SentenceTransformer instance the path uses
        batch_size = embedder.batch_size
        s = rt.settings
        print(
            f"embedder {embedder.name} (load {load_s:.0f} s), encode batch size {batch_size}, torch threads "
            f"{__import__('torch').get_num_threads()}, chunks {s.rag_chunk_tokens} tokens / overlap {s.rag_chunk_overlap_tokens}",
            flush=True,
        )
        rows = []
        texts: list[str] = []
        for number in range(1, args.rounds + 1):
            # Alternate which side runs first, so a change of machine load is shared out; the same
            # documents give the same chunks, so the bare side can reuse the first round's texts.
            bare_s = await asyncio.to_thread(bare_encode, model, texts, batch_size) if number % 2 == 0 else None
            chunks, path_s, texts = await ingest_round(rt, docs, f"round {number}")
            if bare_s is None:
                bare_s = await asyncio.to_thread(bare_encode, model, texts, batch_size)
            rows.append((number, chunks, path_s, bare_s))
            print(
                f"  round {number}: {chunks:,} chunks, path {path_s:,.1f} s, bare encode {bare_s:,.1f} s, "
                f"ratio {bare_s / path_s:.3f}" + (" (bare ran first)" if number % 2 == 0 else ""),
                flush=True,
            )

        chunks = sum(r[1] for r in rows)
        path_s = sum(r[2] for r in rows)
        bare_s = sum(r[3] for r in rows)
        path_rate, bare_rate = chunks / path_s, chunks / bare_s
        ratio = path_rate / bare_rate
        print()
        print(
            table(
                ["side", "chunks", "seconds", "chunks/s"],
                [
                    ("ingestion path (load+chunk+embed+store)", chunks, f"{path_s:.1f}", f"{path_rate:.2f}"),
                    (f"bare SentenceTransformer.encode (batch {batch_size})", chunks, f"{bare_s:.1f}", f"{bare_rate:.2f}"),
                ],
            )
        )
        print(f"ingestion path: {path_rate:.2f} chunks/s; bare encode: {bare_rate:.2f} chunks/s")
        verdict = "MET" if ratio >= GOAL else "NOT MET"
        print(f"ratio path/bare = {ratio:.3f} (goal >= {GOAL}) -> {verdict}")


if __name__ == "__main__":
    run(main)
