"""SQL behind the dependency status: channels per provider and status."""

from __future__ import annotations

from databases import Database

from backend.database import fetch


async def channel_counts(db: Database) -> dict[str, dict[str, int]]:
    """Channels by provider and status: {"waha": {"ready": 2, "pending_qr": 1}, ...}."""
    counts: dict[str, dict[str, int]] = {}
    for r in await fetch(db, "SELECT provider, status, count(*) AS n FROM channels GROUP BY provider, status"):
        counts.setdefault(r["provider"], {})[r["status"]] = int(r["n"])
    return counts
