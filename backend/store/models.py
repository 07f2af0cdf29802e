"""Ollama model pulls, which run as `pull_model` jobs: read through `store.jobs`, which owns the table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from databases import Database

from backend.store import jobs

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
    job = await jobs.read_job(db, job_id, PULL_JOB)
    if job is None:
        return None
    fields = {name: getattr(job, name) for name in ("id", "status", "progress", "last_error", "created_at", "updated_at")}
    return PullJobRow(model=str(job.payload.get("model") or ""), **fields)


async def queued_pull_job_id(db: Database, model: str) -> int | None:
    """The pull of `model` already waiting in the queue, if any."""
    return await jobs.queued_job_id(db, pull_dedup_key(model))
