"""Running real servers on loopback inside a test: our Sanic app, and aiohttp fakes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from aiohttp import web
from sanic import Sanic


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def serve_aiohttp(app: web.Application, *, port: int | None = None) -> tuple[web.AppRunner, str]:
    """Serve an aiohttp app (a fake of an external service) on 127.0.0.1 in this event loop:
    (its runner, whose `cleanup()` stops it; its base URL)."""
    port = port or free_port()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


@dataclass
class RunningBackend:
    app: Sanic
    url: str

    def client(self, token: str | None = None, timeout: float = 30) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout)


@asynccontextmanager
async def serve_app(app: Sanic, *, wait_ready: bool = True, port: int | None = None) -> AsyncIterator[RunningBackend]:
    """Serve `app` on 127.0.0.1 in this event loop, with its listeners, until the block ends."""
    port = port or free_port()
    server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True, access_log=False)
    await server.startup()
    await server.before_start()
    await server.after_start()
    await server.start_serving()
    try:
        if wait_ready:
            await asyncio.wait_for(app.ctx.ready_event.wait(), timeout=60)
        yield RunningBackend(app=app, url=f"http://127.0.0.1:{port}")
    finally:
        await server.before_stop()
        await server.close()
        await server.after_stop()
