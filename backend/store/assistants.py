"""SQL for assistants."""

from __future__ import annotations

from databases import Database

from backend.database import row, rows

COLUMNS = "id, name, instructions, engine, model, temperature, fallback_message, language, settings, created_at, updated_at"
EDITABLE = {"name", "instructions", "engine", "model", "temperature", "fallback_message", "language", "settings"}


async def insert_assistant(db: Database, values: dict) -> dict:
    return row(
        await db.fetch_one(
            f"""
            INSERT INTO assistants (name, instructions, engine, model, temperature, fallback_message, language, settings)
            VALUES (:name, :instructions, :engine, :model, :temperature, :fallback_message, :language, :settings)
            RETURNING {COLUMNS}
            """,
            values,
        )
    )


async def find_assistant(db: Database, assistant_id: int) -> dict | None:
    return row(await db.fetch_one(f"SELECT {COLUMNS} FROM assistants WHERE id = :id", {"id": assistant_id}))


async def list_assistants(db: Database, limit: int, offset: int) -> tuple[list[dict], int]:
    records = await db.fetch_all(
        f"SELECT {COLUMNS} FROM assistants ORDER BY id LIMIT :limit OFFSET :offset", {"limit": limit, "offset": offset}
    )
    total = await db.fetch_val("SELECT count(*) FROM assistants")
    return rows(records), total


async def update_assistant(db: Database, assistant_id: int, changes: dict) -> dict | None:
    assert set(changes) <= EDITABLE
    sets = ", ".join(f"{column} = :{column}" for column in changes)
    sets = f"{sets}, updated_at = now()" if sets else "updated_at = now()"
    return row(
        await db.fetch_one(f"UPDATE assistants SET {sets} WHERE id = :id RETURNING {COLUMNS}", {**changes, "id": assistant_id})
    )


async def delete_assistant(db: Database, assistant_id: int) -> bool:
    return await db.fetch_val("DELETE FROM assistants WHERE id = :id RETURNING id", {"id": assistant_id}) is not None
