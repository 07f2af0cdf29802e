"""What the gateway channel tests share: an assistant, a channel connected through the API, rows read directly."""

from __future__ import annotations

import asyncpg


async def new_assistant(api, name: str = "Shop") -> int:
    response = await api.post("/api/assistants", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def connect_channel(api, assistant_id: int) -> dict:
    response = await api.post("/api/channels", json={"assistant_id": assistant_id})
    assert response.status_code == 201, response.text
    return response.json()


async def db_rows(backend, sql: str, *args) -> list[dict]:
    conn = await asyncpg.connect(backend.app.ctx.settings.database_url)
    try:
        return [dict(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()
