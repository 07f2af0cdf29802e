"""Embeddings from an Ollama server's /api/embed (e.g. `all-minilm`, which gives 384 dimensions)."""

from __future__ import annotations

import httpx
import numpy as np
import ollama

from rag.embedders.base import e5_prefixes, embedder_name, empty, estimate_tokens, same_meaning_of, unit_vectors
from rag.errors import LLMUnavailable

BATCH_SIZE = 64


class OllamaEmbedder:
    max_tokens = 256

    def __init__(self, model: str, host: str, *, timeout: float = 60.0, batch_size: int | None = None) -> None:
        self.model_name = model
        self.name = embedder_name("ollama", model)
        self.dimensions = 384
        self.batch_size = batch_size or BATCH_SIZE
        self.query_prefix, self.passage_prefix = e5_prefixes(model)
        self.same_meaning = same_meaning_of(model)
        self.client = ollama.AsyncClient(host=host, timeout=httpx.Timeout(timeout, connect=5))

    def count_tokens(self, text: str) -> int:
        # Ollama does not expose its tokenizer; a conservative estimate keeps chunks under the limit.
        return estimate_tokens(text)

    async def embed_queries(self, texts: list[str]) -> np.ndarray:
        return await self._embed([self.query_prefix + t for t in texts])

    async def embed_passages(self, texts: list[str]) -> np.ndarray:
        return await self._embed([self.passage_prefix + t for t in texts])

    async def _embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return empty()
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
        return unit_vectors(out, self.model_name)

    async def close(self) -> None:
        await self.client._client.aclose()
