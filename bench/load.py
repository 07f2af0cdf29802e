"""Load: many customers writing at once to two backend processes sharing one PostgreSQL.

Starts an embedded PostgreSQL in a temp folder, the fake WAHA and an instant fake Ollama on
loopback, and N `python -m backend` processes on that one database. Customers' messages are
delivered as signed WAHA webhooks, alternating between the backends (as a load balancer would);
each customer sends its messages one after another. The fake Ollama echoes the question's
markers, so each sendText tells which messages it answers. Prints: lost, duplicated and
out-of-order replies (all must be 0), throughput, and latency from webhook to sendText received.

    python -m bench.load [--messages 1000] [--contacts 200] [--backends 2] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import copy
import hashlib
import hmac
import json
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import aiohttp
import httpx
from aiohttp import web

from backend.embedded_db import embedded_database_url
from tests.e2e_support import BackendProcess, eventually
from tests.fakes.ollama import FakeOllama, _fixture
from tests.fakes.waha import FakeWaha
from tests.servers import free_port, serve_aiohttp

ADMIN = {"email": "admin@example.com", "password": "bench-admin-password"}
WAHA_KEY = "bench-waha-key"
MARKER = re.compile(r"Q(\d{4})-(\d{3})")
POLICY = {
    "burst_window_seconds": 0,
    "typing_seconds_per_char": 0,
    "history_turns": 0,
    "max_replies_per_contact_per_minute": 100000,
    "max_replies_per_channel_per_minute": 100000,
}


class EchoOllama(FakeOllama):
    """Answers at once with the markers of the question, and embeds every text the same (always relevant)."""

    def vector(self, text: str) -> list[float]:
        return [1.0] + [0.0] * (self.embed_dimensions - 1)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        question = (body.get("messages") or [{}])[-1].get("content", "")
        reply = _fixture("chat_response_nonstream.json")
        reply.update(model=body.get("model"), done_reason="stop", prompt_eval_count=50)
        reply["message"]["content"] = "Answering " + " ".join(m.group(0) for m in MARKER.finditer(question))
        return web.json_response(reply)


class TimedWaha(FakeWaha):
    """The fake WAHA, noting when each sendText arrived."""

    def __init__(self, api_key: str) -> None:
        super().__init__(api_key)
        self.received: list[tuple[float, str, str]] = []  # (monotonic time, chatId, text)
        self.answered: collections.defaultdict[str, asyncio.Event] = collections.defaultdict(asyncio.Event)

    async def send_text(self, request: web.Request) -> web.Response:
        response = await super().send_text(request)
        if response.status == 201:
            body = self.sent[-1]
            self.received.append((time.monotonic(), body["chatId"], body["text"]))
            for marker in MARKER.finditer(body["text"]):
                self.answered[marker.group(0)].set()
        return response


@dataclass
class Run:
    posted_at: dict[tuple[int, int], float] = field(default_factory=dict)
    ack_ms: list[float] = field(default_factory=list)
    refused: collections.Counter = field(default_factory=collections.Counter)


async def start_ollama() -> tuple[EchoOllama, web.AppRunner]:
    fake = EchoOllama()
    fake.set_models(["llama3.2", "all-minilm"])
    runner, fake.url = await serve_aiohttp(fake.app())
    return fake, runner


def backend_env(database_url: str, port: int, waha: FakeWaha, ollama: FakeOllama, args: argparse.Namespace) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "DATA_DIR": str(Path(args.folder) / f"data-{port}"),
        "SECRET_KEY": "bench-secret-key-shared-by-every-backend-0123456789",
        "ADMIN_EMAIL": ADMIN["email"],
        "ADMIN_PASSWORD": ADMIN["password"],
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "GATEWAY_PROVIDER": "waha",
        "WAHA_URL": waha.url,
        "WAHA_API_KEY": WAHA_KEY,
        "OLLAMA_HOST": ollama.url,
        "EMBEDDING_PROVIDER": "ollama",
        "EMBEDDING_MODEL": "all-minilm",
        "RAG_MIN_SCORE": "0",
        "WORKER_CONCURRENCY": str(args.workers),
        "CHANNEL_RECONCILE_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
    }


async def prepare(url: str, waha: TimedWaha) -> tuple[int, str]:
    """Log in, create the assistant with one document, connect WhatsApp; the channel id and its HMAC key."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        token = (await client.post("/api/auth/login", json=ADMIN)).json()["token"]
        client.headers["Authorization"] = f"Bearer {token}"
        assistant = (await client.post("/api/assistants", json={"name": "Load", "policies": POLICY})).json()["id"]
        upload = await client.post(
            f"/api/assistants/{assistant}/documents",
            files={"files": ("faq.txt", b"We answer every question, in order, once.", "text/plain")},
        )
        document = upload.json()["items"][0]["id"]

        async def indexed() -> bool:
            return (await client.get(f"/api/assistants/{assistant}/documents/{document}")).json()["status"] == "ready"

        await eventually(indexed, within=60, what="the document to be indexed")
        channel = (await client.post("/api/channels", json={"assistant_id": assistant, "provider": "waha"})).json()
        await waha.idle()
        await waha.scan("+15550100001")
        assert (await client.get(f"/api/channels/{channel['id']}")).json()["status"] == "ready"
    hook = waha.session()["config"]["webhooks"][0]
    return channel["id"], hook["hmac"]["key"]


