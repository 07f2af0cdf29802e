"""Reciprocal-rank fusion and the facts the grounding guard looks for, without a database or a model."""

from __future__ import annotations

import time

from rag.grounding import check_grounding, states_fact
from rag.retrieval import fuse


def hit(chunk_id: int, score: float, **more) -> dict:
    return {"chunk_id": chunk_id, "document_id": 1, "filename": "a.md", "position": chunk_id, "heading": None,
            "text": f"chunk {chunk_id}", "score": score, **more}  # fmt: skip


def test_a_chunk_found_by_both_searches_ranks_above_one_found_by_either():
    dense = [hit(1, 0.9), hit(2, 0.8)]
    lexical = [hit(3, 5.0), hit(2, 4.0)]
    fused = fuse(dense, lexical, top_k=3)
    assert [p.chunk_id for p in fused] == [2, 1, 3]
    both = fused[0]
    assert both.dense_rank == 2 and both.lexical_rank == 2 and both.dense_score == 0.8 and both.lexical_score == 4.0


def test_fusion_keeps_top_k_and_breaks_ties_by_chunk_id():
    fused = fuse([hit(5, 0.9)], [hit(4, 3.0)], top_k=1)
    assert [p.chunk_id for p in fused] == [4]


def test_a_lexical_hit_outside_the_dense_list_keeps_its_similarity():
    fused = fuse([], [hit(7, 2.0, cosine=0.42)], top_k=1)
    assert fused[0].dense_score == 0.42 and fused[0].dense_rank is None


def test_a_price_the_sources_lack_is_unsupported_and_one_they_state_is_not():
    sources = ["A sourdough loaf costs €4.50. We open at 7:30."]
    assert check_grounding("The loaf is €4.50 and we open at 7:30 am.", sources).unsupported == []
    unsupported = check_grounding("The loaf is €5.20.", sources).unsupported
    assert [fact.text for fact in unsupported] == ["€5.20"]


def test_a_reply_without_facts_needs_no_support():
    grounding = check_grounding("We bake every morning, come by!", [])
    assert grounding.facts == [] and grounding.unsupported == []


def test_a_golden_fact_is_found_by_value_and_words_as_whole_words():
    assert states_fact("A croissant is 1,80 € [1].", "1.80 euros") and states_fact("We open at 7.30 am", "7:30")
    assert not states_fact("A croissant is 1.90 euros.", "1.80")
    assert states_fact("Sorry, we are CLOSED on\nMondays.", "closed on mondays")
    assert states_fact("Gluten free bread", "gluten-free")
    assert not states_fact("The door is unclosed.", "closed") and not states_fact("anything", "  ...  ")


def test_a_golden_fact_check_stays_linear_on_hostile_text():
    started = time.perf_counter()
    assert not states_fact("a " * 100_000, "a " * 100 + "b")
    assert time.perf_counter() - started < 1.0


def test_a_golden_fact_with_a_unit_or_a_currency_keeps_it():
    assert states_fact("Repairs carry a 6-month warranty.", "6 months") and states_fact("Garantía de 6 meses.", "6 months")
    assert not states_fact("Frames carry a 2-year warranty.", "6 months") and not states_fact("It takes 2 days.", "2 years")
    assert states_fact("A city bike is €60 a week.", "60 euros") and not states_fact("About 20 minutes.", "20 euros")
