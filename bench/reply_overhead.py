"""What does the reply pipeline add between a customer's webhook and the gateway's send?

Starts an embedded PostgreSQL in a temp dir, a fake WAHA and an instant fake Ollama on loopback
(in this process, so both ends of every measurement use one clock), and the real backend
(`python -m backend`, workers in-process) with one knowledge document. Customers write at a
steady rate (open loop: a slow server does not slow the senders); each message's latency is the
time from posting its webhook to the fake WAHA receiving the reply's sendText. Side by side, in
the same run: a bare Sanic handler that forwards each webhook straight to sendText (two HTTP
hops and nothing else) — the floor.

    .venv/bin/python -m bench.reply_overhead --rate 50 --messages 500
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import uvloop
from aiohttp import web

from bench.common import percentile, quiet_logs, table
from bench.ingest import (
    backend_env,
    seed_waha_channel,
    start_database,
    start_process,
    stop_process,
    waha_webhook,
    wait_ready,
)
from tests.fakes.ollama import FakeOllama
from tests.servers import free_port, serve_aiohttp

ADMIN = ("bench@example.com", "bench-admin-password")
DOCUMENT = b"Shipping. We ship to every country in Europe within five days; Norway takes seven."


class FakeWahaSends:
    """Just enough of WAHA for replies: sendText (timed), sendSeen, typing, chat messages."""

    def __init__(self) -> None:
        self.received: dict[str, float] = {}  # chat id -> when its first reply arrived
        self.sends = 0
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    async def send_text(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.setdefault(body["chatId"], time.perf_counter())
        self.sends += 1
        message_id = f"true_{body['chatId']}_{uuid.uuid4().hex.upper()[:20]}"
        return web.json_response({"id": message_id, "fromMe": True, "to": body["chatId"], "body": body["text"]}, status=201)

    async def accept(self, request: web.Request) -> web.Response:
        return web.json_response({}, status=201)

    async def no_messages(self, request: web.Request) -> web.Response:
        return web.json_response([])

    async def start(self) -> web.AppRunner:
        app = web.Application()
        app.add_routes(
            [
                web.post("/api/sendText", self.send_text),
                web.post("/api/sendSeen", self.accept),
                web.post("/api/startTyping", self.accept),
                web.post("/api/stopTyping", self.accept),
                web.get("/api/{session}/chats/{chat}/messages", self.no_messages),
            ]
        )
        runner, _ = await serve_aiohttp(app, port=self.port)
        return runner


async def start_fake_ollama() -> tuple[FakeOllama, web.AppRunner]:
    fake = FakeOllama()
    fake.set_models(["llama3.2", "all-minilm"])
    same = fake.vector("any text")
    fake.vector = lambda text: same  # every passage relevant: the (instant) model is always asked
    runner, fake.url = await serve_aiohttp(fake.app())
    return fake, runner


async def add_document(base_url: str, assistant_id: int) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        async with http.post("/api/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]}) as response:
            token = (await response.json())["token"]
        headers = {"Authorization": f"Bearer {token}"}
        form = aiohttp.FormData()
        form.add_field("files", DOCUMENT, filename="shipping.txt", content_type="text/plain")
        async with http.post(f"/api/assistants/{assistant_id}/documents", data=form, headers=headers) as response:
            assert response.status == 201, await response.text()
        for _ in range(600):
            async with http.get(f"/api/assistants/{assistant_id}/documents", headers=headers) as response:
                if (await response.json())["items"][0]["status"] == "ready":
                    return
            await asyncio.sleep(0.1)
    sys.exit("the document was not indexed within a minute")


async def open_loop(
    url: str, gateway: FakeWahaSends, count: int, rate: float, prefix: str, first_customer: int
) -> tuple[list[float], int]:
    """`count` customers each write once, `rate` a second; latency to their reply's sendText (ms)."""
    posted: dict[str, float] = {}
    failures = 0

    async with aiohttp.ClientSession() as http:

        async def customer(i: int) -> None:
            nonlocal failures
            digits = f"1666{first_customer + i:07d}"
            body, headers = waha_webhook(digits, f"Do you ship to Norway? ({prefix} {i})", f"false_{prefix}_{i}")
            posted[f"{digits}@c.us"] = time.perf_counter()
            async with http.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    failures += 1

        started = time.perf_counter()
        tasks = []
        for i in range(count):
            await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(customer(i)))
        await asyncio.gather(*tasks)
        deadline = time.perf_counter() + 60
        while time.perf_counter() < deadline and not all(chat in gateway.received for chat in posted):
            await asyncio.sleep(0.05)
    latencies = [(gateway.received[chat] - sent) * 1000 for chat, sent in posted.items() if chat in gateway.received]
    return latencies, failures + (len(posted) - len(latencies))


