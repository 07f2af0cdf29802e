"""SQL for the job queue: enqueue, claim (SKIP LOCKED), finish, retry, reclaim."""

from __future__ import annotations

from typing import Any, NamedTuple

import asyncpg
from databases import Database

from backend.database import execute, fetchrow, row, rows

CHANNEL = "jobs"
COLUMNS = (
    "id, kind, payload, status, dedup_key, serial_key, attempts, max_attempts, run_at, locked_by, "
    "locked_until, last_error, progress, created_at, updated_at"
)


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
    job_id = await db.fetch_val(
        """
        INSERT INTO jobs (kind, payload, dedup_key, serial_key, run_at, max_attempts)
        VALUES (:kind, :payload, :dedup_key, :serial_key, now() + make_interval(secs => :delay), :max_attempts)
        ON CONFLICT (dedup_key) WHERE status = 'queued' DO NOTHING
        RETURNING id
        """,
        {
            "kind": kind,
            "payload": payload,
            "dedup_key": dedup_key,
            "serial_key": serial_key,
            "delay": float(delay_seconds),
            "max_attempts": max_attempts,
        },
    )
    await db.execute(f"SELECT pg_notify('{CHANNEL}', :kind)", {"kind": kind})
    return job_id


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
    RETURNING {COLUMNS}
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


class Claim(NamedTuple):
    job: dict | None
    more_due: bool = False  # other jobs are due besides this one
    next_due_in: float | None = None  # without a job: seconds until a queued one falls due, if any


async def claim_next_job(db: Database, worker_id: str, kinds: list[str], lease_seconds: int) -> Claim:
    """Take the oldest due job no other worker holds."""
    try:
        record = await fetchrow(db, CLAIM, worker_id, float(lease_seconds), kinds)
    except asyncpg.UniqueViolationError:
        # Another worker started a job with the same serial key at the same moment: look again soon.
        return Claim(None, next_due_in=0.05)
    values = dict(record)
    after = values.pop("after")
    if values["id"] is None:
        return Claim(None, next_due_in=None if after is None else float(after))
    return Claim(values, more_due=after > 1)


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
    await db.execute(
        f"""
        UPDATE jobs SET status = {_REQUEUE_STATUS}, locked_by = NULL, locked_until = NULL, last_error = :error,
               run_at = now() + make_interval(secs => :delay), updated_at = now()
        WHERE id = :id AND locked_by = :worker
        """,
        {"id": job_id, "worker": worker_id, "error": error[:2000], "delay": float(delay_seconds)},
    )


async def fail_job(db: Database, job_id: int, worker_id: str | None, error: str) -> None:
    await db.execute(
        """
        UPDATE jobs SET status = 'failed', locked_by = NULL, locked_until = NULL, last_error = :error, updated_at = now()
        WHERE id = :id AND (locked_by = :worker OR :worker IS NULL)
        """,
        {"id": job_id, "worker": worker_id, "error": error[:2000]},
    )


async def extend_lease(db: Database, job_id: int, worker_id: str, lease_seconds: int, progress: float | None = None) -> bool:
    """Keep a long job ours (and record its progress); False if we lost it."""
    return (
        await db.fetch_val(
            """
            UPDATE jobs SET locked_until = now() + make_interval(secs => :lease),
                   progress = coalesce(:progress, progress), updated_at = now()
            WHERE id = :id AND locked_by = :worker AND status = 'running' RETURNING id
            """,
            {"id": job_id, "worker": worker_id, "lease": lease_seconds, "progress": progress},
        )
        is not None
    )


async def reclaim_expired_jobs(db: Database) -> list[dict]:
    """Jobs whose worker died (lease over): back to the queue, or failed when out of attempts."""
    return rows(
        await db.fetch_all(
            f"""
            UPDATE jobs SET status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE {_REQUEUE_STATUS} END,
                   last_error = coalesce(last_error, 'worker lost (lease expired)'),
                   locked_by = NULL, locked_until = NULL, updated_at = now()
            WHERE status = 'running' AND locked_until < now()
            RETURNING {COLUMNS}
            """
        )
    )


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
    return row(await db.fetch_one(QUEUE_DEPTH))


PRUNE_BATCH = 5000
# Literal statuses, so the planner can use the partial indexes jobs_finished and jobs_failed.
_PRUNE = """
WITH gone AS (
    DELETE FROM jobs WHERE id IN (
        SELECT id FROM jobs WHERE status IN ({statuses}) AND updated_at < now() - make_interval(secs => :seconds)
        LIMIT :batch)
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
            count = await db.fetch_val(sql, {"seconds": float(days) * 86400, "batch": PRUNE_BATCH})
            deleted += count
            if count < PRUNE_BATCH:
                break
    return deleted
