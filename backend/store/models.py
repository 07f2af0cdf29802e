"""SQL for Ollama model pulls, which run as `pull_model` jobs."""

from __future__ import annotations

from databases import Database

from backend.database import row


async def find_pull_job(db: Database, job_id: int) -> dict | None:
    return row(
        await db.fetch_one(
            """
            SELECT id, payload, status, attempts, max_attempts, last_error, progress, created_at, updated_at
            FROM jobs WHERE id = :id AND kind = 'pull_model'
            """,
            {"id": job_id},
        )
    )
