"""Answering a question from an assistant's documents (the reply pipeline and the console call this)."""

from __future__ import annotations

import time
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field

from backend import metrics
from backend.runtime import Runtime
from backend.services.assistants import Assistant
from rag import retrieval
from rag import store as rag_store
from rag.answer import ASKING_WORDS, AnswerConfig, generate_answer
from rag.errors import EmbeddingError, LLMUnavailable
from rag.llm import EngineChoice
from rag.types import Answer

log = structlog.get_logger(__name__)


class HistoryTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str = Field(pattern="^(user|assistant)$")
    content: str = Field(max_length=20000)


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=4000)
    history: list[HistoryTurn] = Field(default_factory=list, max_length=100, description="Oldest first")


class GenerateResponse(BaseModel):
    answer: str
    parts: list[str]
    sources: list[dict[str, Any]]
    degraded: bool
    degraded_reason: str | None
    used_fallback: bool
    ungrounded: bool = Field(description="The model stated a fact the sources lack: the best passage was sent instead")
    engine: str | None = Field(description="The engine that answered (ollama, openai, embedded), or None")
    model: str | None
    top_score: float | None
    timings_ms: dict[str, float]
    trace: dict[str, Any]


def answer_config(rt: Runtime, assistant: Assistant) -> AnswerConfig:
    settings = rt.settings
    return AnswerConfig(
        instructions=assistant.instructions,
        fallback_message=assistant.fallback_message,
        temperature=assistant.temperature,
        min_score=assistant.policies.min_retrieval_score or settings.rag_min_score,
        confident_score=settings.rag_confident_score,
        max_context_tokens=settings.rag_max_context_tokens,
        answer_tokens=settings.rag_answer_tokens,
        grounding_guard=assistant.policies.grounding_guard,
    )


def engine_of(rt: Runtime, assistant: Assistant) -> str:
    """The engine setting that applies: the assistant's own, or the server's LLM_PROVIDER."""
    return rt.settings.llm_provider if assistant.engine == "default" else assistant.engine


def engine_choices(rt: Runtime, assistant: Assistant) -> list[EngineChoice]:
    """The engines to ask, in order: `auto` tries Ollama with the assistant's model, then the
    embedded model; the others are one engine each (none when the OpenAI server is not configured)."""
    engine = engine_of(rt, assistant)
    embedded = EngineChoice(rt.embedded, rt.embedded.model_name)
    if engine == "embedded":
        return [embedded]
    if engine == "openai":
        model = assistant.model if assistant.engine == "openai" else (rt.settings.openai_model or assistant.model)
        return [EngineChoice(rt.openai, model)] if rt.openai is not None else []
    ollama = EngineChoice(rt.ollama, assistant.model)
    return [ollama] if engine == "ollama" else [ollama, embedded]


def outcome_of(answer: Answer) -> str:
    if answer.degraded:
        return "degraded"
    if answer.ungrounded:
        return "ungrounded"
    return "fallback" if answer.used_fallback else "answered"


async def answer_question(rt: Runtime, assistant: Assistant, question: str, history: list[dict]) -> Answer:
    """Retrieve, prompt, generate, shape. `history` is [{"role": "user"|"assistant", "content"}], oldest
    first. Ollama problems never raise: the answer comes back `degraded` with the reason."""
    started = time.perf_counter()
    trace: dict[str, Any] = {}
    try:
        found = await retrieval.search(
            rt.db, rt.embedder, assistant.id, question, top_k=rt.settings.rag_top_k, language=assistant.language
        )
    except (LLMUnavailable, EmbeddingError) as exc:
        # The embedder is remote (Ollama) and down: exact words can still find passages.
        log.warning("answer.embedding_unavailable", assistant=assistant.id, error=exc.message)
        trace["embedding_error"] = exc.message
        found = await retrieval.search(
            rt.db, rt.embedder, assistant.id, question, top_k=rt.settings.rag_top_k, language=assistant.language, mode="lexical"
        )
    unknown = await rag_store.unknown_terms(rt.db, assistant.id, question, assistant.language, ASKING_WORDS)
    trace.update(
        reindex_needed=found.reindex_needed,
        stale_document_ids=found.stale_document_ids,
        retrieval_ms=found.timings_ms,
        embedding_model=rt.embedder.name,
    )
    recent = [{"role": t["role"], "content": t["content"]} for t in history if t.get("role") in ("user", "assistant")]
    turns = assistant.policies.history_turns
    recent = recent[-turns:] if turns else []
    answer = await generate_answer(
        engine_choices(rt, assistant),
        answer_config(rt, assistant),
        question,
        recent,
        found.passages,
        unknown_terms=unknown,
        trace=trace,
        timings_ms={"retrieval": round((time.perf_counter() - started) * 1000, 1)},
    )
    if "embedding_error" in trace and not answer.degraded:
        # Answered from exact words only: usable, but the operator should know why it may be weaker.
        answer.degraded, answer.degraded_reason = True, "embeddings_unavailable"
        answer.trace.update(degraded=True, degraded_reason="embeddings_unavailable")
    engine, outcome = answer.trace.get("engine") or "none", outcome_of(answer)
    metrics.ANSWERS.labels(engine, outcome).inc()
    if answer.ungrounded:
        metrics.UNGROUNDED_ANSWERS.labels(engine).inc()
    log.info(
        "answer.done",
        assistant=assistant.id,
        engine=engine,
        outcome=outcome,
        degraded=answer.degraded,
        reason=answer.degraded_reason,
        fallback=answer.used_fallback,
        top_score=answer.top_score,
        ms=answer.trace["timings_ms"].get("total"),
    )
    return answer


def to_response(answer: Answer) -> GenerateResponse:
    return GenerateResponse(
        answer=answer.text,
        parts=answer.parts,
        sources=answer.sources,
        degraded=answer.degraded,
        degraded_reason=answer.degraded_reason,
        used_fallback=answer.used_fallback,
        ungrounded=answer.ungrounded,
        engine=answer.trace.get("engine"),
        model=answer.trace.get("model"),
        top_score=answer.top_score,
        timings_ms=answer.trace.get("timings_ms", {}),
        trace=answer.trace,
    )
