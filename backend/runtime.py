"""What services, routes and workers share in one process: settings, database, clients."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp
from databases import Database

from backend.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    db: Database
    http: aiohttp.ClientSession
    database_url: str
    # Built lazily by their own modules (the embedding model takes seconds to load).
    _cache: dict[str, Any] = field(default_factory=dict)

    @property
    def embedder(self):  # noqa: ANN201 - rag.embeddings.Embedder
        if "embedder" not in self._cache:
            from rag.embeddings import make_embedder

            self._cache["embedder"] = make_embedder(
                self.settings.embedding_provider, self.settings.embedding_model, ollama_host=self.settings.ollama_host
            )
        return self._cache["embedder"]

    @property
    def ollama(self):  # noqa: ANN201 - rag.llm.ollama.OllamaLLM
        if "ollama" not in self._cache:
            from backend.metrics import observe_llm_call
            from rag.llm.ollama import OllamaLLM

            self._cache["ollama"] = OllamaLLM(
                self.settings.ollama_host, timeout=self.settings.ollama_timeout_seconds, on_call=observe_llm_call("ollama")
            )
        return self._cache["ollama"]

    @property
    def openai(self):  # noqa: ANN201 - rag.llm.openai_compatible.OpenAICompatibleLLM, or None when not configured
        if not self.settings.openai_base_url:
            return None
        if "openai" not in self._cache:
            from backend.metrics import observe_llm_call
            from rag.llm.openai_compatible import OpenAICompatibleLLM

            self._cache["openai"] = OpenAICompatibleLLM(
                self.settings.openai_base_url,
                api_key=self.settings.openai_api_key.get_secret_value(),
                timeout=self.settings.llm_timeout_seconds,
                context_tokens=self.settings.openai_context_tokens,
                on_call=observe_llm_call("openai"),
            )
        return self._cache["openai"]

    @property
    def embedded(self):  # noqa: ANN201 - rag.llm.embedded.EmbeddedLLM (loads its model on first use)
        if "embedded" not in self._cache:
            self._cache["embedded"] = make_embedded(self.settings)
        return self._cache["embedded"]

    @property
    def document_reader(self):  # noqa: ANN201 - rag.parsing.DocumentReader
        """Reads uploads and index jobs' documents in limited child processes, a few at a time."""
        if "document_reader" not in self._cache:
            from rag.parsing import ChildLimits, DocumentReader

            self._cache["document_reader"] = DocumentReader(
                ChildLimits(
                    cpu_seconds=self.settings.rag_parse_cpu_seconds,
                    memory_bytes=self.settings.rag_parse_memory_mb * 1024 * 1024,
                    wall_seconds=self.settings.rag_parse_timeout_seconds,
                    concurrency=self.settings.rag_parse_concurrency,
                )
            )
        return self._cache["document_reader"]

    def gateway(self, provider: str):  # noqa: ANN201 - backend.gateways.base.Gateway
        key = f"gateway:{provider}"
        if key not in self._cache:
            from backend.gateways import make_gateway

            self._cache[key] = make_gateway(provider, self.settings, self.http, self.db)
        return self._cache[key]

    async def close(self) -> None:
        for name in ("ollama", "openai", "embedded", "embedder"):
            close = getattr(self._cache.get(name), "close", None)
            if close is not None:
                await close()


def make_embedded(settings: Settings):  # noqa: ANN201 - rag.llm.embedded.EmbeddedLLM
    """The embedded engine these settings describe (nothing is loaded until its first answer)."""
    from rag.llm.embedded import EmbeddedLLM

    return EmbeddedLLM(
        settings.llm_model_path or None,
        context_tokens=settings.llm_context_tokens,
        threads=settings.llm_threads,
        timeout=settings.llm_timeout_seconds,
    )
