"""From retrieved passages to an `Answer`: prompt, a model, the grounding guard, WhatsApp shaping —
and a useful answer from the documents (the best passage, marked as such) whenever no engine can
answer or the model states a fact the passages do not contain."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from rag.errors import LLMUnavailable
from rag.grounding import check_grounding, strip_unknown_citations
from rag.llm import EngineChoice
from rag.prompt import NOT_IN_SOURCES, build_prompt, was_truncated
from rag.shaping import shape_for_whatsapp
from rag.types import Answer, Passage

log = structlog.get_logger(__name__)

# Sent above the best passage when no model's words can be sent (no engine answered, or the
# guard stopped an invented fact): what it is, without telling customers anything is broken.
PASSAGE_INTRO = "Here is what our documents say about that:"
DEGRADED_PASSAGE_CHARS = 1500


@dataclass(frozen=True)
class AnswerConfig:
    instructions: str
    fallback_message: str
    temperature: float = 0.2
    min_score: float = 0.2  # best cosine similarity under this = "the documents do not answer it"
    confident_score: float = 0.5  # from this best cosine on, words no document contains do not matter
    max_context_tokens: int = 8192  # never ask for a bigger window than this (memory)
    answer_tokens: int = 512  # room kept for the answer (also its num_predict)
    degraded_passages: int = 1
    grounding_guard: bool = True  # a reply stating a fact the sources lack is not sent


def relevant(passages: list[Passage], min_score: float) -> list[Passage]:
    """Passages similar enough to the question; an exact-term (lexical) hit counts at half the bar,
    and on its own when no similarity is known (the embedder was unavailable)."""
    return [
        p
        for p in passages
        if (p.dense_score or 0.0) >= min_score
        or (p.lexical_rank is not None and (p.dense_score is None or p.dense_score >= min_score / 2))
    ]


# Words that ask rather than name what is asked about. The question's other words that no
# document contains ("gluten", "wedding", "Zoom") say the documents are silent on it: similarity
# alone cannot tell, as an unrelated sentence of the same shop scores 0.3-0.5 with MiniLM.
# Calibrated on the answer-quality set (bench/answer_quality.py; figures in bench/README.md).
ASKING_WORDS = (
    "what whats when where which who whom whose why how much many number phone call ring email e-mail mail "
    "address website site web contact price cost charge fee pay time hour day open close late early today "
    "tomorrow get take give send make do have go come need want can could would like know tell "
    "u ur r pls plz please thanks hi hello"
)


def answerable(passages: list[Passage], config: AnswerConfig, unknown_terms: list[str]) -> tuple[list[Passage], str | None]:
    """The passages to answer from, or none and why: "low_score" (nothing similar enough) or
    "unknown_terms" (the question names something no document mentions, and nothing is very similar)."""
    good = relevant(passages, config.min_score)
    if not good:
        return [], "low_score"
    top = max((p.dense_score for p in good if p.dense_score is not None), default=None)
    if unknown_terms and (top is None or top < config.confident_score):
        return [], "unknown_terms"
    return good, None


def sources_of(passages: list[Passage]) -> list[dict[str, Any]]:
    return [
        {
            "number": i,
            "document_id": p.document_id,
            "filename": p.filename,
            "chunk_id": p.chunk_id,
            "position": p.position,
            "heading": p.heading,
            "score": p.score,
            "dense_score": p.dense_score,
            "lexical_score": p.lexical_score,
        }
        for i, p in enumerate(passages, start=1)
    ]


def passage_trace(passages: list[Passage]) -> list[dict[str, Any]]:
    return [
        {
            "chunk_id": p.chunk_id,
            "document_id": p.document_id,
            "filename": p.filename,
            "position": p.position,
            "heading": p.heading,
            "score": p.score,
            "dense_score": p.dense_score,
            "lexical_score": p.lexical_score,
            "dense_rank": p.dense_rank,
            "lexical_rank": p.lexical_rank,
            "text": p.text[:500],
        }
        for p in passages
    ]


def passage_answer(passages: list[Passage], count: int) -> str:
    parts = [PASSAGE_INTRO]
    for p in passages[:count]:
        text = p.text if len(p.text) <= DEGRADED_PASSAGE_CHARS else p.text[:DEGRADED_PASSAGE_CHARS].rsplit(" ", 1)[0] + " …"
        parts.append(f"{text}\n_(from {p.filename})_")
    return "\n\n".join(parts)


def support_texts(config: AnswerConfig, question: str, history: list[dict[str, str]], passages: list[Passage]) -> list[str]:
    """What a reply's facts may come from: the sources sent, the instructions, the customer's own words."""
    customer = [turn["content"] for turn in history if turn.get("role") == "user"]
    return [*(p.text for p in passages), *(p.heading for p in passages if p.heading), config.instructions, question, *customer]


async def generate_answer(
    engines: Sequence[EngineChoice],
    config: AnswerConfig,
    question: str,
    history: list[dict[str, str]],
    passages: list[Passage],
    *,
    unknown_terms: list[str] | None = None,
    trace: dict[str, Any] | None = None,
    timings_ms: dict[str, float] | None = None,
) -> Answer:
    """`unknown_terms`: the question's words no document contains (see `answerable`).
    Ask each engine in turn until one answers. Never raises for engine problems: when none
    answers, the answer comes back `degraded` with the reason (the last engine's)."""
    started = time.perf_counter()
    timings = dict(timings_ms or {})
    good, not_answerable = answerable(passages, config, unknown_terms or [])
    top_score = max((p.dense_score for p in passages if p.dense_score is not None), default=None)
    base_trace: dict[str, Any] = {
        **(trace or {}),
        "engine": None,
        "model": None,
        "engine_attempts": [],
        "passages": passage_trace(passages),
        "top_score": top_score,
        "min_score": config.min_score,
        "unknown_terms": unknown_terms or [],
        "prompt_tokens": None,
        "num_ctx": None,
        "context_limit": None,
        "prompt_eval_count": None,
        "eval_count": None,
        "truncated": False,
        "degraded": False,
        "degraded_reason": None,
        "used_fallback": False,
        "fallback_reason": None,
        "grounding": "on" if config.grounding_guard else "off",
        "ungrounded": False,
        "ungrounded_facts": [],
    }

    def finish(text: str, used: list[Passage], **changes: Any) -> Answer:
        timings["total"] = round(timings.get("retrieval", 0.0) + (time.perf_counter() - started) * 1000, 1)
        shaped, parts = shape_for_whatsapp(text)
        result_trace = {**base_trace, **changes, "timings_ms": timings}
        return Answer(
            text=shaped,
            parts=parts,
            sources=sources_of(used),
            degraded=result_trace["degraded"],
            degraded_reason=result_trace["degraded_reason"],
            used_fallback=result_trace["used_fallback"],
            ungrounded=result_trace["ungrounded"],
            top_score=top_score,
            trace=result_trace,
        )

    def from_passages(**changes: Any) -> Answer:
        return finish(passage_answer(good, config.degraded_passages), good[: config.degraded_passages], **changes)

    if not good:
        return finish(config.fallback_message, [], used_fallback=True, fallback_reason=not_answerable)

    generation_started = time.perf_counter()
    failure: LLMUnavailable | None = None
    for choice in engines:
        try:
            model_limit = await choice.llm.context_length(choice.model)
            context_limit = min(model_limit or config.max_context_tokens, config.max_context_tokens)
            prompt = build_prompt(
                instructions=config.instructions,
                question=question,
                passages=good,
                history=history,
                context_limit=context_limit,
                answer_tokens=min(config.answer_tokens, context_limit // 4),
            )
            result = await choice.llm.chat(
                choice.model,
                prompt.messages,
                temperature=config.temperature,
                max_tokens=min(config.answer_tokens, context_limit // 4),
                num_ctx=prompt.num_ctx,
            )
        except LLMUnavailable as exc:
            failure = exc
            base_trace["engine_attempts"].append({"engine": choice.engine, "model": choice.model, "error": exc.code})
            log.warning("answer.engine_unavailable", engine=choice.engine, model=choice.model, reason=exc.code, error=exc.message)
            continue
        break
    else:
        timings["generation"] = round((time.perf_counter() - generation_started) * 1000, 1)
        reason = failure.code if failure else "no_engine"
        detail = failure.message if failure else "No language model engine is configured."
        log.warning("answer.degraded", reason=reason, error=detail)
        return from_passages(degraded=True, degraded_reason=reason, degraded_detail=detail)

    timings["generation"] = round((time.perf_counter() - generation_started) * 1000, 1)
    base_trace["engine_attempts"].append({"engine": choice.engine, "model": result.model, "error": None})
    truncated = choice.engine == "ollama" and was_truncated(result.prompt_eval_count, prompt.num_ctx, config.answer_tokens)
    if truncated:
        log.warning("answer.prompt_truncated", model=result.model, num_ctx=prompt.num_ctx, evaluated=result.prompt_eval_count)
    base_trace.update(
        engine=choice.engine,
        model=result.model,
        prompt_tokens=prompt.prompt_tokens,
        num_ctx=prompt.num_ctx,
        context_limit=context_limit,
        model_context_length=model_limit,
        history_used=prompt.history_used,
        dropped_turns=prompt.dropped_turns,
        dropped_passages=prompt.dropped_passages,
        prompt_chunk_ids=[p.chunk_id for p in prompt.passages],  # the sources the model saw, in order
        prompt_eval_count=result.prompt_eval_count,
        eval_count=result.eval_count,
        done_reason=result.done_reason,
        answer_cut=result.done_reason == "length",
        truncated=truncated,
        generated_text=result.text,
    )
    text = strip_unknown_citations(result.text.strip(), len(prompt.passages))
    if NOT_IN_SOURCES.search(text):
        # The model says the sources do not answer: the fallback, and a knowledge gap.
        return finish(config.fallback_message, [], used_fallback=True, fallback_reason="model_not_in_sources")
    if not text:
        return from_passages(degraded=True, degraded_reason="empty_answer")
    if config.grounding_guard:
        grounding = check_grounding(text, support_texts(config, question, history, prompt.passages))
        if not grounding.ok:
            facts = [fact.text for fact in grounding.unsupported]
            log.warning("answer.ungrounded", engine=choice.engine, model=result.model, facts=facts)
            return from_passages(ungrounded=True, ungrounded_facts=facts)
    return finish(text, prompt.passages)
