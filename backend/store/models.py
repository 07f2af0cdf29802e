"""SQL for Ollama model pulls, which run as `pull_model` jobs (the queue itself is `store.jobs`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from databases import Database

from backend.database import fetchrow, fetchval

PULL_JOB = "pull_model"


@dataclass(frozen=True)
class PullJobRow:
    id: int
    model: str
    status: str  # the job's: queued, running, done or failed
    progress: float | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


def pull_dedup_key(model: str) -> str:
    """One queued pull per model."""
    return f"{PULL_JOB}:{model}"


async def find_pull_job(db: Database, job_id: int) -> PullJobRow | None:
    record = await fetchrow(
        db,
        """
        SELECT id, payload->>'model' AS model, status, progress, last_error, created_at, updated_at
        FROM jobs WHERE id = $1 AND kind = $2
        """,
        job_id,
        PULL_JOB,
    )
    return PullJobRow(**record) if record is not None else None


async def queued_pull_job_id(db: Database, model: str) -> int | None:
    """The pull of `model` already waiting in the queue, if any."""
    return await fetchval(db, "SELECT id FROM jobs WHERE dedup_key = $1 AND status = 'queued'", pull_dedup_key(model))
