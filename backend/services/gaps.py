"""Knowledge gaps: what customers asked that the documents could not answer, grouped by meaning."""

from __future__ import annotations

from datetime import datetime

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from backend.runtime import Runtime
from backend.services.assistants import get_assistant
from backend.services.knowledge import FaqEntry, UploadedDocument, add_faq
from backend.store import messages as store
from rag.errors import EmbeddingError, LLMUnavailable


class GapsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    days: int = Field(default=30, ge=1, le=365, description="Look this far back")
    limit: int = Field(default=20, ge=1, le=200, description="Groups returned")
    similarity: float | None = Field(
        default=None, ge=0.3, le=1.0, description="Questions this similar form one group; default: the embedding model's own"
    )


class Gap(BaseModel):
    question: str = Field(description="The most typical wording of the group")
    count: int
    examples: list[str]
    message_ids: list[int]
    fallback_count: int = Field(description="How many got the fallback message")
    best_score: float | None = Field(description="Best retrieval score any of them got")
    last_asked_at: datetime


class GapAnswer(FaqEntry):
    message_ids: list[int] = Field(default_factory=list, max_length=2000, description="The gap's questions (its `message_ids`)")


class AnsweredGap(UploadedDocument):
    questions_answered: int = Field(description="Questions of the gap marked answered by this FAQ")


class GapsResponse(BaseModel):
    items: list[Gap]
    questions: int = Field(description="Weakly answered questions looked at")
    min_score: float


def _group(vectors: np.ndarray, similarity: float) -> list[list[int]]:
    """Greedy single pass: join the nearest group whose centroid is similar enough, else start one."""
    groups: list[list[int]] = []
    centroids: list[np.ndarray] = []
    for i, vector in enumerate(vectors):
        if centroids:
            sims = np.stack(centroids) @ vector
            best = int(np.argmax(sims))
            if sims[best] >= similarity:
                groups[best].append(i)
                centroid = vectors[groups[best]].mean(axis=0)
                centroids[best] = centroid / (np.linalg.norm(centroid) or 1.0)
                continue
        groups.append([i])
        centroids.append(vector)
    return groups


async def knowledge_gaps(rt: Runtime, assistant_id: int, query: GapsQuery) -> GapsResponse:
    assistant = await get_assistant(rt.db, assistant_id)
    min_score = assistant.policies.min_retrieval_score or rt.settings.rag_min_score
    records = await store.weakly_answered_questions(rt.db, assistant.id, min_score, query.days, 2000)
    if not records:
        return GapsResponse(items=[], questions=0, min_score=min_score)
    texts = [" ".join(r["text"].split()) for r in records]
    try:
        vectors = await rt.embedder.embed_queries(texts)  # customers' questions, grouped by meaning
        groups = _group(vectors, query.similarity or rt.embedder.same_meaning)
    except (LLMUnavailable, EmbeddingError):  # remote embedder down: group identical wordings only
        vectors = None
        by_text: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            by_text.setdefault(text.lower(), []).append(i)
        groups = list(by_text.values())
    gaps = []
    for members in groups:
        if vectors is not None:
            centroid = vectors[members].mean(axis=0)
            typical = members[int(np.argmax(vectors[members] @ centroid))]
        else:
            typical = members[0]
        scores = [records[i]["top_score"] for i in members if records[i]["top_score"] is not None]
        gaps.append(
            Gap(
                question=texts[typical],
                count=len(members),
                examples=list(dict.fromkeys(texts[i] for i in members))[:5],
                message_ids=[records[i]["message_id"] for i in members],
                fallback_count=sum(1 for i in members if records[i]["used_fallback"]),
                best_score=max(scores) if scores else None,
                last_asked_at=max(records[i]["created_at"] for i in members),
            )
        )
    gaps.sort(key=lambda g: (-g.count, -g.last_asked_at.timestamp()))
    return GapsResponse(items=gaps[: query.limit], questions=len(records), min_score=min_score)


async def answer_gap(rt: Runtime, assistant_id: int, entry: GapAnswer) -> AnsweredGap:
    """Save the gap's answer as an FAQ (indexed at once); its questions leave the list while that FAQ exists."""
    document = await add_faq(rt, assistant_id, FaqEntry(question=entry.question, answer=entry.answer))
    answered = await store.mark_gap_filled(rt.db, assistant_id, entry.message_ids, document.id) if entry.message_ids else 0
    return AnsweredGap(**document.model_dump(), questions_answered=answered)