def phone_of(contact: int) -> str:
    return f"+1555030{contact:04d}"


def signed_webhook(waha: TimedWaha, key: str, phone: str, text: str, message_id: str) -> tuple[bytes, dict[str, str]]:
    """A WAHA `message` event as WAHA sends it, signed with the session's HMAC key."""
    session = waha.session()
    envelope = {
        "id": f"evt_{uuid.uuid4().hex}",
        "timestamp": int(time.time() * 1000),
        "event": "message",
        "session": session["name"],
        "metadata": session["config"].get("metadata") or {},
        "me": session["me"],
        "payload": copy.deepcopy(waha.message_payload(phone, text, message_id)),
        "engine": "WEBJS",
    }
    body = json.dumps(envelope).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Webhook-Hmac": hmac.new(key.encode(), body, hashlib.sha512).hexdigest(),
        "X-Webhook-Hmac-Algorithm": "sha512",
    }
    return body, headers


async def customer(
    contact: int,
    per_contact: int,
    backends: list[str],
    channel_id: int,
    key: str,
    waha: TimedWaha,
    session: aiohttp.ClientSession,
    gate: asyncio.Semaphore,
    run: Run,
    wait_for_reply: bool,
) -> None:
    phone = phone_of(contact)
    for number in range(per_contact):
        marker = f"Q{contact:04d}-{number:03d}"
        text = f"Question {marker}: do you deliver?"
        body, headers = signed_webhook(waha, key, phone, text, f"false_{phone[1:]}@c.us_LOAD{contact:04d}{number:03d}")
        url = f"{backends[(contact + number) % len(backends)]}/webhooks/waha/{channel_id}"
        async with gate:
            run.posted_at[(contact, number)] = time.monotonic()
            while True:
                started = time.monotonic()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                if response.status == 200:
                    run.ack_ms.append((time.monotonic() - started) * 1000)
                    break
                run.refused[response.status] += 1
                await asyncio.sleep(0.2)
        if wait_for_reply:  # a conversation: the next question only once this one is answered
            await asyncio.wait_for(waha.answered[marker].wait(), timeout=120)


async def stored_messages(database_url: str) -> dict:
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        inbound = await conn.fetch("SELECT status, count(*) FROM messages WHERE direction = 'in' GROUP BY status")
        outbound = await conn.fetch("SELECT status, count(*) FROM messages WHERE direction = 'out' GROUP BY status")
        distinct = await conn.fetchval("SELECT count(DISTINCT provider_message_id) FROM messages WHERE direction = 'in'")
    finally:
        await conn.close()
    return {
        "inbound": sum(r["count"] for r in inbound),
        "distinct_ids": distinct,
        "inbound_statuses": {r["status"]: r["count"] for r in inbound},
        "outbound": sum(r["count"] for r in outbound),
        "outbound_statuses": {r["status"]: r["count"] for r in outbound},
    }


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))] if ordered else float("nan")


def analyse(run: Run, waha: TimedWaha, contacts: int, per_contact: int) -> dict:
    answered: dict[tuple[int, int], list[float]] = collections.defaultdict(list)
    out_of_order = 0
    unmarked = 0
    last_seen: dict[int, int] = {}
    for at, _chat, text in sorted(waha.received):
        markers = [(int(c), int(n)) for c, n in MARKER.findall(text)]
        if not markers:
            unmarked += 1
            continue
        for marker in markers:
            answered[marker].append(at)
        contact = markers[0][0]
        newest = max(n for _, n in markers)
        if newest <= last_seen.get(contact, -1):
            out_of_order += 1
        last_seen[contact] = newest
    expected = {(c, n) for c in range(contacts) for n in range(per_contact)}
    latencies = [(answered[m][0] - run.posted_at[m]) * 1000 for m in expected if answered.get(m) and m in run.posted_at]
    return {
        "lost": len(expected - set(answered)),
        "duplicated": sum(len(times) - 1 for times in answered.values()) + unmarked,
        "out_of_order": out_of_order,
        "latencies_ms": latencies,
        "sends": len(waha.received),
    }


