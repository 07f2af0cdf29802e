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
    def llm(self):  # noqa: ANN201 - rag.llm.OllamaLLM
        if "llm" not in self._cache:
            from rag.llm import OllamaLLM

            self._cache["llm"] = OllamaLLM(self.settings.ollama_host, timeout=self.settings.ollama_timeout_seconds)
        return self._cache["llm"]

    def gateway(self, provider: str):  # noqa: ANN201 - backend.gateways.base.Gateway
        key = f"gateway:{provider}"
        if key not in self._cache:
            from backend.gateways import make_gateway

            self._cache[key] = make_gateway(provider, self.settings, self.http, self.db)
        return self._cache[key]

    async def close(self) -> None:
        for name in ("llm", "embedder"):
            close = getattr(self._cache.get(name), "close", None)
            if close is not None:
                await close()
