"""What a job handler works with: the job, its lease, the ways to fail, and the reason codes.

A failed or retried job stores `last_error` as `reason_code: A sentence for a person.` (the
console words the code; the sentence is the fallback). The technical detail goes to the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from databases import Database

from backend.runtime import Runtime
from backend.store import jobs as store
from backend.store.jobs import Job

__all__ = [
    "REASONS",
    "Job",
    "JobFailure",
    "JobHandler",
    "Lease",
    "PermanentFailure",
    "RetryLater",
    "describe",
]

# Every reason a job can fail or be retried for, with the sentence a person reads. Handlers raise
# RetryLater/PermanentFailure with one of these; the runner maps anything else (see `runner.reason_of`).
REASONS: Mapping[str, str] = MappingProxyType(
    {
        # The answer engine (Ollama) and the embedder.
        "engine_unreachable": "The answer engine could not be reached",
        "engine_timeout": "The answer engine did not answer in time",
        "engine_error": "The answer engine refused the request",
        "model_not_found": "The answer engine does not have this model",
        # Documents (the codes of rag.errors.DocumentError and EmbeddingError).
        "unsupported_document": "This kind of file cannot be read",
        "corrupt_document": "The file is damaged and cannot be read",
        "document_too_large": "The document is too large to index",
        "document_too_complex": "The document is too costly to read",
        "empty_document": "The document has no text to index",
        "embedding_failed": "The document's text could not be prepared for search",
        # Sending a reply.
        "channel_busy": "The channel reached its replies-per-minute limit",
        "gateway_unreachable": "The WhatsApp gateway could not be reached",
        "gateway_error": "The WhatsApp gateway refused the message",
        # Anything.
        "database_unreachable": "The database could not be reached",
        "timed_out": "A step took too long",
        "worker_lost": "The worker doing this stopped before it finished",
        "internal_error": "Something went wrong on our side",
    }
)


def describe(reason: str, message: str | None = None, *, retrying: bool = False) -> str:
    """A job's stored error: the code, then `message` (already written for a person) or the
    code's own sentence, saying whether another attempt follows."""
    sentence = (message or REASONS.get(reason) or REASONS["internal_error"]).strip().rstrip(".")
    return f"{reason}: {sentence}{'; retrying.' if retrying else '.'}"


class JobFailure(Exception):
    """A handler's account of why its job did not succeed: a code of REASONS and, optionally,
    a sentence for a person (otherwise the code's own). Chain the technical cause (`from exc`)."""

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(message or REASONS.get(reason, reason))
        self.reason = reason
        self.message = message


class RetryLater(JobFailure):
    """Ask for another attempt, after `delay` seconds (or the usual back-off)."""

    def __init__(self, reason: str, message: str | None = None, *, delay: float | None = None) -> None:
        super().__init__(reason, message)
        self.delay = delay


class PermanentFailure(JobFailure):
    """Retrying cannot help: fail the job now."""


@dataclass(frozen=True)
class Lease:
    """A running job's hold on it; a long job calls `heartbeat` so no one reclaims it."""

    db: Database = field(repr=False)
    job_id: int
    worker_id: str
    seconds: int

    async def heartbeat(self, progress: float | None = None) -> None:
        """Extend the lease and record progress (0..1)."""
        await store.extend_lease(self.db, self.job_id, self.worker_id, self.seconds, progress)


class JobHandler(Protocol):
    """What the runner calls for one kind of job."""

    async def run(self, rt: Runtime, job: Job, lease: Lease) -> None: ...

    async def failed(self, rt: Runtime, job: Job, error: str) -> None:
        """After the last attempt (`error` as `describe` wrote it)."""
        ...
