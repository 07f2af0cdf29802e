"""Background knowledge work: index a document (`index_document`), pull an Ollama model (`pull_model`),
re-embed an assistant's documents after a change of embedding model (`backend.workers.reembedding`)."""

from __future__ import annotations

import time

import structlog

from backend.runtime import Runtime
from backend.services import knowledge
from backend.services.models import PULL_JOB
from backend.store import documents as store
from backend.workers import reembedding
from backend.workers.jobs import REASONS, Job, Lease, PermanentFailure, RetryLater
from rag.errors import DocumentError, EmbeddingError, LLMUnavailable
from rag.store import refresh_term_stats

log = structlog.get_logger(__name__)

# The engine's codes (rag.errors.LLMUnavailable) as job reasons.
ENGINE_REASONS = {"ollama_unreachable": "engine_unreachable", "timeout": "engine_timeout", "model_not_found": "model_not_found"}


def engine_reason(exc: LLMUnavailable) -> str:
    return ENGINE_REASONS.get(exc.code, "engine_error")


class IndexDocument:
    async def run(self, rt: Runtime, job: Job, lease: Lease) -> None:
        document_id = job.payload["document_id"]
        try:
            count = await knowledge.index_document(rt, document_id, on_progress=lease.heartbeat)
        except EmbeddingError as exc:  # the embedder cannot serve (e.g. wrong dimensions): its message names the setting
            raise PermanentFailure("embedding_failed", exc.message) from exc
        except DocumentError as exc:
            # rag's messages are written for the person who uploaded the file.
            reason = exc.code if exc.code in REASONS else "corrupt_document"
            raise PermanentFailure(reason, exc.message) from exc
        except LLMUnavailable as exc:  # the Ollama embedder is down: try again later
            await store.mark_pending(rt.db, document_id)
            raise RetryLater(engine_reason(exc)) from exc
        log.info("document.indexed", document=document_id, chunks=count)

    async def failed(self, rt: Runtime, job: Job, error: str) -> None:
        await store.mark_failed(rt.db, job.payload["document_id"], error)


class RefreshTermStats:
    async def run(self, rt: Runtime, job: Job, lease: Lease) -> None:
        assistant_id = job.payload["assistant_id"]
        started = time.perf_counter()
        chunks = await refresh_term_stats(rt.db, assistant_id)
        log.info("term_stats.refreshed", assistant=assistant_id, chunks=chunks, ms=round((time.perf_counter() - started) * 1000))

    async def failed(self, rt: Runtime, job: Job, error: str) -> None:
        log.warning("term_stats.refresh_failed", assistant=job.payload.get("assistant_id"), error=error)


class PullModel:
    async def run(self, rt: Runtime, job: Job, lease: Lease) -> None:
        model = job.payload["model"]
        last = 0.0
        try:
            async for step in rt.ollama.pull(model):
                total, completed = step.get("total"), step.get("completed")
                now = time.monotonic()
                if total and completed is not None and now - last > 0.5:
                    await lease.heartbeat(min(completed / total, 0.99))
                    last = now
        except LLMUnavailable as exc:
            if exc.code in ("model_not_found", "ollama_error"):
                # The engine's own words name what is wrong with this model (e.g. "file does not exist").
                raise PermanentFailure(engine_reason(exc), exc.message) from exc
            raise RetryLater(engine_reason(exc)) from exc
        await lease.heartbeat(1.0)
        log.info("model.pulled", model=model)

    async def failed(self, rt: Runtime, job: Job, error: str) -> None:
        log.warning("model.pull_failed", model=job.payload.get("model"), error=error)


HANDLERS: dict = {
    knowledge.INDEX_JOB: IndexDocument(),
    knowledge.TERM_STATS_JOB: RefreshTermStats(),
    PULL_JOB: PullModel(),
    **reembedding.HANDLERS,
}
