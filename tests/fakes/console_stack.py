"""The real processes the console tests drive: `python -m backend` and `streamlit run console/app.py`.

Both run as subprocesses on loopback, so Streamlit's AppTest (which runs the console script
synchronously in the test process) and the browser test talk to them over real HTTP.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from aiohttp import web

from tests.conftest import ADMIN
from tests.fakes.ollama import FakeOllama
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
SECRET_KEY = "console-tests-secret-key-long-enough-for-hs256"
T = TypeVar("T")


def wait_for(probe: Callable[[], T], *, timeout: float = 60, interval: float = 0.2, what: str = "condition") -> T:
    """Call `probe` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@dataclass
class Process:
    """A child process with its output in a log file (shown when something goes wrong)."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    port: int
    process: subprocess.Popen | None = None
    _log: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.args, cwd=ROOT, env={**os.environ, **self.env}, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_http(self, path: str, *, timeout: float = 120) -> None:
        def answers() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"{self.args[:3]} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                return httpx.get(self.url + path, timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        try:
            wait_for(answers, timeout=timeout, interval=0.3, what=f"{self.url}{path}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log_tail()}") from None

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None


def start_backend(database_url: str, workdir: Path, *, ollama_host: str = "http://127.0.0.1:9") -> Process:
    """`python -m backend` on a free port with the sandbox gateway, ready (migrated, admin created)."""
    port = free_port()
    env = {
        "DATABASE_URL": database_url,
        "DATA_DIR": str(workdir / "data"),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "SECRET_KEY": SECRET_KEY,
        "ADMIN_EMAIL": ADMIN["email"],
        "ADMIN_PASSWORD": ADMIN["password"],
        "GATEWAY_PROVIDER": "sandbox",
        "OLLAMA_HOST": ollama_host,
        "OLLAMA_TIMEOUT_SECONDS": "10",
        "JOB_POLL_SECONDS": "0.5",
        "LOG_FORMAT": "console",
        "LOG_LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    backend = Process([sys.executable, "-m", "backend"], env, workdir / "backend.log", port)
    backend.start()
    try:
        backend.wait_http("/readyz")
    except BaseException:
        backend.stop()
        raise
    return backend


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
    runner = web.AppRunner(fake.app())

    async def start() -> None:
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        fake.url = f"http://127.0.0.1:{port}"

    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()