def bare_forwarder(gateway_url: str):  # sanic.Sanic
    """The floor: a webhook handler that sends the reply at once, with no storage and no model."""
    from sanic import Sanic
    from sanic.response import json as json_response

    app = Sanic("bare_forwarder")

    @app.before_server_start
    async def connect(app, _):
        app.ctx.http = aiohttp.ClientSession()

    @app.after_server_stop
    async def close(app, _):
        await app.ctx.http.close()

    @app.get("/readyz")
    async def ready(request):
        return json_response({"status": "ready"})

    @app.post("/webhooks/waha/<channel_id:int>")
    async def receive(request, channel_id: int):
        payload = request.json["payload"]
        body = {"session": request.json["session"], "chatId": payload["from"], "text": "Thanks!"}
        async with request.app.ctx.http.post(f"{gateway_url}/api/sendText", json=body) as response:
            await response.read()
        return json_response({"received": 1})

    return app


async def measure(args: argparse.Namespace, data_dir: Path) -> None:
    url = await start_database(data_dir)
    channel_id = await seed_waha_channel(url)
    assistant_id = await _assistant_of(url, channel_id)
    gateway = FakeWahaSends()
    gateway_runner = await gateway.start()
    ollama, ollama_runner = await start_fake_ollama()
    backend_port, bare_port = free_port(), free_port()
    env = backend_env(
        url,
        backend_port,
        data_dir,
        WAHA_URL=gateway.url,
        OLLAMA_HOST=ollama.url,
        EMBEDDING_PROVIDER="ollama",
        EMBEDDING_MODEL="all-minilm",
        WORKER_CONCURRENCY=str(args.workers),
        ADMIN_EMAIL=ADMIN[0],
        ADMIN_PASSWORD=ADMIN[1],
    )
    backend = start_process(["-m", "backend"], env, data_dir)
    load_before = os.getloadavg()[0]
    bare_args = ["-m", "bench.reply_overhead", "--serve-baseline", str(bare_port), "--gateway", gateway.url]
    bare = start_process(bare_args, env, data_dir)
    try:
        await wait_ready(f"http://127.0.0.1:{backend_port}", backend)
        await wait_ready(f"http://127.0.0.1:{bare_port}", bare)
        await add_document(f"http://127.0.0.1:{backend_port}", assistant_id)
        results = {}
        customers = 0  # every customer writes once: chat ids never repeat across runs
        for name, port in (("bare forwarder (floor)", bare_port), ("backend pipeline", backend_port)):
            target = f"http://127.0.0.1:{port}/webhooks/waha/{channel_id}"
            warm = min(50, args.messages)
            await open_loop(target, gateway, warm, args.rate, f"warm{port}", customers)
            results[name] = await open_loop(target, gateway, args.messages, args.rate, f"run{port}", customers + warm)
            customers += warm + args.messages
        conn = await asyncpg.connect(url)
        try:
            answer_ms = [
                json.loads(trace)["answer_ms"]
                for trace in await conn.fetchval(
                    "SELECT array_agg(trace::text) FROM messages WHERE author = 'bot' AND trace ? 'answer_ms'"
                )
            ]
            sent = await conn.fetchval("SELECT count(*) FROM messages WHERE author = 'bot' AND status = 'sent'")
        finally:
            await conn.close()
    finally:
        stop_process(backend)
        stop_process(bare)
        await gateway_runner.cleanup()
        await ollama_runner.cleanup()

    load_after = os.getloadavg()[0]
    print(
        f"\n{args.messages} customers writing at {args.rate:g}/s (open loop), fake WAHA + instant fake Ollama, "
        f"{args.workers} workers; burst window 0 s and typing pause 0 s (the reply is not held back on purpose: "
        f"every millisecond is overhead); load average {load_before:.1f} -> {load_after:.1f} on {os.cpu_count()} CPUs\n"
    )
    rows = [
        (name, len(lat), round(percentile(lat, 50), 1), round(percentile(lat, 99), 1), round(max(lat), 1), missing)
        for name, (lat, missing) in results.items()
    ]
    print(table(["path", "replies", "p50 ms", "p99 ms", "max ms", "missing"], rows))
    ours, floor = results["backend pipeline"][0], results["bare forwarder (floor)"][0]
    print(
        f"\npipeline overhead over the floor: p50 +{percentile(ours, 50) - percentile(floor, 50):.1f} ms, "
        f"p99 +{percentile(ours, 99) - percentile(floor, 99):.1f} ms; ratio p99 backend / floor = "
        f"{percentile(ours, 99) / percentile(floor, 99):.1f}"
    )
    print(
        f"model path inside the job (retrieval + fake chat): median {percentile(answer_ms, 50):.1f} ms; "
        f"p99 webhook -> send {percentile(ours, 99):.1f} ms (goal < 60 ms); bot replies sent: {sent}"
    )


async def _assistant_of(url: str, channel_id: int) -> int:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT assistant_id FROM channels WHERE id = $1", channel_id)
    finally:
        await conn.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=500, help="customers, one message each, per path")
    p.add_argument("--rate", type=float, default=50.0, help="messages per second")
    p.add_argument("--workers", type=int, default=4, help="WORKER_CONCURRENCY of the backend")
    p.add_argument("--serve-baseline", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--gateway", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve_baseline:
        bare_forwarder(args.gateway).run(
            host="127.0.0.1", port=args.serve_baseline, single_process=True, access_log=False, motd=False
        )
        return
    quiet_logs()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-reply-"))
    atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    # uvloop, as the servers under test use: the load generator and the fakes stay out of the way.
    uvloop.run(measure(args, data_dir))


if __name__ == "__main__":
    main()
