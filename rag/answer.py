"""From retrieved passages to an `Answer`: prompt, Ollama, WhatsApp shaping — and a useful
degraded answer (best passage, marked as such) whenever the model cannot be reached."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import structlog

from rag.errors import LLMUnavailable
from rag.llm import OllamaLLM
from rag.prompt import build_prompt, was_truncated
from rag.shaping import shape_for_whatsapp
from rag.types import Answer, Passage

log = structlog.get_logger(__name__)

DEGRADED_INTRO = "Our assistant is unavailable right now, so here is the most relevant part of our documents:"
DEGRADED_PASSAGE_CHARS = 1500


@dataclass(frozen=True)
class AnswerConfig:
    model: str
    instructions: str
    fallback_message: str
    temperature: float = 0.2
    min_score: float = 0.25  # best cosine similarity under this = "the documents do not answer it"
    max_context_tokens: int = 8192  # never ask for a bigger window than this (memory)
    answer_tokens: int = 512  # room kept for the answer (also its num_predict)
    degraded_passages: int = 1


def relevant(passages: list[Passage], min_score: float) -> list[Passage]:
    """Passages similar enough to the question; an exact-term (lexical) hit counts at half the bar,
    and on its own when no similarity is known (the embedder was unavailable)."""
    return [
        p
        for p in passages
        if (p.dense_score or 0.0) >= min_score
        or (p.lexical_rank is not None and (p.dense_score is None or p.dense_score >= min_score / 2))
    ]


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


def degraded_text(passages: list[Passage], count: int) -> str:
    parts = [DEGRADED_INTRO]
    for p in passages[:count]:
        text = p.text if len(p.text) <= DEGRADED_PASSAGE_CHARS else p.text[:DEGRADED_PASSAGE_CHARS].rsplit(" ", 1)[0] + " …"
        parts.append(f"{text}\n_(from {p.filename})_")
    return "\n\n".join(parts)


async def generate_answer(
    llm: OllamaLLM,
    config: AnswerConfig,
    question: str,
    history: list[dict[str, str]],
    passages: list[Passage],
    *,
    trace: dict[str, Any] | None = None,
    timings_ms: dict[str, float] | None = None,
) -> Answer:
    """Never raises for Ollama problems: they become `degraded=True` with the reason."""
    started = time.perf_counter()
    timings = dict(timings_ms or {})
    good = relevant(passages, config.min_score)
    top_score = max((p.dense_score for p in passages if p.dense_score is not None), default=None)
    base_trace: dict[str, Any] = {
        **(trace or {}),
        "model": config.model,
        "passages": passage_trace(passages),
        "top_score": top_score,
        "min_score": config.min_score,
        "prompt_tokens": None,
        "num_ctx": None,
        "context_limit": None,
        "prompt_eval_count": None,
        "eval_count": None,
        "truncated": False,
        "degraded": False,
        "degraded_reason": None,
        "used_fallback": False,
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
            top_score=top_score,
            trace=result_trace,
        )

    if not good:
        return finish(config.fallback_message, [], used_fallback=True)

    generation_started = time.perf_counter()
    try:
        model_limit = await llm.context_length(config.model)
        context_limit = min(model_limit or config.max_context_tokens, config.max_context_tokens)
        prompt = build_prompt(
            instructions=config.instructions,
            question=question,
            passages=good,
            history=history,
            context_limit=context_limit,
            answer_tokens=config.answer_tokens,
        )
        base_trace.update(
            prompt_tokens=prompt.prompt_tokens,
            num_ctx=prompt.num_ctx,
            context_limit=context_limit,
            model_context_length=model_limit,
            history_used=prompt.history_used,
            dropped_turns=prompt.dropped_turns,
            dropped_passages=prompt.dropped_passages,
        )
        result = await llm.chat(
            config.model,
            prompt.messages,
            options={"temperature": config.temperature, "num_ctx": prompt.num_ctx, "num_predict": config.answer_tokens},
        )
    except LLMUnavailable as exc:
        timings["generation"] = round((time.perf_counter() - generation_started) * 1000, 1)
        log.warning("answer.degraded", reason=exc.code, model=config.model, error=exc.message)
        return finish(
            degraded_text(good, config.degraded_passages),
            good[: config.degraded_passages],
            degraded=True,
            degraded_reason=exc.code,
            degraded_detail=exc.message,
        )
    timings["generation"] = round((time.perf_counter() - generation_started) * 1000, 1)
    truncated = was_truncated(result.prompt_eval_count, prompt.num_ctx, config.answer_tokens)
    if truncated:
        log.warning("answer.prompt_truncated", model=config.model, num_ctx=prompt.num_ctx, evaluated=result.prompt_eval_count)
    text = result.text.strip()
    if not text:
        return finish(
            degraded_text(good, config.degraded_passages),
            good[: config.degraded_passages],
            degraded=True,
            degraded_reason="empty_answer",
            truncated=truncated,
        )
    return finish(
        text,
        prompt.passages,
        model=result.model,
        prompt_eval_count=result.prompt_eval_count,
        eval_count=result.eval_count,
        done_reason=result.done_reason,
        answer_cut=result.done_reason == "length",
        truncated=truncated,
    )
