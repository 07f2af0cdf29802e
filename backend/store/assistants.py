"""SQL for assistants."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

from databases import Database

from backend.database import assignments, fetch, fetchrow, fetchval


@dataclass(frozen=True)
class AssistantRow:
    id: int
    name: str
    instructions: str
    engine: str
    model: str
    temperature: float
    fallback_message: str
    language: str  # full-text configuration (the older API's "language")
    settings: dict  # the reply policy as stored (read it with `backend.services.policies.parse_policy`)
    created_at: datetime
    updated_at: datetime
    languages: list[str]  # the codes it serves, main first; empty = automatic
    document_languages: list[str]  # its passages' full-text configurations, the most used first


# The text-search configurations of an assistant's passages (`a`), most passages first.
DOCUMENT_LANGUAGES = """
    (SELECT coalesce(array_agg(config ORDER BY passages DESC, config), '{}')
     FROM (SELECT language::text AS config, count(*) AS passages FROM chunks WHERE assistant_id = a.id GROUP BY 1) used)
"""
COLUMNS = ", ".join(
    f"a.{field.name}" if field.name != "document_languages" else f"{DOCUMENT_LANGUAGES} AS document_languages"
    for field in fields(AssistantRow)
)
EDITABLE = ("name", "instructions", "engine", "model", "temperature", "fallback_message", "language", "languages", "settings")


def _assistant(record) -> AssistantRow | None:  # asyncpg record
    return AssistantRow(**record) if record is not None else None


async def insert_assistant(
    db: Database,
    *,
    name: str,
    instructions: str,
    engine: str,
    model: str,
    temperature: float,
    fallback_message: str,
    language: str,
    languages: list[str],
    settings: dict,
) -> AssistantRow:
    return _assistant(
        await fetchrow(
            db,
            f"""
            INSERT INTO assistants AS a
                (name, instructions, engine, model, temperature, fallback_message, language, settings, languages)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            RETURNING {COLUMNS}
            """,
            name,
            instructions,
            engine,
            model,
            temperature,
            fallback_message,
            language,
            settings,
            languages,
        )
    )


async def find_assistant(db: Database, assistant_id: int) -> AssistantRow | None:
    return _assistant(await fetchrow(db, f"SELECT {COLUMNS} FROM assistants a WHERE id = $1", assistant_id))


async def list_assistants(db: Database, limit: int, offset: int) -> tuple[list[AssistantRow], int]:
    records = await fetch(db, f"SELECT {COLUMNS} FROM assistants a ORDER BY id LIMIT $1 OFFSET $2", limit, offset)
    total = await fetchval(db, "SELECT count(*) FROM assistants")
    return [_assistant(r) for r in records], total


async def update_assistant(db: Database, assistant_id: int, changes: dict[str, object]) -> AssistantRow | None:
    """Set the given columns (of `EDITABLE`); None when the assistant does not exist."""
    sets, values = assignments(EDITABLE, changes, 2)
    sql = f"UPDATE assistants a SET {sets}updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
    return _assistant(await fetchrow(db, sql, assistant_id, *values))


async def delete_assistant(db: Database, assistant_id: int) -> bool:
    return await fetchval(db, "DELETE FROM assistants WHERE id = $1 RETURNING id", assistant_id) is not None


async def assistant_models(db: Database) -> list[str]:
    """The distinct models the assistants are set to use."""
    return [r["model"] for r in await fetch(db, "SELECT DISTINCT model FROM assistants ORDER BY model")]
