"""Do the answers state the right facts, never an invented one, and say "I don't know" when the
documents are silent? Per engine, through the real answer path (`answer_question`: hybrid
retrieval, prompt, the engine, the grounding guard).

The set: six small businesses' documents with questions whose answers are known facts and
questions the documents do not cover (`tests/fixtures/businesses`, or a folder of the same
shape). Engines: the embedded model always; llama.cpp's OpenAI-compatible server with the same
file (`--openai-server`, started here) or any server (`--openai-url`); Ollama when it answers
at OLLAMA_HOST with `--ollama-model`.

For each engine it reports: answers containing the expected fact; replies that reached the
customer with a fact the document lacks, with the guard on (what is sent) and off (what the
model wrote); not-covered questions answered with the fallback; and p50/p99 answer time. Then,
for the retrieval side of "not in the documents", how the best similarity splits covered from
not-covered questions at several thresholds.

    .venv/bin/python -m bench.answer_quality [folder] [--openai-server] [--ollama-model llama3.2]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import bench_runtime, businesses_parser, percentile, run_on_businesses, table
from rag.grounding import check_grounding, states_fact


@dataclass
class Result:
    business: str
    question: str
    covered: bool
    expected: list[str]
    sent: str  # what the customer received
    generated: str | None  # what the model wrote (None when no model answered)
    fallback: bool
    degraded: bool
    ungrounded: bool
    top_score: float | None
    unknown_terms: list[str]
    engine: str | None  # the engine whose words were used (None: no model was asked)
    ms: float


def invents(reply: str, support: Sequence[str]) -> bool:
    return not check_grounding(reply, support).ok


async def answer_all(rt, engine: str, businesses: list[dict], documents: dict[str, str], model: str | None) -> list[Result]:  # noqa: ANN001
    from backend.services.answers import answer_question
    from backend.services.assistants import AssistantFields, create_assistant
    from backend.services.knowledge import ingest_texts
    from rag.shaping import shape_for_whatsapp

    results = []
    for entry in businesses:
        document = documents[entry["document"]]
        fields = AssistantFields(
            name=f"{entry['name']} ({engine})",
            instructions=entry["instructions"],
            engine=engine,
            model=model,
            temperature=0,
        )
        assistant = await create_assistant(rt.db, fields, rt.settings.ollama_model)
        await ingest_texts(rt, assistant.id, [(entry["document"], document)])
        questions = [(q["question"], True, q["expected"]) for q in entry["covered"]]
        questions += [(q, False, []) for q in entry["not_covered"]]
        for question, covered, expected in questions:
            started = time.perf_counter()
            answer = await answer_question(rt, assistant, question, [])
            elapsed = (time.perf_counter() - started) * 1000
            generated = answer.trace.get("generated_text")
            results.append(
                Result(
                    business=entry["document"],
                    question=question,
                    covered=covered,
                    expected=expected,
                    sent=answer.text,
                    generated=shape_for_whatsapp(generated)[0] if generated else None,
                    fallback=answer.used_fallback,
                    degraded=answer.degraded,
                    ungrounded=answer.ungrounded,
                    top_score=answer.top_score,
                    unknown_terms=answer.trace.get("unknown_terms") or [],
                    engine=answer.trace.get("engine"),
                    ms=elapsed,
                )
            )
            print(f"  [{engine}] {entry['document']}: {question[:50]!r} -> {answer.text[:70]!r}", flush=True)
    return results


def report(engine: str, results: list[Result], documents: dict[str, str]) -> list[object]:
    covered = [r for r in results if r.covered]
    silent = [r for r in results if not r.covered]

    def support(r: Result) -> list[str]:
        return [documents[r.business], r.question]

    right = sum(all(states_fact(r.sent, e) for e in r.expected) for r in covered)
    right_unguarded = sum(all(states_fact(r.generated or r.sent, e) for e in r.expected) for r in covered)
    invented_sent = sum(invents(r.sent, support(r)) for r in results)
    # Guard off: the model's own words would have gone out wherever a model answered (not a fallback).
    invented_unguarded = sum(invents(r.generated, support(r)) for r in results if r.generated and not r.fallback)
    times = [r.ms for r in results]
    answered_by = {r.engine for r in results if r.engine}
    return [
        "+".join(sorted(answered_by)) or engine,
        f"{right}/{len(covered)} ({right / len(covered):.0%})",
        f"{right_unguarded}/{len(covered)}",
        f"{invented_sent}/{len(results)} ({invented_sent / len(results):.1%})",
        f"{invented_unguarded}/{len(results)} ({invented_unguarded / len(results):.1%})",
        f"{sum(r.fallback for r in silent)}/{len(silent)} ({sum(r.fallback for r in silent) / len(silent):.0%})",
        f"{sum(r.fallback for r in covered)}/{len(covered)}",
        sum(r.ungrounded for r in results),
        sum(r.degraded for r in results),
        round(percentile(times, 50)),
        round(percentile(times, 99)),
    ]


def threshold_table(results: list[Result]) -> str:
    """The retrieval side of "not in the documents", per rule: the best cosine alone at several
    thresholds, and with the words no document contains (answered only when there are none, or
    when the best cosine reaches the confident score: `rag.answer.answerable`)."""
    covered = [r for r in results if r.covered]
    silent = [r for r in results if not r.covered]
    rules = [(f"cosine >= {t}", t, None) for t in (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)]
    rules += [(f"cosine >= {t}, no unknown word unless >= {c}", t, c) for t in (0.2, 0.25) for c in (0.45, 0.5, 0.55, 1.0)]
    rows = []
    for name, minimum, confident in rules:

        def answers(r: Result, minimum: float = minimum, confident: float | None = confident) -> bool:
            top = r.top_score or 0.0
            return top >= minimum and (confident is None or not r.unknown_terms or top >= confident)

        kept = sum(answers(r) for r in covered)
        refused = sum(not answers(r) for r in silent)
        rows.append(
            (name, f"{kept / len(covered):.0%}", f"{refused / len(silent):.0%}", f"{(kept + refused) / len(results):.0%}")
        )
    tops = [r.top_score or 0.0 for r in covered], [r.top_score or 0.0 for r in silent]
    head = (
        f"best cosine: covered p10 {percentile(tops[0], 10):.3f} / median {percentile(tops[0], 50):.3f}; "
        f"not covered median {percentile(tops[1], 50):.3f} / p90 {percentile(tops[1], 90):.3f}\n"
    )
    return head + table(["rule", "covered answered", "not covered refused", "accuracy"], rows)


async def measure(args: argparse.Namespace, businesses: list[dict], documents: dict[str, str]) -> None:
    engines = ["embedded"]
    overrides: dict[str, object] = {"llm_provider": "embedded"}
    server = None
    if args.openai_server:
        from tests.real_models import llama_cpp_server, model_path

        server = llama_cpp_server(Path(args.log_dir) / "llama-server.log", context_tokens=2048)
        overrides.update(openai_base_url=server.__enter__(), openai_model=str(model_path()), openai_context_tokens=2048)
        engines.append("openai")
    elif args.openai_url:
        overrides.update(openai_base_url=args.openai_url, openai_model=args.openai_model)
        engines.append("openai")
    if args.ollama_model:
        engines.append("ollama")
    try:
        async with bench_runtime(args, fresh=True, **overrides) as rt:
            all_results = {}
            for engine in engines:
                model = args.ollama_model if engine == "ollama" else None
                all_results[engine] = await answer_all(rt, engine, businesses, documents, model)
    finally:
        if server is not None:
            server.__exit__(None, None, None)

    questions = sum(len(b["covered"]) + len(b["not_covered"]) for b in businesses)
    print(
        f"\n{len(businesses)} businesses, {questions} questions "
        f"({sum(len(b['covered']) for b in businesses)} covered by the documents, "
        f"{sum(len(b['not_covered']) for b in businesses)} not); temperature 0, RAG_MIN_SCORE {rt.settings.rag_min_score}, "
        f"RAG_CONFIDENT_SCORE {rt.settings.rag_confident_score}\n"
    )
    headers = [
        "engine",
        "expected fact",
        "(guard off)",
        "invented fact sent",
        "(guard off)",
        "not covered -> fallback",
        "covered -> fallback",
        "stopped",
        "degraded",
        "p50 ms",
        "p99 ms",
    ]
    print(table(headers, [report(engine, results, documents) for engine, results in all_results.items()]))
    print("\n" + threshold_table(next(iter(all_results.values()))))
    if args.show:
        for engine, results in all_results.items():
            for r in results:
                if r.ungrounded or (r.generated and invents(r.generated, [documents[r.business], r.question])):
                    print(f"[{engine}] {r.question!r}: model said {r.generated!r}")


def main() -> None:
    p = businesses_parser(__doc__)
    p.add_argument("--openai-server", action="store_true", help="also start llama.cpp's server with the bundled model")
    p.add_argument("--openai-url", default=None, help="or use this OpenAI-compatible server (/v1 URL)")
    p.add_argument("--openai-model", default="", help="the model to ask of --openai-url")
    p.add_argument("--ollama-model", default=None, help="also ask Ollama (OLLAMA_HOST) with this model")
    p.add_argument("--show", action="store_true", help="print every invented fact the models wrote")
    p.add_argument("--log-dir", default="/tmp", help="where the started server writes its log")
    run_on_businesses(p.parse_args(), measure)


if __name__ == "__main__":
    main()
