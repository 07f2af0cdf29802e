"""Background re-embedding after a change of embedding model (`reembed_assistant`), one job per assistant."""

from __future__ import annotations

import structlog

from backend.errors import NotFound
from backend.runtime import Runtime
from backend.services import knowledge
from backend.workers.jobs import Job, Lease, PermanentFailure, RetryLater
from rag.errors import EmbeddingError, LLMUnavailable

log = structlog.get_logger(__name__)


class ReembedAssistant:
    async def run(self, rt: Runtime, job: Job, lease: Lease) -> None:
        assistant_id, model = job.payload["assistant_id"], job.payload["model"]
        if model != rt.embedding_model:
            # The settings changed since it was queued: start-up queues the right one.
            log.info("reembedding.skipped", assistant=assistant_id, model=model, configured=rt.embedding_model)
            return
        try:
            switched = await knowledge.reembed_assistant(rt, assistant_id, on_progress=lease.heartbeat)
        except NotFound:
            return  # the assistant was deleted: nothing left to re-embed
        except EmbeddingError as exc:  # a model that cannot serve (wrong dimensions, unknown name): say which setting
            raise PermanentFailure("embedding_failed", exc.message) from exc
        except LLMUnavailable as exc:  # a remote embedder is down: the vectors made so far are kept
            raise RetryLater("engine_unreachable", exc.message) from exc
        log.info("reembedding.done", assistant=assistant_id, model=model, documents=switched)

    async def failed(self, rt: Runtime, job: Job, error: str) -> None:
        # Searches keep the old model's vectors; the console shows the failure and offers to start again.
        log.warning("reembedding.failed", assistant=job.payload.get("assistant_id"), error=error)


HANDLERS: dict = {knowledge.REEMBED_JOB: ReembedAssistant()}
