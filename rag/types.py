"""Results the rest of the product reads from `rag`: passages, sources, answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Passage:
    chunk_id: int
    document_id: int
    filename: str
    position: int
    heading: str
    text: str
    score: float  # fused (reciprocal-rank) score used for ranking
    dense_score: float | None = None  # cosine similarity, 0..1
    lexical_score: float | None = None  # ts_rank
    dense_rank: int | None = None
    lexical_rank: int | None = None


@dataclass
class Answer:
    text: str  # shaped for WhatsApp (its markup)
    parts: list[str]  # `text` split into messages of at most 4096 characters
    sources: list[dict[str, Any]]  # [{document_id, filename, chunk_id, position, score}]
    degraded: bool = False  # no engine answered: the quote was sent
    degraded_reason: str | None = None  # e.g. "ollama_unreachable", "model_not_found", "timeout"
    used_fallback: bool = False  # no good passage, or the model said the sources lack it: the fallback message
    ungrounded: bool = False  # the model stated a fact the relevant sentences lack: the quote was sent instead
    quoted: bool = False  # the reply is sentences of the documents, verbatim (quote mode, or the safe answer)
    top_score: float | None = None  # best dense similarity, for "no good answer in the documents"
    trace: dict[str, Any] = field(default_factory=dict)  # passages+scores, prompt tokens, model, timings, truncated
