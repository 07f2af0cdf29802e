"""What the in-process engines share: the model loaded once (in a thread, on first use or by `load()`),
and every encode run in a thread, one at a time, questions first (`EncodeTurns`), never on the event loop."""

from __future__ import annotations

import asyncio
import threading

import numpy as np

from rag.embedders.base import EncodeTurns, empty, unit_vectors
from rag.errors import EmbeddingError


class LocalEmbedder:
    """Subclasses set `name`, `model_name`, `batch_size` and implement `_load()` and `encode(texts, query)`."""

    name: str
    model_name: str
    batch_size: int

    def __init__(self) -> None:
        self._model = None
        self._load_lock = threading.Lock()  # two threads asking at once must not load it twice
        self._turns = EncodeTurns()

    def _load(self):  # the engine's model object
        raise NotImplementedError

    @property
    def model(self):
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    try:
                        self._model = self._load()
                    except EmbeddingError:
                        raise
                    except Exception as exc:  # a model missing offline, a broken install: say which setting
                        raise EmbeddingError(
                            f"The embedding model '{self.name}' could not be loaded ({type(exc).__name__}: {exc}). "
                            "Check EMBEDDING_PROVIDER and EMBEDDING_MODEL.",
                            code="embedding_setup",
                        ) from exc
        return self._model

    def load(self) -> None:
        """Blocking load (start-up does it in a thread, before /readyz says ready)."""
        _ = self.model

    def encode(self, texts: list[str], *, query: bool) -> np.ndarray:
        """Blocking encode (for threads and benchmarks): unit-length float32 vectors."""
        raise NotImplementedError

    async def embed_queries(self, texts: list[str]) -> np.ndarray:
        return await self._embed(texts, query=True)

    async def embed_passages(self, texts: list[str]) -> np.ndarray:
        return await self._embed(texts, query=False)

    async def _embed(self, texts: list[str], *, query: bool) -> np.ndarray:
        if not texts:
            return empty()
        if self._model is None:
            await asyncio.to_thread(self.load)
        await self._turns.acquire(EncodeTurns.QUERY if query else EncodeTurns.PASSAGE)
        try:
            vectors = await asyncio.to_thread(self.encode, texts, query=query)
        finally:
            self._turns.release()
        return unit_vectors(vectors, self.model_name)
