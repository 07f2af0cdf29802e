"""SQL for the job queue: enqueue, claim (SKIP LOCKED), finish, retry, reclaim, prune, count."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from databases import Database

from backend.database import execute, fetch, fetchrow, fetchval, row

CHANNEL = "jobs"  # LISTEN/NOTIFY channel: a queued job wakes an idle worker


@dataclass(frozen=True)
class Job:
    """A job as stored: what to do (`kind`, `payload`) and how its attempts went."""

    id: int
    kind: str
    payload: dict[str, Any]
    status: str  # queued, running, done, failed or cancelled
    attempts: int  # attempts started, this one included while running
    max_attempts: int
    last_error: str | None  # `reason_code: sentence` (see backend.workers.jobs)
    progress: float | None  # 0..1, as a long job reports it
    created_at: datetime
    updated_at: datetime


JOB_COLUMNS = "id, kind, payload, status, attempts, max_attempts, last_error, progress, created_at, updated_at"


def _job(record: asyncpg.Record) -> Job:
    return Job(
        id=record["id"],
        kind=record["kind"],
        payload=record["payload"],
        status=record["status"],
        attempts=record["attempts"],
        max_attempts=record["max_attempts"],
        last_error=record["last_error"],
        progress=record["progress"],
        created_at=record["created_at"],
        updated_at=record["updated_at"],
    )


ENQUEUE = """
WITH queued AS (
    INSERT INTO jobs (kind, payload, dedup_key, serial_key, run_at, max_attempts)
    VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5), $6)
    ON CONFLICT (dedup_key) WHERE status = 'queued' DO NOTHING
    RETURNING id
)
SELECT (SELECT id FROM queued) AS id, pg_notify($7, $1)
"""


async def enqueue_job(
    db: Database,
    kind: str,
    payload: dict[str, Any],
    *,
    dedup_key: str | None = None,
    serial_key: str | None = None,
    delay_seconds: float = 0,
    max_attempts: int = 5,
) -> int | None:
    """Queue a job and wake the workers. With a dedup key already queued, nothing is added
    and None is returned. Inside a transaction the wake-up is sent on commit."""
    return await fetchval(db, ENQUEUE, kind, payload, dedup_key, serial_key, float(delay_seconds), max_attempts, CHANNEL)


CLAIM = f"""
WITH claimed AS (
    UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = $1,
           locked_until = now() + make_interval(secs => $2), updated_at = now()
    WHERE id = (
        SELECT j.id FROM jobs j
        WHERE j.status = 'queued' AND j.run_at <= now() AND j.kind = ANY($3::text[])
          AND (j.serial_key IS NULL OR NOT EXISTS (
              SELECT 1 FROM jobs r WHERE r.serial_key = j.serial_key AND r.status = 'running'))
        ORDER BY j.run_at, j.id
        FOR UPDATE SKIP LOCKED
        LIMIT 1
    )
    RETURNING {JOB_COLUMNS}
)
SELECT claimed.*,
       CASE WHEN claimed.id IS NULL THEN (
           SELECT extract(epoch FROM min(q.run_at) - now()) FROM jobs q
           WHERE q.status = 'queued' AND q.run_at > now() AND q.kind = ANY($3::text[])
       ) ELSE (
           -- The claimed job still counts as queued here: more than one means others are due.
           SELECT count(*) FROM (SELECT FROM jobs q WHERE q.status = 'queued' AND q.run_at <= now()
                                                     AND q.kind = ANY($3::text[]) LIMIT 2) due
       ) END AS after
FROM (SELECT) one LEFT JOIN claimed ON TRUE
"""


@dataclass(frozen=True)
class Claim:
    job: Job | None
    more_due: bool = False  # other jobs are due besides this one
    next_due_in: float | None = None  # without a job: seconds until a queued one falls due, if any


async def claim_next_job(db: Database, worker_id: str, kinds: list[str], lease_seconds: int) -> Claim:
    """Take the oldest due job no other worker holds."""
    try:
        record = await fetchrow(db, CLAIM, worker_id, float(lease_seconds), kinds)
    except asyncpg.UniqueViolationError:
        # Another worker started a job with the same serial key at the same moment: look again soon.
        return Claim(None, next_due_in=0.05)
    after = record["after"]
    if record["id"] is None:
        return Claim(None, next_due_in=None if after is None else float(after))
    return Claim(_job(record), more_due=after > 1)


async def finish_job(db: Database, job_id: int, worker_id: str) -> None:
    await execute(
        db,
        "UPDATE jobs SET status = 'done', locked_by = NULL, locked_until = NULL, progress = 1, updated_at = now() "
        "WHERE id = $1 AND locked_by = $2",
        job_id,
        worker_id,
    )


# A job put back in the queue while a twin with the same dedup key is already queued would
# break the unique index; the twin does the same work, so this one is cancelled instead.
_REQUEUE_STATUS = """
    CASE WHEN jobs.dedup_key IS NOT NULL AND EXISTS (
        SELECT 1 FROM jobs twin WHERE twin.dedup_key = jobs.dedup_key AND twin.status = 'queued' AND twin.id <> jobs.id)
    THEN 'cancelled' ELSE 'queued' END
