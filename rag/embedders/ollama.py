"""Embeddings from an Ollama server's /api/embed (e.g. `all-minilm`, which gives 384 dimensions)."""

from __future__ import annotations

import httpx
import ollama

from rag.embedders.base import RemoteEmbedder
from rag.errors import LLMUnavailable


class OllamaEmbedder(RemoteEmbedder):
    def __init__(self, model: str, host: str, *, timeout: float = 60.0, batch_size: int | None = None) -> None:
        super().__init__("ollama", model, batch_size)
        self.client = ollama.AsyncClient(host=host, timeout=httpx.Timeout(timeout, connect=5))

    async def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        try:
            response = await self.client.embed(model=self.model_name, input=texts, truncate=True)
        except ollama.ResponseError as exc:
            code = "model_not_found" if exc.status_code == 404 else "ollama_error"
            raise LLMUnavailable(f"Ollama could not embed with '{self.model_name}': {exc.error}", code=code) from exc
        except (ConnectionError, httpx.TransportError) as exc:
            raise LLMUnavailable(
                f"Ollama is unreachable for embeddings ({type(exc).__name__}).", code="ollama_unreachable"
            ) from exc
        return list(response.embeddings)

    async def close(self) -> None:
        await self.client._client.aclose()
