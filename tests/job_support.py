"""Waiting for the job queue to settle: the event after which no more work will happen by itself."""

from __future__ import annotations

from databases import Database

from backend.database import fetchval
from tests.e2e_support import eventually


async def _quiet(db: Database, kind: str) -> bool:
    busy = await fetchval(db, "SELECT EXISTS (SELECT 1 FROM jobs WHERE kind = $1 AND status IN ('queued', 'running'))", kind)
    return not busy


async def jobs_settled(db: Database, kind: str = "reply", *, within: float = 30) -> None:
    """Until no job of `kind` is queued or running (none is retrying either: a retry is queued)."""
    await eventually(lambda: _quiet(db, kind), within=within, what=f"the {kind} jobs to settle")