"""


async def retry_job(db: Database, job_id: int, worker_id: str, error: str, delay_seconds: float) -> None:
    await execute(
        db,
        f"""
        UPDATE jobs SET status = {_REQUEUE_STATUS}, locked_by = NULL, locked_until = NULL, last_error = $3,
               run_at = now() + make_interval(secs => $4), updated_at = now()
        WHERE id = $1 AND locked_by = $2
        """,
        job_id,
        worker_id,
        error[:2000],
        float(delay_seconds),
    )


async def fail_job(db: Database, job_id: int, worker_id: str, error: str) -> None:
    await execute(
        db,
        "UPDATE jobs SET status = 'failed', locked_by = NULL, locked_until = NULL, last_error = $3, updated_at = now() "
        "WHERE id = $1 AND locked_by = $2",
        job_id,
        worker_id,
        error[:2000],
    )


async def extend_lease(db: Database, job_id: int, worker_id: str, lease_seconds: int, progress: float | None = None) -> bool:
    """Keep a long job ours (and record its progress); False if we lost it."""
    extended = await fetchval(
        db,
        """
        UPDATE jobs SET locked_until = now() + make_interval(secs => $3),
               progress = coalesce($4, progress), updated_at = now()
        WHERE id = $1 AND locked_by = $2 AND status = 'running' RETURNING id
        """,
        job_id,
        worker_id,
        float(lease_seconds),
        progress,
    )
    return extended is not None


async def reclaim_expired_jobs(db: Database, lost_error: str) -> list[Job]:
    """Jobs whose worker died (lease over): back to the queue, or failed when out of attempts.
    `lost_error` becomes their `last_error` unless an attempt recorded one."""
    records = await fetch(
        db,
        f"""
        UPDATE jobs SET status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE {_REQUEUE_STATUS} END,
               last_error = coalesce(last_error, $1),
               locked_by = NULL, locked_until = NULL, updated_at = now()
        WHERE status = 'running' AND locked_until < now()
        RETURNING {JOB_COLUMNS}
        """,
        lost_error[:2000],
    )
    return [_job(record) for record in records]


async def read_job(db: Database, job_id: int, kind: str) -> Job | None:
    """One job of this kind, in any status."""
    record = await fetchrow(db, f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 AND kind = $2", job_id, kind)
    return _job(record) if record is not None else None


async def queued_job_id(db: Database, dedup_key: str) -> int | None:
    """The job waiting in the queue under this dedup key, if any."""
    return await fetchval(db, "SELECT id FROM jobs WHERE dedup_key = $1 AND status = 'queued'", dedup_key)


async def serial_key_queued(db: Database, serial_key: str) -> bool:
    """Whether a job with this serial key waits in the queue."""
    return bool(await fetchval(db, "SELECT EXISTS (SELECT 1 FROM jobs WHERE serial_key = $1 AND status = 'queued')", serial_key))


# Each count reads its own partial index (jobs_ready, jobs_leases, jobs_failed), never the
# finished jobs, which are most of the table: a scrape costs the same with a million of them.
QUEUE_DEPTH = """
SELECT (SELECT count(*) FROM jobs WHERE status = 'queued') AS queued,
       (SELECT count(*) FROM jobs WHERE status = 'running') AS running,
       (SELECT count(*) FROM jobs WHERE status = 'failed') AS failed,
       coalesce(extract(epoch FROM now() - (SELECT min(run_at) FROM jobs WHERE status = 'queued' AND run_at <= now())), 0)
           AS oldest_queued_age_seconds
"""


async def queue_depth(db: Database) -> dict:
    """`queued`, `running`, `failed` counts and `oldest_queued_age_seconds`."""
    return row(await fetchrow(db, QUEUE_DEPTH))


PRUNE_BATCH = 5000
# Literal statuses, so the planner can use the partial indexes jobs_finished and jobs_failed.
_PRUNE = """
WITH gone AS (
    DELETE FROM jobs WHERE id IN (
        SELECT id FROM jobs WHERE status IN ({statuses}) AND updated_at < now() - make_interval(secs => $1)
        LIMIT $2)
    RETURNING 1)
SELECT count(*) FROM gone
"""
PRUNE_FINISHED = _PRUNE.format(statuses="'done', 'cancelled'")
PRUNE_FAILED = _PRUNE.format(statuses="'failed'")


async def prune_finished_jobs(db: Database, done_days: float, failed_days: float, *, max_batches: int = 20) -> int:
    """Delete done and cancelled jobs older than `done_days`, failed ones older than `failed_days`
    (by their last update); at most `max_batches` batches of each a call, so no call runs long."""
    deleted = 0
    for sql, days in ((PRUNE_FINISHED, done_days), (PRUNE_FAILED, failed_days)):
        for _ in range(max_batches):
            count = await fetchval(db, sql, float(days) * 86400, PRUNE_BATCH)
            deleted += count
            if count < PRUNE_BATCH:
                break
    return deleted
