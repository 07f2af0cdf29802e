"""Turning a loaded document into chunks and vectors (the database write is the caller's)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np

from rag.chunking import Chunk, chunk_blocks
from rag.embeddings import DIMENSIONS, Embedder
from rag.loaders import Block

Progress = Callable[[float], Awaitable[None]]


async def chunk_document(blocks: list[Block], embedder: Embedder, *, max_tokens: int, overlap: int) -> list[Chunk]:
    """Chunks sized in the embedder's tokens (never above what it reads), computed off the event loop."""
    limit = min(max_tokens, embedder.max_tokens - 8)  # room for the special tokens the model adds
    return await asyncio.to_thread(chunk_blocks, blocks, embedder.count_tokens, max_tokens=limit, overlap=overlap)


async def embed_chunks(
    chunks: list[Chunk], embedder: Embedder, *, batch_size: int = 64, on_progress: Progress | None = None
) -> np.ndarray:
    """Vectors for the chunks (in their order), a batch at a time: progress is reported between
    batches, and a question waiting for the same model is never stuck behind more than one batch.
    Batches are made of texts of similar length, longest first (as `SentenceTransformer.encode`
    does within one call): a batch is padded to its longest text, so mixed lengths waste compute."""
    texts = [c.embedding_text for c in chunks]
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    vectors = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        batch = order[start : start + batch_size]
        vectors[batch] = await embedder.embed([texts[i] for i in batch])
        if on_progress is not None:
            await on_progress(min(start + batch_size, len(texts)) / len(texts))
    return vectors
