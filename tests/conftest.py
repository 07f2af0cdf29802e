"""Shared fixtures: one PostgreSQL per session, a fresh database per test, the backend on loopback."""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from sanic import Sanic

from backend.app import create_app
from backend.database import run_migrations
from backend.settings import Settings
from tests.servers import serve_app

Sanic.test_mode = True  # tests build many apps
TEMPLATE = "app_template"
ADMIN = {"email": "admin@example.com", "password": "test-admin-password"}
_names = itertools.count()


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """URL of the session's PostgreSQL server (maintenance database)."""
    if os.environ.get("TEST_DATABASE_URL"):
        return os.environ["TEST_DATABASE_URL"]
    from backend.embedded_db import embedded_database_url

    return embedded_database_url(tmp_path_factory.mktemp("pg"))


@pytest.fixture(scope="session")
def template_url(pg_url: str) -> str:
    """A database migrated to head, copied for every test (CREATE DATABASE ... TEMPLATE)."""

    async def build() -> None:
        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
            await conn.execute(f"CREATE DATABASE {TEMPLATE}")
        finally:
            await conn.close()
        await run_migrations(with_database(pg_url, TEMPLATE))

    asyncio.run(build())
    return with_database(pg_url, TEMPLATE)


async def create_database(pg_url: str, *, template: str | None = TEMPLATE) -> str:
    name = f"t_{os.getpid()}_{next(_names)}_{uuid.uuid4().hex[:6]}"
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
    finally:
        await conn.close()
    return with_database(pg_url, name)


async def drop_database(pg_url: str, url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {urlsplit(url).path.lstrip('/')} WITH (FORCE)")
    finally:
        await conn.close()


@pytest.fixture
async def database_url(pg_url: str, template_url: str):
    """A fresh database at head for this test alone."""
    url = await create_database(pg_url)
    yield url
    await drop_database(pg_url, url)


def make_settings(database_url: str, data_dir: Path, **overrides) -> Settings:
    values = {
        "database_url": database_url,
        "data_dir": data_dir,
        "secret_key": "test-secret-key-that-is-long-enough-for-hs256",
        "admin_email": ADMIN["email"],
        "admin_password": ADMIN["password"],
        "ollama_host": "http://127.0.0.1:9",  # nothing listens: tests that need a model start the fake
        "llm_provider": "ollama",  # the Ollama protocol's tests; the real models' tests choose theirs
        "gateway_provider": "sandbox",
        "job_poll_seconds": 0.5,
        "load_models_at_start": False,  # each test's backend loads only the models it uses (tests/test_startup_models.py)
        "log_format": "console",
        **overrides,
    }
    return Settings(_env_file=None, **values)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path / "data")


@pytest.fixture
async def backend(settings: Settings):
    """The real backend served on loopback, ready (database migrated, admin created)."""
    app = create_app(settings, name=f"backend_{uuid.uuid4().hex[:8]}")
    async with serve_app(app) as running:
        yield running


async def login(running, email: str = ADMIN["email"], password: str = ADMIN["password"]) -> str:
    async with running.client() as client:
        response = await client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["token"]


@pytest.fixture
async def api(backend):
    """An HTTP client logged in as the bootstrapped admin."""
    token = await login(backend)
    async with backend.client(token) as client:
        yield client
