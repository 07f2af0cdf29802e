"""The backend rides out a database that is down at start or goes away while running."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from backend.app import create_app
from tests.conftest import login, make_settings
from tests.pg_control import OwnPostgres
from tests.servers import serve_app


async def wait_for_status(client: httpx.AsyncClient, path: str, status: int, within: float = 60) -> httpx.Response:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        response = await client.get(path)
        if response.status_code == status or asyncio.get_running_loop().time() > deadline:
            return response
        await asyncio.sleep(0.2)


@pytest.fixture
def own_postgres(tmp_path):
    return OwnPostgres(tmp_path / "own")


async def test_readyz_turns_503_when_the_database_stops_and_200_when_it_returns(own_postgres, tmp_path):
    app = create_app(make_settings(own_postgres.url, tmp_path / "data"), name="outage_running")
    async with serve_app(app) as running:
        token = await login(running)
        async with running.client(token) as client:
            assert (await client.get("/readyz")).status_code == 200
            await own_postgres.stop()
            down = await wait_for_status(client, "/readyz", 503)
            assert down.status_code == 503 and "database" in down.json()["reason"]
            api_down = await client.get("/api/assistants")
            assert api_down.status_code == 503 and api_down.json()["error"]["code"] == "unavailable"

            await own_postgres.start()
            assert (await wait_for_status(client, "/readyz", 200)).status_code == 200
            assert (await wait_for_status(client, "/api/assistants", 200)).status_code == 200


async def test_backend_started_while_the_database_is_down_becomes_ready_when_it_comes_back(own_postgres, tmp_path):
    await own_postgres.stop()
    app = create_app(make_settings(own_postgres.url, tmp_path / "data"), name="outage_at_start")
    async with serve_app(app, wait_ready=False) as running:
        async with running.client() as client:
            assert (await client.get("/healthz")).status_code == 200
            waiting = await client.get("/readyz")
            assert waiting.status_code == 503 and "database" in waiting.json()["reason"]
            refused = await client.post("/api/auth/login", json={"email": "a@b.c", "password": "x"})
            assert refused.status_code == 503 and refused.json()["error"]["code"] == "not_ready"

            await own_postgres.start()
            assert (await wait_for_status(client, "/readyz", 200)).status_code == 200
        assert await login(running)
