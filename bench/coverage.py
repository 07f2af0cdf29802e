"""Calibrates the embedder's thresholds: "is this question covered by the documents?" (`rag.coverage`) and "does a
source sentence support this claim?" (`rag.claims`), on the labelled set of `tests/fixtures/businesses`.

Coverage: each business gets an assistant with its document, indexed through the real path (chunks and sentence
vectors in PostgreSQL); each question, labelled covered or not, is searched as an answer searches it
(`search_assistant`, then the stored sentences scored by `rag.sentences.sentences_of`) and gives its evidence (best
passage cosine, best sentence cosine, lexical match: `rag.coverage.evidence_of`). A grid of `CoverageRule`s is scored
on all questions (in-sample) and, to see how it carries to new businesses, leave-one-business-out (each business
judged by the rule chosen on the others). Prints the evidence per label, the confusion matrices and the rule.

Claims: the sentences of `claims.json` (right and invented, per document) against the document's sentences (with
their headings, as stored), both embedded as passages: best cosine per label, and right kept / invented stopped at
each threshold with the polarity rule of `rag.claims.unsupported_claims`.

    .venv/bin/python -m bench.coverage [folder]
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import bench_runtime, businesses_parser, percentile, run_on_businesses, table
from rag.claims import unsupported_claims
from rag.coverage import CoverageRule, Evidence, evidence_of, is_covered


@dataclass(frozen=True)
class Labelled:
    business: str
    question: str
    language: str
    covered: bool
    evidence: Evidence


def questions_of(entry: dict) -> list[tuple[str, str, bool]]:
    """(question, language, covered) of a business of questions.json."""
    covered = [(q["question"], q.get("language", "en"), True) for q in entry["covered"]]
    return covered + [(q["question"], q.get("language", "en"), False) for q in entry["not_covered"]]


async def gather_evidence(rt, businesses: list[dict], documents: dict[str, str]) -> list[Labelled]:
    from backend.services.assistants import AssistantFields, create_assistant
    from backend.services.knowledge import ingest_texts, search_assistant
    from rag.sentences import sentences_of

    labelled = []
    detector = rt.language_detector
    served = ("en", "pt", "es")
    for entry in businesses:
        fields = AssistantFields(name=entry["name"], instructions=entry["instructions"])
        assistant = await create_assistant(rt.db, fields, rt.settings.ollama_model)
        started = time.perf_counter()
        await ingest_texts(rt, assistant.id, [(entry["document"], documents[entry["document"]])])
        print(f"  {entry['document']}: indexed in {time.perf_counter() - started:.1f} s", flush=True)
        for question, language, covered in questions_of(entry):
            found = await search_assistant(rt, assistant, question, top_k=rt.settings.rag_top_k)
            sentences = await sentences_of(rt.db, question, found.passages, found.query_vector, found.embedding_model)
            asked_in = detector.detect(question, among=served)
            written_in = detector.detect(" ".join(s.text for s in sentences[:8]), among=served)
            evidence = evidence_of(
                found.passages,
                [s.similarity for s in sentences],
                question_language=asked_in.code if asked_in else None,
                documents_language=written_in.code if written_in else None,
            )
            labelled.append(Labelled(entry["document"], question, language, covered, evidence))
    return labelled


# -- coverage rules -------------------------------------------------------------------------------

OFF = 2.0  # a sentence bar no cosine reaches: the sentence alone never decides


def candidate_rules() -> list[CoverageRule]:
    sentence = [round(0.80 + 0.005 * i, 3) for i in range(25)]  # 0.800 .. 0.920
    passage = [round(0.84 + 0.01 * i, 2) for i in range(10)] + [None]
    rules = [
        CoverageRule(sentence=s, lexical_sentence=ls, passage=p)
        for s, p in itertools.product(sentence + [OFF], passage)
        for ls in [x for x in sentence if x < s] + [None]
    ]
    cross = [CoverageRule(sentence=s, cross_language_sentence=c) for s in sentence for c in sentence if c < s]
    return rules + cross


@dataclass(frozen=True)
class Confusion:
    kept: int  # covered, answered
    sent_to_fallback: int  # covered, refused
    refused: int  # not covered, refused
    answered: int  # not covered, answered

    @property
    def balanced(self) -> float:
        covered, silent = self.kept + self.sent_to_fallback, self.refused + self.answered
        return (self.kept / max(covered, 1) + self.refused / max(silent, 1)) / 2

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def as_tuple(self) -> tuple[int, int, int, int]:
        return self.kept, self.sent_to_fallback, self.refused, self.answered


def confusion(rule: CoverageRule, labelled: list[Labelled]) -> Confusion:
    decisions = [(item.covered, is_covered(item.evidence, rule)) for item in labelled]
    return Confusion(
        kept=sum(c and d for c, d in decisions),
        sent_to_fallback=sum(c and not d for c, d in decisions),
        refused=sum(not c and not d for c, d in decisions),
        answered=sum(not c and d for c, d in decisions),
    )


def best_rule(labelled: list[Labelled], rules: list[CoverageRule]) -> CoverageRule:
    """The best balanced accuracy; among equals, the one refusing most not-covered questions (an invented answer costs
    more than a fallback), then the fewest pieces of evidence, then the middle of the plateau of equal sentence bars."""

    def key(rule: CoverageRule) -> tuple:
        result = confusion(rule, labelled)
        unused = (rule.passage is None) + (rule.lexical_sentence is None) + (rule.cross_language_sentence is None)
        return (round(result.balanced, 6), result.refused, unused)

    scored = [(key(rule), rule) for rule in rules]
    top = max(k for k, _ in scored)
    equals = sorted(
        (rule for k, rule in scored if k == top),
        key=lambda r: (r.sentence, r.cross_language_sentence or 0, r.lexical_sentence or 0, r.passage or 0),
    )
    return equals[len(equals) // 2]


def matrix(result: Confusion) -> str:
    covered, silent = result.kept + result.sent_to_fallback, result.refused + result.answered
    rows = [
        ("covered", result.kept, result.sent_to_fallback, f"{result.sent_to_fallback / max(covered, 1):.0%} to fallback"),
        ("not covered", result.answered, result.refused, f"{result.refused / max(silent, 1):.0%} to fallback"),
    ]
    return table(["question \\ decision", "answered", "fallback", ""], rows)


def describe(rule: CoverageRule) -> str:
    parts = [f"sentence >= {rule.sentence}" if rule.sentence != OFF else None]
    if rule.cross_language_sentence is not None:
        parts[0] += f" ({rule.cross_language_sentence} across languages)"
    if rule.lexical_sentence is not None:
        parts.append(f"lexical match and sentence >= {rule.lexical_sentence}")
    if rule.passage is not None:
        parts.append(f"passage >= {rule.passage}")
    return " or ".join(p for p in parts if p) or "never"


def report_coverage(labelled: list[Labelled]) -> None:
    covered = [x for x in labelled if x.covered]
    silent = [x for x in labelled if not x.covered]
    print(f"\n{len(labelled)} questions: {len(covered)} covered, {len(silent)} not covered")
    rows = []
    for name, group in (("covered", covered), ("not covered", silent)):
        sentences = [x.evidence.sentence or 0.0 for x in group]
        passages = [x.evidence.passage or 0.0 for x in group]
        rows.append(
            (
                name,
                f"{percentile(sentences, 10):.3f} / {percentile(sentences, 50):.3f} / {percentile(sentences, 90):.3f}",
                f"{percentile(passages, 10):.3f} / {percentile(passages, 50):.3f} / {percentile(passages, 90):.3f}",
                f"{sum(x.evidence.lexical for x in group)}/{len(group)}",
            )
        )
    print(table(["label", "best sentence p10/p50/p90", "best passage p10/p50/p90", "lexical match"], rows))

    rules = candidate_rules()
    singles = [
        ("sentence only", [r for r in rules if r == CoverageRule(sentence=r.sentence) and r.sentence != OFF]),
        ("sentence, across languages", [r for r in rules if r.cross_language_sentence is not None]),
        ("passage only", [r for r in rules if r.sentence == OFF and r.lexical_sentence is None and r.passage is not None]),
        ("sentence or lexical", [r for r in rules if r.passage is None and r.lexical_sentence is not None]),
        ("all kinds", rules),
    ]
    rows = []
    chosen = None
    for name, family in singles:
        rule = best_rule(labelled, family)
        result = confusion(rule, labelled)
        held_out = Confusion(0, 0, 0, 0)
        for business in sorted({x.business for x in labelled}):
            train = [x for x in labelled if x.business != business]
            test = [x for x in labelled if x.business == business]
            held_out = held_out + confusion(best_rule(train, family), test)
        rows.append(
            (
                name,
                describe(rule),
                f"{result.kept}/{len(covered)}",
                f"{result.refused}/{len(silent)}",
                f"{result.balanced:.3f}",
                f"{held_out.kept}/{len(covered)}",
                f"{held_out.refused}/{len(silent)}",
                f"{held_out.balanced:.3f}",
            )
        )
        chosen = (rule, result, held_out)
    print()
    headers = [
        "evidence",
        "best rule (in-sample)",
        "covered kept",
        "not refused",
        "bal. acc",
        "LOBO kept",
        "LOBO refused",
        "LOBO bal.",
    ]
    print(table(headers, rows))
    rule, result, held_out = chosen
    print(f"\nchosen: {describe(rule)}\n  {rule}\n\nconfusion matrix, in-sample:")
    print(matrix(result))
    print("\nconfusion matrix, leave-one-business-out (each business judged by the rule chosen on the other ones):")
    print(matrix(held_out))
    print("\nby language (chosen rule, in-sample):")
    rows = []
    print(f"(asked in another language than the documents, as detected: {sum(x.evidence.cross_language for x in labelled)})")
    for language in sorted({x.language for x in labelled}):
        group = [x for x in labelled if x.language == language]
        r = confusion(rule, group)
        rows.append((language, f"{r.kept}/{r.kept + r.sent_to_fallback}", f"{r.refused}/{r.refused + r.answered}"))
    print(table(["language", "covered kept", "not covered refused"], rows))
    misses = [x for x in labelled if is_covered(x.evidence, rule) != x.covered]
    if misses:
        print("\nwrong decisions:")
        for x in misses:
            e = x.evidence
            print(
                f"  {'covered' if x.covered else 'not covered':11} {x.business:18} {x.question[:60]!r:64} "
                f"sentence {e.sentence or 0:.3f} passage {e.passage or 0:.3f} lexical {e.lexical}"
            )


# -- claims ---------------------------------------------------------------------------------------

_HEADING = re.compile(r"^#+\s*(.*)$")


def document_sentences(text: str) -> list[str]:
    """The sentences of a Markdown document, each with its section heading, as `rag.sentences` embeds them."""
    from rag.sentences import embedding_text, split_sentences

    sentences, heading, section = [], "", []
    for line in [*text.splitlines(), "# end"]:
        match = _HEADING.match(line)
        if match:
            sentences += [embedding_text(heading, s) for s in split_sentences("\n".join(section))]
            heading, section = match.group(1).strip(), []
        else:
            section.append(line)
    return sentences


async def report_claims(rt, folder: Path, documents: dict[str, str]) -> None:
    claims = json.loads((folder / "claims.json").read_text())["claims"]
    embedder = rt.embedder
    best: list[tuple[bool, float]] = []
    per_document: dict[str, tuple[list[str], np.ndarray]] = {}
    vectors = await embedder.embed_passages([c["text"] for c in claims])
    for name in sorted({c["document"] for c in claims}):
        sources = document_sentences(documents[name])
        per_document[name] = (sources, await embedder.embed_passages(sources))
    for claim, vector in zip(claims, vectors, strict=True):
        _, source_vectors = per_document[claim["document"]]
        best.append((claim["right"], float(np.max(source_vectors @ vector))))
    right = [score for ok, score in best if ok]
    invented = [score for ok, score in best if not ok]
    print(f"\n{len(claims)} claim sentences ({len(right)} right, {len(invented)} invented): best cosine to a source sentence")
    print(
        table(
            ["label", "min", "p10", "p50", "p90", "max"],
            [
                (name, *(f"{v:.3f}" for v in (min(s), percentile(s, 10), percentile(s, 50), percentile(s, 90), max(s))))
                for name, s in (("right", right), ("invented", invented))
            ],
        )
    )
    rows = []
    for threshold in [round(0.80 + 0.01 * i, 2) for i in range(12)]:
        kept = stopped = kept_plain = stopped_plain = 0
        for index, claim in enumerate(claims):
            sources, source_vectors = per_document[claim["document"]]
            flagged = bool(
                unsupported_claims([claim["text"]], vectors[index : index + 1], sources, source_vectors, threshold=threshold)
            )
            plain = best[index][1] < threshold
            if claim["right"]:
                kept += not flagged
                kept_plain += not plain
            else:
                stopped += flagged
                stopped_plain += plain
        rows.append(
            (
                threshold,
                f"{kept}/{len(right)}",
                f"{stopped}/{len(invented)}",
                f"{kept_plain}/{len(right)}",
                f"{stopped_plain}/{len(invented)}",
            )
        )
    headers = ["threshold", "right kept", "invented stopped", "(cosine only) kept", "(cosine only) stopped"]
    print(table(headers, rows))


async def measure(args: argparse.Namespace, businesses: list[dict], documents: dict[str, str]) -> None:
    started = time.perf_counter()
    async with bench_runtime(args, fresh=True) as rt:
        print(f"embedder: {rt.embedder.name}", flush=True)
        labelled = await gather_evidence(rt, businesses, documents)
        report_coverage(labelled)
        await report_claims(rt, Path(args.folder), documents)
    print(f"\n{time.perf_counter() - started:.0f} s in all")


def main() -> None:
    run_on_businesses(businesses_parser(__doc__).parse_args(), measure)


if __name__ == "__main__":
    main()
