"""Hybrid retrieval: dense (pgvector) + lexical (PostgreSQL full text), fused by reciprocal rank."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import numpy as np
from databases import Database

from rag import store
from rag.embedders import Embedder
from rag.types import Passage

# Reciprocal-rank fusion's constant: Cormack et al. use 60; on SciFact's train split 10 ranks
# best at every candidate pool (bench/README.md), as the first ranks of both lists matter most.
RRF_K = 10
Mode = Literal["hybrid", "dense", "lexical"]
T = TypeVar("T")


@dataclass
class SearchResult:
    passages: list[Passage]
    stale_document_ids: list[int] = field(default_factory=list)  # indexed with another embedding model
    timings_ms: dict[str, float] = field(default_factory=dict)
    # The question's vector (None in lexical mode): answers score the chunks' stored sentences with it (rag.sentences).
    query_vector: np.ndarray | None = None
    # The model of `query_vector` and of the passages' vectors: compare stored sentences of this model only.
    embedding_model: str | None = None

    @property
    def reindex_needed(self) -> bool:
        return bool(self.stale_document_ids)


def fuse(dense: list[dict], lexical: list[dict], top_k: int, k: int = RRF_K) -> list[Passage]:
    """Reciprocal-rank fusion: score = Σ 1 / (k + rank) over the lists a chunk appears in."""
    merged: dict[int, dict] = {}
    for kind, results in (("dense", dense), ("lexical", lexical)):
        for rank, hit in enumerate(results, start=1):
            entry = merged.setdefault(hit["chunk_id"], {**hit, "fused": 0.0})
            entry[f"{kind}_score"] = hit["score"]
            if kind == "lexical" and entry.get("dense_score") is None and hit.get("cosine") is not None:
                entry["dense_score"] = float(hit["cosine"])  # similarity known even outside the dense list
            entry[f"{kind}_rank"] = rank
            entry["fused"] += 1.0 / (k + rank)
    ranked = sorted(merged.values(), key=lambda e: (-e["fused"], e["chunk_id"]))[:top_k]
    return [_passage(e, e["fused"]) for e in ranked]


def _passage(entry: dict, score: float) -> Passage:
    return Passage(
        chunk_id=entry["chunk_id"],
        document_id=entry["document_id"],
        filename=entry["filename"],
        position=entry["position"],
        heading=entry["heading"],
        text=entry["text"],
        score=round(score, 6),
        dense_score=_round(entry.get("dense_score")),
        lexical_score=_round(entry.get("lexical_score")),
        dense_rank=entry.get("dense_rank"),
        lexical_rank=entry.get("lexical_rank"),
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


async def search(
    db: Database,
    embedder: Embedder | None,
    assistant_id: int,
    query: str,
    *,
    top_k: int = 6,
    language: str = "english",
    mode: Mode = "hybrid",
    candidates: int | None = None,
    embedding_model: str | None = None,
) -> SearchResult:
    """The `top_k` best chunks of one assistant's documents for `query`. Only documents whose vectors are
    `embedding_model`'s (default: the embedder's) are searched; `language` is the full-text configuration used
    when the assistant has no chunks yet (each chunk has its own). Lexical mode needs no embedder."""
    model = embedding_model or (embedder.name if embedder is not None else None)
    if mode != "lexical" and embedder is None:
        raise ValueError("dense and hybrid searches need an embedder")
    started = time.perf_counter()
    timings: dict[str, float] = {}
    pool = candidates or max(top_k * 4, 20)
    vector = None
    if mode in ("hybrid", "dense"):
        # Before the searches, not beside them: the encode holds the GIL and both cores for ~12 ms,
        # and the searches slowed by half when they ran during it.
        vector = (await _timed(timings, "embed", embedder.embed_queries([query])))[0]
    if mode == "lexical":
        dense_side = _without_hits(store.stale_documents(db, assistant_id, model) if model else _no_documents())
    else:  # which documents another embedding model indexed is asked in the same round trip
        dense_side = _timed(timings, "dense", store.dense_search_fresh(db, assistant_id, vector, pool, model))
    lexical: list[dict] = []
    if mode == "dense":
        dense, stale = await dense_side
    else:
        lexical_side = _timed(
            timings,
            "lexical",
            store.lexical_search(db, assistant_id, query, language, pool, embedding_model=model, with_embedding=mode == "hybrid"),
        )
        # Each in a task of its own, so on a connection of its own: PostgreSQL runs them at once.
        (dense, stale), lexical = await asyncio.gather(dense_side, lexical_side)
    if mode == "dense":
        passages = [
            _passage({**h, "dense_score": h["score"], "dense_rank": i}, h["score"]) for i, h in enumerate(dense[:top_k], 1)
        ]
    elif mode == "lexical":
        passages = [
            _passage({**h, "lexical_score": h["score"], "lexical_rank": i}, h["score"]) for i, h in enumerate(lexical[:top_k], 1)
        ]
    else:
        passages = fuse(dense, with_cosine(lexical, vector), top_k)
    timings["total"] = _ms(started)
    return SearchResult(
        passages=passages, stale_document_ids=stale, timings_ms=timings, query_vector=vector, embedding_model=model
    )


def with_cosine(hits: list[dict], vector: np.ndarray) -> list[dict]:
    """Lexical hits (searched `with_embedding`) with their cosine similarity to the question
    (`cosine`), so a passage found by words alone still says how close it is in meaning."""
    query = np.asarray(vector, dtype=np.float32)
    for hit in hits:
        embedding = np.asarray(hit.pop("embedding").to_numpy(), dtype=np.float32)
        hit["cosine"] = float(embedding @ query / (np.linalg.norm(embedding) * np.linalg.norm(query) or 1.0))
    return hits


async def _no_documents() -> list[int]:
    return []


async def _without_hits(stale: Awaitable[list[int]]) -> tuple[list[dict], list[int]]:
    return [], await stale


async def _timed(timings: dict[str, float], name: str, awaitable: Awaitable[T]) -> T:
    started = time.perf_counter()
    try:
        return await awaitable
    finally:
        timings[name] = _ms(started)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
