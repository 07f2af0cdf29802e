"""SQL behind the dependency status: which models are in use, channels per provider."""

from __future__ import annotations

from databases import Database

from backend.database import rows


async def assistant_models(db: Database) -> list[str]:
    """The distinct Ollama models the assistants are set to use."""
    return [r["model"] for r in rows(await db.fetch_all("SELECT DISTINCT model FROM assistants ORDER BY model"))]


async def channel_counts(db: Database) -> dict[str, dict[str, int]]:
    """Channels by provider and status: {"waha": {"ready": 2, "pending_qr": 1}, ...}."""
    counts: dict[str, dict[str, int]] = {}
    for r in rows(await db.fetch_all("SELECT provider, status, count(*) AS n FROM channels GROUP BY provider, status")):
        counts.setdefault(r["provider"], {})[r["status"]] = int(r["n"])
    return counts
