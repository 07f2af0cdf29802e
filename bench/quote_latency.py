"""What does a quoted answer add to retrieval?

Indexes the businesses set (tests/fixtures/businesses) through the real path (chunks and their sentences, embedded by
the configured embedder), then asks every question of the set through `answer_question` with `answer_mode=quote`, a few
rounds. Per answer, from its trace: the retrieval (question embedding + hybrid search), the sentence selection (one SQL
query scoring the retrieved chunks' stored sentences with the question's vector) and the quote's text; and the whole
answer. Also the cost of the sentences at indexing: documents indexed with and without them.

    .venv/bin/python -m bench.quote_latency --rounds 3
"""

from __future__ import annotations

import argparse
import os
import time

from bench.common import bench_runtime, businesses_parser, percentile, run_on_businesses, table


async def measure(args: argparse.Namespace, businesses: list[dict], documents: dict[str, str]) -> None:
    from backend.services.answers import answer_question
    from backend.services.assistants import AssistantFields, AssistantPatch, create_assistant, update_assistant
    from backend.services.knowledge import ingest_texts
    from backend.services.policies import ReplyPolicy
    from rag.indexing import chunk_document, embed_chunks
    from rag.loaders import load_document
    from rag.sentences import embed_sentences

    async with bench_runtime(args, fresh=True, llm_provider="embedded") as rt:
        await rt.embedder.embed_queries(["warm-up"])
        started = time.perf_counter()
        assistants = []
        for entry in businesses:
            assistant = await create_assistant(rt.db, AssistantFields(name=entry["name"]), rt.settings.ollama_model)
            assistant = await update_assistant(rt.db, assistant.id, AssistantPatch(policies=ReplyPolicy(answer_mode="quote")))
            await ingest_texts(rt, assistant.id, [(entry["document"], documents[entry["document"]])])
            assistants.append((assistant, entry))
        indexing_s = time.perf_counter() - started

        # Indexing cost of the sentences alone, on the same texts (the chunks' vectors, then the sentences').
        chunks = []
        for entry in businesses:
            loaded = load_document(entry["document"], documents[entry["document"]].encode(), max_bytes=10**7)
            chunks += await chunk_document(loaded.blocks, rt.embedder, max_tokens=200, overlap=40)
        started = time.perf_counter()
        await embed_chunks(chunks, rt.embedder)
        chunk_s = time.perf_counter() - started
        started = time.perf_counter()
        sentences = await embed_sentences(rt.embedder, [(c.heading, c.text) for c in chunks])
        sentence_s = time.perf_counter() - started

        retrieval, selection, quote, total = [], [], [], []
        for _ in range(args.rounds):
            for assistant, entry in assistants:
                asked = [*entry["covered"], *entry["not_covered"]]
                questions = [q["question"] if isinstance(q, dict) else q for q in asked]
                for question in questions:
                    answer = await answer_question(rt, assistant, question, [])
                    timings = answer.trace["retrieval_ms"]
                    retrieval.append(timings["total"])
                    selection.append(timings["sentences"])
                    quote.append(answer.trace["timings_ms"].get("quote", 0.0))
                    total.append(answer.trace["timings_ms"]["total"])
        added = [s + q for s, q in zip(selection, quote, strict=True)]
        rows = [
            (name, len(values), round(percentile(values, 50), 2), round(percentile(values, 99), 2), round(max(values), 2))
            for name, values in (
                ("retrieval (embed question + hybrid search)", retrieval),
                ("sentence selection (1 SQL query)", selection),
                ("quote text", quote),
                ("added by quoting (selection + text)", added),
                ("whole answer", total),
            )
        ]
        print(
            f"\n{len(businesses)} businesses, {sum(len(s.texts) for s in sentences)} sentences in {len(chunks)} chunks; "
            f"embedder {rt.embedder.name}; {os.cpu_count()} CPUs; {args.rounds} rounds of every question\n"
        )
        print(table(["step", "answers", "p50 ms", "p99 ms", "max ms"], rows))
        print(
            f"\nindexing the set with sentences: {indexing_s:.1f} s; on the same chunks, chunk vectors {chunk_s:.1f} s "
            f"and sentence vectors {sentence_s:.1f} s"
        )
        p99 = percentile(added, 99)
        print(f"quote adds p99 {p99:.2f} ms to retrieval (goal <= 50 ms) -> {'MET' if p99 <= 50 else 'NOT MET'}")


def main() -> None:
    p = businesses_parser(__doc__)
    p.add_argument("--rounds", type=int, default=3, help="times every question is asked")
    run_on_businesses(p.parse_args(), measure)


if __name__ == "__main__":
    main()
