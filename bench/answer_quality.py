"""Are the replies right? Per engine and answer mode, through the real answer path (`answer_question`: hybrid
retrieval, sentence selection, quote or generate, the checks), judged against facts written down beforehand —
never by the product's own guard.

The set (`tests/fixtures/businesses`, or a folder of the same shape): 8 businesses' documents (English, one Brazilian
Portuguese, one Mexican Spanish) and 135 customer questions in English, Portuguese and Spanish, a third of them not
covered by the documents. Each covered question lists its expected facts and its known wrong facts (the repair
warranty: right "6-month", wrong "2 years"); each question its language.

The judge, per reply (`rag.grounding.states_fact`: a value or whole-word comparison, not a guard):
- right: it states every expected fact and no known wrong fact in its own words (a quoted line of the document that
  also gives Sunday's hours beside Saturday's is the document's, shown with its source);
- wrong fact sent: it states a known wrong fact in its own words — outside the sentences it quotes verbatim from the
  document (those are the document's words, shown with their source) — or states one and not the expected fact;
- fallback: the assistant's fallback text (`used_fallback`);
- customer's language: `rag.languages.LanguageDetector` on the whole reply, and on its own words only (a quote's
  lead-in: the quoted sentences stay in the document's language).

Engines: the embedded model (the bundled SmolLM2-135M, a demo model: `auto` quotes with it), and with
`--openai-server` the same file behind llama.cpp's OpenAI-compatible server (not a demo engine: `auto` generates and
checks; `--openai-only` runs it alone). Modes: `quote`, `generate`, `auto`, set per assistant
(`policies.answer_mode`); a quote asks no engine, so it runs once, under the first engine. The reply language is what the
product would settle for a new contact: the question's detected language among the assistant's, else its main one.

    .venv/bin/python -m bench.answer_quality [folder] [--modes quote,generate,auto] [--openai-server] [--show]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.common import bench_runtime, businesses_parser, percentile, run_on_businesses, table
from rag.grounding import states_fact

MODES = ("quote", "generate", "auto")


@dataclass
class Result:
    business: str
    question: str
    language: str  # the customer's (labelled)
    covered: bool
    expected: list[str]
    wrong: list[str]
    sent: str
    own_words: str  # `sent` without the document's sentences it quotes verbatim
    fallback: bool
    quoted: bool
    engine: str | None
    ms: float
    beyond_retrieval_ms: float | None
    reply_language: str | None
    own_words_language: str | None

    @property
    def right(self) -> bool:
        return (
            self.covered
            and not self.fallback
            and all(states_fact(self.sent, fact) for fact in self.expected)
            and not self.wrong_fact_sent
        )

    @property
    def wrong_fact_sent(self) -> bool:
        if self.fallback:
            return False
        stated = [fact for fact in self.wrong if states_fact(self.sent, fact)]
        in_own_words = any(states_fact(self.own_words, fact) for fact in stated)
        return in_own_words or (bool(stated) and not all(states_fact(self.sent, fact) for fact in self.expected))


_SPACES = re.compile(r"\s+")


def without_quotes(reply: str, document_sentences: list[str]) -> str:
    """The reply less every sentence of the document it contains verbatim, and less the source labels under them."""
    text = _SPACES.sub(" ", reply)
    for sentence in sorted(document_sentences, key=len, reverse=True):
        text = text.replace(_SPACES.sub(" ", sentence), " ")
    return re.sub(r"_\([^)\n]*\)_", " ", text).strip()


def questions_of(entry: dict) -> list[dict]:
    main = entry.get("language", "en")
    covered = [{**q, "covered": True, "language": q.get("language", main)} for q in entry["covered"]]
    silent = [{"question": q["question"], "language": q.get("language", main), "covered": False, "expected": [], "wrong": []}
              for q in entry["not_covered"]]  # fmt: skip
    return covered + silent


async def answer_all(
    rt,
    businesses: list[dict],
    documents: dict[str, str],
    engines: list[str],
    modes: list[str],
    save: Path | None = None,
):
    from backend.services.answers import answer_question
    from backend.services.assistants import AssistantFields, create_assistant
    from backend.services.knowledge import ingest_texts
    from rag.sentences import split_sentences

    detector = rt.language_detector
    runs = [(engine, mode) for engine in engines for mode in modes if mode != "quote" or engine == engines[0]]
    results: dict[tuple[str, str], list[Result]] = {run: [] for run in runs}
    for entry in businesses:
        main = entry.get("language", "en")
        served = [main, *(code for code in ("en", "pt", "es") if code != main)]
        fields = AssistantFields(name=entry["name"], instructions=entry["instructions"], temperature=0, languages=served)
        base = await create_assistant(rt.db, fields, rt.settings.ollama_model)
        document = documents[entry["document"]]
        await ingest_texts(rt, base.id, [(entry["document"], document)])
        sentences = split_sentences(document)
        for question in questions_of(entry):
            detected = detector.detect(question["question"], among=tuple(served))
            language = detected.code if detected else main
            for engine in engines:
                for mode in modes:
                    if mode == "quote" and engine != engines[0]:
                        continue  # a quote asks no engine: the first engine's run is every engine's
                    policies = base.policies.model_copy(update={"answer_mode": mode})
                    assistant = base.model_copy(update={"engine": engine, "policies": policies})
                    started = time.perf_counter()
                    answer = await answer_question(rt, assistant, question["question"], [], language=language)
                    ms = (time.perf_counter() - started) * 1000
                    timings = answer.trace.get("timings_ms") or {}
                    own = without_quotes(answer.text, sentences)
                    reply_detection = detector.detect(answer.text, among=tuple(served))
                    own_detection = detector.detect(own, among=tuple(served))
                    results[(engine, mode)].append(
                        Result(
                            business=entry["document"],
                            question=question["question"],
                            language=question["language"],
                            covered=question["covered"],
                            expected=question["expected"],
                            wrong=question["wrong"],
                            sent=answer.text,
                            own_words=own,
                            fallback=answer.used_fallback,
                            quoted=answer.quoted,
                            engine=answer.trace.get("engine"),
                            ms=ms,
                            beyond_retrieval_ms=(timings["total"] - timings["retrieval"])
                            if "total" in timings and "retrieval" in timings
                            else None,
                            reply_language=reply_detection.code if reply_detection else None,
                            own_words_language=own_detection.code if own_detection else None,
                        )
                    )
        print(f"  {entry['document']}: {len(questions_of(entry))} questions x {len(runs)} runs", flush=True)
        if save is not None:
            with save.open("a") as out:
                for (engine, mode), rs in results.items():
                    for r in rs:
                        if r.business == entry["document"]:
                            out.write(json.dumps({"engine_run": engine, "mode": mode, **asdict(r)}, ensure_ascii=False) + "\n")
    return results


def load_saved(path: Path) -> dict[tuple[str, str], list[Result]]:
    """Replies saved by `--save`, to judge again without asking again."""
    results: dict[tuple[str, str], list[Result]] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        run = (row.pop("engine_run"), row.pop("mode"))
        results.setdefault(run, []).append(Result(**row))
    return results


def share(count: int, total: int) -> str:
    return f"{count}/{total} ({count / total:.0%})" if total else "-"


def outcome_shares(results: list[Result]) -> list[str]:
    """Right fact, wrong fact sent, not covered → fallback, covered → fallback, reply language, own-words language."""
    covered = [r for r in results if r.covered]
    silent = [r for r in results if not r.covered]
    return [
        share(sum(r.right for r in covered), len(covered)),
        share(sum(r.wrong_fact_sent for r in results), len(results)),
        share(sum(r.fallback for r in silent), len(silent)),
        share(sum(r.fallback for r in covered), len(covered)),
        share(sum(r.reply_language == r.language for r in results), len(results)),
        share(sum(r.own_words_language == r.language for r in results), len(results)),
    ]


def report_row(engine: str, mode: str, results: list[Result]) -> list[object]:
    times = [r.ms for r in results]
    beyond = [r.beyond_retrieval_ms for r in results if r.beyond_retrieval_ms is not None]
    return [
        engine,
        mode,
        *outcome_shares(results),
        share(sum(r.quoted for r in results), len(results)),
        round(percentile(times, 50)),
        round(percentile(times, 99)),
        round(percentile(beyond, 50)) if beyond else "-",
    ]


def by_language(results: list[Result]) -> list[tuple]:
    languages = sorted({r.language for r in results})
    return [(language, *outcome_shares([r for r in results if r.language == language])) for language in languages]


async def measure(args: argparse.Namespace, businesses: list[dict], documents: dict[str, str]) -> None:
    if args.only:
        businesses = [b for b in businesses if b["document"] in args.only.split(",")]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if unknown := [m for m in modes if m not in MODES]:
        raise SystemExit(f"unknown mode(s) {unknown}: choose among {', '.join(MODES)}")
    engines = [] if args.openai_only else ["embedded"]
    overrides: dict[str, object] = {"llm_provider": "embedded"}
    server = None
    if args.openai_server or args.openai_only:
        from tests.real_models import llama_cpp_server, model_path

        server = llama_cpp_server(Path(args.log_dir) / "llama-server.log", context_tokens=2048)
        overrides.update(openai_base_url=server.__enter__(), openai_model=str(model_path()), openai_context_tokens=2048)
        engines.append("openai")
    if args.judge:
        saved = load_saved(Path(args.judge))
        print_report(args, saved, len({r.business for r in next(iter(saved.values()))}), float("nan"))
        return
    if args.save:
        args.save.write_text("")
    started = time.perf_counter()
    try:
        async with bench_runtime(args, fresh=True, **overrides) as rt:
            rt.language_detector.load()
            results = await answer_all(rt, businesses, documents, engines, modes, args.save)
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    print_report(args, results, len(businesses), time.perf_counter() - started)


def print_report(args: argparse.Namespace, results: dict[tuple[str, str], list[Result]], businesses: int, elapsed: float) -> None:
    every = next(iter(results.values()))
    languages = sorted({r.language for r in every})
    print(
        f"\n{businesses} businesses, {len(every)} questions ({sum(r.covered for r in every)} covered, "
        f"{sum(not r.covered for r in every)} not; languages {', '.join(languages)}), temperature 0; "
        f"{len(results)} runs in {elapsed:.0f} s\n"
    )
    headers = [
        "engine",
        "mode",
        "right fact",
        "wrong fact sent",
        "not covered -> fallback",
        "covered -> fallback",
        "reply in customer's language",
        "(own words)",
        "quoted",
        "p50 ms",
        "p99 ms",
        "p50 ms beyond retrieval",
    ]
    print(table(headers, [report_row(engine, mode, rs) for (engine, mode), rs in results.items()]))
    for (engine, mode), rs in results.items():
        print(f"\n{engine} / {mode}, by the customer's language:")
        headers = ["language", "right fact", "wrong fact sent", "not covered -> fb", "covered -> fb", "reply lang", "own words"]
        print(table(headers, by_language(rs)))
    if args.show:
        for (engine, mode), rs in results.items():
            for r in rs:
                if r.wrong_fact_sent or (r.covered and not r.right):
                    mark = "WRONG" if r.wrong_fact_sent else "miss"
                    print(f"[{engine}/{mode}] {mark} {r.business} {r.question!r}: {r.sent[:160]!r}")


def main() -> None:
    p = businesses_parser(__doc__)
    p.add_argument("--modes", default=",".join(MODES), help="answer modes to run, comma-separated")
    p.add_argument("--only", default="", help="only these documents (comma-separated file names), for a quick look")
    p.add_argument("--openai-server", action="store_true", help="also start llama.cpp's server with the bundled model")
    p.add_argument("--openai-only", action="store_true", help="only the llama.cpp server (e.g. --modes generate,auto)")
    p.add_argument("--show", action="store_true", help="print every reply that missed or stated a wrong fact")
    p.add_argument("--save", type=Path, default=None, help="write every reply here (JSON lines), business by business")
    p.add_argument("--judge", default=None, help="judge the replies a --save wrote, without asking again")
    p.add_argument("--log-dir", default="/tmp", help="where the started server writes its log")
    run_on_businesses(p.parse_args(), measure)


if __name__ == "__main__":
    main()
