"""The real processes the console tests drive: `python -m backend` and `streamlit run console/app.py`.

Both run as subprocesses on loopback, so Streamlit's AppTest (which runs the console script
synchronously in the test process) and the browser test talk to them over real HTTP.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import ADMIN
from tests.fakes.ollama import FakeOllama
from tests.processes import Process, wait_for  # noqa: F401 - used by the console tests
from tests.servers import free_port, serve_aiohttp

SECRET_KEY = "console-tests-secret-key-long-enough-for-hs256"


def start_backend(
    database_url: str | None,
    workdir: Path,
    *,
    ollama_host: str = "http://127.0.0.1:9",
    extra_env: dict[str, str] | None = None,
) -> Process:
    """`python -m backend` on a free port with the sandbox gateway, ready (migrated, admin created), with `extra_env` on top.
    No `database_url`: the backend's own embedded PostgreSQL under `workdir`."""
    port = free_port()
    env = {
        **({"DATABASE_URL": database_url} if database_url else {}),
        "DATA_DIR": str(workdir / "data"),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "SECRET_KEY": SECRET_KEY,
        "ADMIN_EMAIL": ADMIN["email"],
        "ADMIN_PASSWORD": ADMIN["password"],
        "GATEWAY_PROVIDER": "sandbox",
        "CLOUD_API_URL": "http://127.0.0.1:9",  # nothing listens: a Cloud channel fails to connect, on loopback
        "OLLAMA_HOST": ollama_host,
        "LLM_PROVIDER": "ollama",
        "OLLAMA_TIMEOUT_SECONDS": "10",
        "JOB_POLL_SECONDS": "0.5",
        "LOG_FORMAT": "console",
        "LOG_LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    } | (extra_env or {})
    backend = Process([sys.executable, "-m", "backend"], env, workdir / "backend.log", port)
    backend.start()
    try:
        backend.wait_http("/readyz")
    except BaseException:
        backend.stop()
        raise
    return backend


@contextmanager
def backend_on_new_database(pg_url: str, workdir: Path, **options) -> Iterator[Process]:
    """`start_backend` (same options) on a database of its own, dropped with the backend afterwards."""
    from tests.conftest import create_database, drop_database

    url = asyncio.run(create_database(pg_url))
    try:
        backend = start_backend(url, workdir, **options)
        try:
            yield backend
        finally:
            backend.stop()
    finally:
        asyncio.run(drop_database(pg_url, url))


def start_console(backend_url: str, workdir: Path) -> Process:
    """`streamlit run console/app.py` headless on a free port, talking to `backend_url`."""
    port = free_port()
    args = [
        sys.executable, "-m", "streamlit", "run", "console/app.py",
        "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]  # fmt: skip
    console = Process(args, {"BACKEND_URL": backend_url, "PYTHONUNBUFFERED": "1"}, workdir / "console.log", port)
    console.start()
    try:
        console.wait_http("/_stcore/health", timeout=60)
    except BaseException:
        console.stop()
        raise
    return console


def admin_token(backend_url: str) -> str:
    response = httpx.post(f"{backend_url}/api/auth/login", json=ADMIN, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["token"]


@contextmanager
def fake_ollama_in_thread() -> Iterator[FakeOllama]:
    """The fake Ollama on loopback, served by its own event loop in a thread (the console tests are sync)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-ollama", daemon=True)
    thread.start()
    fake = FakeOllama()
    runner, fake.url = asyncio.run_coroutine_threadsafe(serve_aiohttp(fake.app()), loop).result(timeout=10)
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()
