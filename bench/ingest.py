"""How fast does the backend acknowledge WhatsApp webhooks, next to a bare Sanic insert?

Starts an embedded PostgreSQL in a temp dir, the real backend (`python -m backend`, workers off
so only ingest is measured) and, in the same run, a bare Sanic app whose handler parses the body
and does one INSERT into the same database. Concurrent senders post real-format WAHA `message`
webhooks (HMAC-signed, some delivered twice) to each in turn; then every message is counted.

    .venv/bin/python -m bench.ingest --messages 3000 --rounds 3 --concurrency 32 --contacts 300

The ratio is over all rounds (messages / seconds of each server); the per-round ratios show how
much the machine's load moved it.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import copy
import hashlib
import hmac
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import uvloop

from bench.common import ROOT, percentile, quiet_logs, table
from tests.servers import free_port

WAHA_MESSAGE = ROOT / "tests" / "fixtures" / "gateways" / "waha" / "message.text.fromMe.json"
DATABASE = "bench_pipeline"
SECRET = "bench-webhook-hmac-key"
ME = "15550100001@c.us"


# -- what both benchmarks share: database, backend process, WAHA webhooks ---------------------------


async def start_database(data_dir: Path) -> str:
    """A migrated, empty database on an embedded PostgreSQL under `data_dir`."""
    from backend.database import run_migrations
    from backend.embedded_db import embedded_database_url

    server_url = await asyncio.to_thread(embedded_database_url, data_dir)
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {DATABASE}")
    finally:
        await conn.close()
    url = urlunsplit(urlsplit(server_url)._replace(path=f"/{DATABASE}"))
    await run_migrations(url)
    return url


async def seed_waha_channel(url: str, policies: dict | None = None) -> int:
    """An assistant and a paired WAHA channel, as the connection flow leaves them."""
    conn = await asyncpg.connect(url)
    try:
        await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
        assistant_id = await conn.fetchval(
            "INSERT INTO assistants (name, model, settings) VALUES ('Bench', 'llama3.2', $1) RETURNING id",
            {
                "burst_window_seconds": 0,
                "typing_seconds_per_char": 0,
                "max_replies_per_contact_per_minute": 1000,
                "max_replies_per_channel_per_minute": 1_000_000,
                **(policies or {}),
            },
        )
        return await conn.fetchval(
            """
            INSERT INTO channels (assistant_id, provider, session_name, status, detail, phone_number, webhook_secret,
                                  connected_at)
            VALUES ($1, 'waha', 'bench', 'ready', 'working', '+15550100001', $2, now() - interval '1 minute')
            RETURNING id
            """,
            assistant_id,
            SECRET,
        )
    finally:
        await conn.close()


def backend_env(url: str, port: int, data_dir: Path, **extra: str) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "VIRTUAL_ENV")
    env = {key: value for key, value in os.environ.items() if key in keep}
    env.update(
        PYTHONPATH=str(ROOT),
        HF_HUB_OFFLINE="1",
        DATABASE_URL=url,
        DATA_DIR=str(data_dir / "backend"),
        HOST="127.0.0.1",
        PORT=str(port),
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        SECRET_KEY="bench-secret-key-long-enough-for-hs256-signing",
        LOG_LEVEL="WARNING",
        CHANNEL_RECONCILE_SECONDS="0",
        **extra,
    )
    return env


def start_process(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def wait_ready(base_url: str, process: subprocess.Popen, path: str = "/readyz", within: float = 120) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                sys.exit(f"{base_url} exited during start-up:\n{process.stderr.read().decode()[-2000:]}")
            try:
                async with http.get(base_url + path) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    sys.exit(f"{base_url} was not ready within {within}s")


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def waha_webhook(sender_digits: str, text: str, message_id: str) -> tuple[bytes, dict[str, str]]:
    """A WAHA `message` webhook shaped like the real one (tests/fixtures), signed like WAHA Plus."""
    payload = copy.deepcopy(json.loads(WAHA_MESSAGE.read_text())["payload"])
    chat = f"{sender_digits}@c.us"
    payload.update(id=message_id, timestamp=int(time.time()), fromMe=False, body=text, to=ME, **{"from": chat})
    payload["_data"].update(notifyName="Bench customer", body=text)
    envelope = {
        "id": f"evt_{uuid.uuid4().hex}",
        "timestamp": int(time.time() * 1000),
        "event": "message",
        "session": "bench",
        "metadata": {},
        "me": {"id": ME, "pushName": "Bench"},
        "payload": payload,
        "engine": "WEBJS",
        "environment": {"version": "2024.10.1", "engine": "WEBJS", "tier": "PLUS"},
    }
    body = json.dumps(envelope).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Webhook-Request-Id": uuid.uuid4().hex,
        "X-Webhook-Hmac": hmac.new(SECRET.encode(), body, hashlib.sha512).hexdigest(),
        "X-Webhook-Hmac-Algorithm": "sha512",
    }
    return body, headers


# -- the load ---------------------------------------------------------------------------------------


async def post_all(url: str, requests: list[tuple[bytes, dict[str, str]]], concurrency: int) -> tuple[list[float], float, int]:
    """POST every request with `concurrency` senders: (latencies in ms, seconds, non-2xx count)."""
    queue = list(reversed(requests))
    latencies: list[float] = []
    errors = 0

    async def sender(http: aiohttp.ClientSession) -> None:
        nonlocal errors
        while queue:
            body, headers = queue.pop()
            started = time.perf_counter()
            async with http.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status >= 300:
                    errors += 1
            latencies.append((time.perf_counter() - started) * 1000)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        started = time.perf_counter()
        await asyncio.gather(*(sender(http) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return latencies, elapsed, errors


def build_load(count: int, contacts: int, duplicates: float, seed: int, prefix: str) -> tuple[list, int]:
    """`count` distinct messages from `contacts` senders, a share of them delivered twice."""
    rng = random.Random(seed)
    unique = [
        waha_webhook(f"1555{rng.randrange(contacts):07d}", f"Question {i}: do you ship to Norway?", f"false_{prefix}_{i}")
        for i in range(count)
    ]
    load = unique + [unique[i] for i in rng.sample(range(count), int(count * duplicates))]
    rng.shuffle(load)
    return load, len(unique)


# -- the bare baseline --------------------------------------------------------------------------------


def baseline_app(database_url: str):  # sanic.Sanic
    """A bare Sanic handler: parse the JSON body, one INSERT."""
    from sanic import Sanic
    from sanic.response import json as json_response

    app = Sanic("bare_ingest")

    @app.before_server_start
    async def connect(app, _):
        app.ctx.pool = await asyncpg.create_pool(database_url, min_size=1, max_size=10)

    @app.after_server_stop
    async def close(app, _):
        await app.ctx.pool.close()

    @app.get("/readyz")
    async def ready(request):
        return json_response({"status": "ready"})

    @app.post("/webhooks/waha/<channel_id:int>")
    async def receive(request, channel_id: int):
        payload = request.json["payload"]
        await request.app.ctx.pool.execute(
            "INSERT INTO bench_baseline (channel_id, provider_message_id, text) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            channel_id,
            payload["id"],
            payload["body"],
        )
        return json_response({"received": 1})

    return app


async def create_baseline_table(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_baseline (channel_id bigint, provider_message_id text, text text, "
            "PRIMARY KEY (channel_id, provider_message_id))"
        )
    finally:
        await conn.close()


def serve_baseline(database_url: str, port: int) -> None:
    baseline_app(database_url).run(host="127.0.0.1", port=port, single_process=True, access_log=False, motd=False)


# -- main -----------------------------------------------------------------------------------------


async def measure(args: argparse.Namespace, data_dir: Path) -> None:
    url = await start_database(data_dir)
    channel_id = await seed_waha_channel(url)
    await create_baseline_table(url)
    backend_port, bare_port = free_port(), free_port()
    env = backend_env(url, backend_port, data_dir, RUN_WORKERS="false")
    backend = start_process(["-m", "backend"], env, data_dir)
    bare = start_process(["-m", "bench.ingest", "--serve-baseline", str(bare_port), "--database-url", url], env, data_dir)
    servers = {"bare Sanic + 1 INSERT": bare_port, "backend ingest": backend_port}
    load_before = os.getloadavg()[0]
    try:
        await wait_ready(f"http://127.0.0.1:{backend_port}", backend)
        await wait_ready(f"http://127.0.0.1:{bare_port}", bare)
        for port in servers.values():
            target = f"http://127.0.0.1:{port}/webhooks/waha/{channel_id}"
            warm, _ = build_load(min(200, args.messages), args.contacts, 0, args.seed + 1, f"warm{port}")
            await post_all(target, warm, args.concurrency)
        # Rounds alternate which server goes first: on a shared machine the load of other
        # processes changes by the second, and each server should get its share of good and bad.
        totals = {name: {"count": 0, "seconds": 0.0, "latencies": [], "errors": 0} for name in servers}
        round_ratios, unique = [], 0
        for number in range(args.rounds):
            order = list(servers.items()) if number % 2 == 0 else list(servers.items())[::-1]
            rates = {}
            for name, port in order:
                target = f"http://127.0.0.1:{port}/webhooks/waha/{channel_id}"
                load, distinct = build_load(
                    args.messages, args.contacts, args.duplicates, args.seed + number, f"run{number}_{port}_"
                )
                latencies, elapsed, errors = await post_all(target, load, args.concurrency)
                total = totals[name]
                total["count"] += len(load)
                total["seconds"] += elapsed
                total["latencies"] += latencies
                total["errors"] += errors
                rates[name] = len(load) / elapsed
                if name == "backend ingest":
                    unique += distinct
            round_ratios.append(rates["backend ingest"] / rates["bare Sanic + 1 INSERT"])
        conn = await asyncpg.connect(url)
        try:
            stored = await conn.fetchrow(
                "SELECT count(*) AS rows, count(DISTINCT provider_message_id) AS distinct_ids FROM messages "
                f"WHERE provider_message_id LIKE 'false_run%\\_{backend_port}\\_%'"
            )
            jobs = await conn.fetchval("SELECT count(*) FROM jobs WHERE kind = 'reply'")
            contacts = await conn.fetchval("SELECT count(*) FROM contacts")
        finally:
            await conn.close()
    finally:
        stop_process(backend)
        stop_process(bare)
    load_after = os.getloadavg()[0]

    print(f"\n{args.messages:,} distinct messages per server and round (+{args.duplicates:.0%} delivered twice), "
          f"{args.rounds} rounds (alternating which server goes first), {args.contacts} contacts, "
          f"{args.concurrency} concurrent senders, WAHA webhooks with HMAC; "
          f"load average {load_before:.1f} -> {load_after:.1f} on {os.cpu_count()} CPUs\n")  # fmt: skip
    rows = [
        (
            name,
            round(t["count"] / t["seconds"], 1),
            round(percentile(t["latencies"], 50), 2),
            round(percentile(t["latencies"], 99), 2),
            t["errors"],
        )
        for name, t in totals.items()
    ]
    print(table(["server", "webhooks/s", "p50 ms", "p99 ms", "errors"], rows))
    ours = totals["backend ingest"]["count"] / totals["backend ingest"]["seconds"]
    bare_rps = totals["bare Sanic + 1 INSERT"]["count"] / totals["bare Sanic + 1 INSERT"]["seconds"]
    print(
        f"\nratio backend / bare = {ours / bare_rps:.2f} (goal >= 0.70); per round: "
        + ", ".join(f"{ratio:.2f}" for ratio in round_ratios)
    )
    exact = stored["rows"] == unique and stored["distinct_ids"] == unique
    print(
        f"stored exactly once: {stored['rows']:,} rows, {stored['distinct_ids']:,} distinct ids for {unique:,} "
        f"messages -> {'OK' if exact else 'MISMATCH'}; {contacts} contacts; {jobs:,} reply jobs queued "
        "(one per contact burst: a job already queued takes later messages too)"
    )
    if not exact:
        sys.exit(1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=3000, help="distinct messages per server and round")
    p.add_argument("--rounds", type=int, default=3, help="rounds, alternating which server goes first")
    p.add_argument("--concurrency", type=int, default=32, help="concurrent senders")
    p.add_argument("--contacts", type=int, default=300, help="distinct customers writing")
    p.add_argument("--duplicates", type=float, default=0.1, help="share of messages delivered a second time")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--serve-baseline", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--database-url", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve_baseline:
        serve_baseline(args.database_url, args.serve_baseline)
        return
    quiet_logs()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    # Registered before the embedded server's own exit hook, so it runs after the server stopped.
    atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    # uvloop, as the servers under test use: the load generator and the fakes stay out of the way.
    uvloop.run(measure(args, data_dir))


if __name__ == "__main__":
    main()