async def main(args: argparse.Namespace) -> int:
    per_contact = max(1, args.messages // args.contacts)
    total = per_contact * args.contacts
    folder = Path(args.folder)
    pace = "waiting for each reply" if args.wait_for_reply else "back to back"
    print(f"load: {total} messages from {args.contacts} contacts ({per_contact} each, {pace}), {args.backends} backends, "
          f"{args.workers} workers each, webhook concurrency {args.concurrency}; files in {folder}")  # fmt: skip
    database_url = await asyncio.to_thread(embedded_database_url, folder / "pg")
    ollama, ollama_runner = await start_ollama()
    waha = TimedWaha(WAHA_KEY)
    await waha.start()
    processes: list[BackendProcess] = []
    try:
        for _ in range(args.backends):
            port = free_port()
            env = backend_env(database_url, port, waha, ollama, args)
            processes.append(BackendProcess(env=env, log_path=folder / f"backend-{port}.log", port=port))
        processes[0].start()
        await processes[0].wait_ready(within=180)  # the first one migrates; the others then start in parallel
        for process in processes[1:]:
            process.start()
        await asyncio.gather(*(process.wait_ready(within=180) for process in processes[1:]))
        channel_id, key = await prepare(processes[0].url, waha)

        run = Run()
        urls = [process.url for process in processes]
        gate = asyncio.Semaphore(args.concurrency)
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        started = time.monotonic()
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
            await asyncio.gather(
                *(
                    customer(c, per_contact, urls, channel_id, key, waha, session, gate, run, args.wait_for_reply)
                    for c in range(args.contacts)
                )
            )
        delivered = time.monotonic()

        async def all_answered() -> bool:
            return analyse(run, waha, args.contacts, per_contact)["lost"] == 0

        try:
            await eventually(all_answered, within=args.timeout, interval=0.5, what="every message answered")
        except AssertionError as exc:
            print(f"load: {exc}")
        finished = max((at for at, _, _ in waha.received), default=time.monotonic())
        await asyncio.sleep(2.0)  # late duplicates would arrive by now
        result = analyse(run, waha, args.contacts, per_contact)
        latencies = result["latencies_ms"]
        span = max(finished - started, 1e-9)
        print(f"webhooks: {total} acknowledged in {delivered - started:.1f} s ({total / (delivered - started):.0f}/s); "
              f"ack p50 {percentile(run.ack_ms, 0.5):.0f} ms, p99 {percentile(run.ack_ms, 0.99):.0f} ms; "
              f"refused before success: {dict(run.refused) or 0}")  # fmt: skip
        print(f"replies: {result['sends']} sendText for {total} messages; lost {result['lost']}, "
              f"duplicated {result['duplicated']}, out of order {result['out_of_order']}")  # fmt: skip
        print(f"throughput: {total / span:.1f} messages/s answered end to end ({span:.1f} s from first webhook to last sendText)")
        if latencies:
            print(f"latency webhook -> sendText: p50 {percentile(latencies, 0.5):.0f} ms, "
                  f"p95 {percentile(latencies, 0.95):.0f} ms, p99 {percentile(latencies, 0.99):.0f} ms, "
                  f"max {max(latencies):.0f} ms, mean {statistics.fmean(latencies):.0f} ms")  # fmt: skip
        stored = await stored_messages(database_url)
        print(f"database: {stored['inbound']} inbound stored ({stored['distinct_ids']} distinct ids), "
              f"statuses {stored['inbound_statuses']}; {stored['outbound']} replies {stored['outbound_statuses']}")  # fmt: skip
        ok = (
            result["lost"] == 0
            and result["duplicated"] == 0
            and result["out_of_order"] == 0
            and stored["inbound"] == stored["distinct_ids"] == total
            and stored["inbound_statuses"] == {"answered": total}
        )
        print("load: OK" if ok else "load: FAILED (see the backend logs in the folder above)")
        return 0 if ok else 1
    finally:
        for process in processes:
            await asyncio.to_thread(process.stop)
        await waha.stop()
        await ollama_runner.cleanup()
        # The embedded server stops by itself when this process, its last user, exits.


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000, help="total customer messages")
    parser.add_argument("--contacts", type=int, default=200, help="distinct customers (messages are spread evenly)")
    parser.add_argument("--backends", type=int, default=2, help="backend processes on the one database")
    parser.add_argument("--workers", type=int, default=4, help="WORKER_CONCURRENCY of each backend")
    parser.add_argument("--concurrency", type=int, default=64, help="webhooks in flight at once")
    parser.add_argument(
        "--wait-for-reply", action="store_true", help="each customer waits for the answer before the next question"
    )
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for every reply")
    parser.add_argument("--folder", default=None, help="where the database and logs go (default: a new temp folder)")
    args = parser.parse_args(argv)
    args.folder = args.folder or tempfile.mkdtemp(prefix="bench-load-")
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
