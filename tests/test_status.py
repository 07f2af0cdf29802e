"""Observability: Prometheus `/metrics` and the dependency status `/api/status`."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from backend.app import create_app
from backend.database import execute, fetch
from backend.store.jobs import QUEUE_DEPTH, enqueue_job
from tests.conftest import login, make_settings
from tests.servers import free_port, serve_aiohttp, serve_app

FIXTURES = Path(__file__).parent / "fixtures" / "status"
WAHA_KEY = "waha-test-key"


@asynccontextmanager
async def fake_server(app: web.Application) -> AsyncIterator[str]:
    """Serve an aiohttp app on loopback; yields its base URL."""
    runner, url = await serve_aiohttp(app)
    try:
        yield url
    finally:
        await runner.cleanup()


def fake_ollama() -> web.Application:
    """Ollama's `/api/tags`, answered with the body from Ollama's API docs."""
    tags = json.loads((FIXTURES / "ollama_tags_response.json").read_text())

    async def list_models(request: web.Request) -> web.Response:
        return web.json_response(tags)

    app = web.Application()
    app.router.add_get("/api/tags", list_models)
    return app


def fake_waha() -> web.Application:
    """WAHA's `GET /api/server/version`, which needs the `X-Api-Key` header."""

    async def version(request: web.Request) -> web.Response:
        if request.headers.get("X-Api-Key") != WAHA_KEY:
            return web.json_response({"message": "Unauthorized", "statusCode": 401}, status=401)
        return web.json_response({"version": "2024.10.1", "engine": "WEBJS", "tier": "CORE"})

    app = web.Application()
    app.router.add_get("/api/server/version", version)
    return app


@asynccontextmanager
async def running_backend(settings):
    app = create_app(settings, name=f"status_{uuid.uuid4().hex[:8]}")
    async with serve_app(app) as running:
        token = await login(running)
        async with running.client(token) as client:
            yield running, client


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a Prometheus text exposition: {(name, sorted labels): value}."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(values: dict[tuple[str, tuple], float], name: str, **labels: str) -> float:
    return sum(
        value
        for (sample_name, sample_labels), value in values.items()
        if sample_name == name and all(dict(sample_labels).get(k) == v for k, v in labels.items())
    )


async def scrape(client) -> dict[tuple[str, tuple], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return samples(response.text)


async def test_metrics_are_served_as_prometheus_text_without_a_token(backend):
    async with backend.client() as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {"wa_messages_in", "wa_messages_out", "wa_reply_latency_seconds", "wa_job_queue_depth"} <= names


async def test_queue_gauges_follow_the_jobs_table_on_every_scrape(backend):
    async with backend.client() as client:
        before = await scrape(client)
        assert before[("wa_job_queue_depth", (("status", "queued"),))] == 0
        # A kind no worker handles stays queued, like a backlog would.
        for n in range(3):
            await enqueue_job(backend.app.ctx.db, "metrics-probe", {"n": n})
        after = await scrape(client)
    assert after[("wa_job_queue_depth", (("status", "queued"),))] == 3
    assert after[("wa_job_queue_oldest_age_seconds", ())] >= 0


async def test_status_needs_an_operator_token(backend):
    async with backend.client() as client:
        response = await client.get("/api/status")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_token"


async def test_status_reports_ollama_and_unconfigured_gateways_down_without_failing(database_url, tmp_path):
    settings = make_settings(
        database_url,
        tmp_path / "data",
        waha_url=f"http://127.0.0.1:{free_port()}",
        evolution_url=f"http://127.0.0.1:{free_port()}",
    )
    async with running_backend(settings) as (_, api):
        response = await api.get("/api/status")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["database"]["ok"] is True and body["database"]["kind"] == "external"
    assert body["ollama"]["reachable"] is False and body["ollama"]["error"]
    assert body["ollama"]["models_missing"] == ["llama3.2"]
    gateways = {g["provider"]: g for g in body["gateways"]}
    assert gateways["sandbox"]["ok"] is True
    # Not the default provider, no key, no channel: down, but not counted against the system.
    assert gateways["waha"]["configured"] is False and gateways["waha"]["reachable"] is False
    assert body["queue"] == {"queued": 0, "running": 0, "failed": 0, "oldest_queued_age_seconds": 0.0}
    assert body["workers"] == {"in_process": True, "concurrency": settings.worker_concurrency}


async def test_status_is_ok_when_ollama_has_the_models_and_the_gateway_takes_the_key(database_url, tmp_path):
    async with fake_server(fake_ollama()) as ollama_url, fake_server(fake_waha()) as waha_url:
        settings = make_settings(
            database_url,
            tmp_path / "data",
            ollama_host=ollama_url,
            gateway_provider="waha",
            waha_url=waha_url,
            waha_api_key=WAHA_KEY,
            evolution_url=f"http://127.0.0.1:{free_port()}",
        )
        async with running_backend(settings) as (_, api):
            healthy = (await api.get("/api/status")).json()
            # An assistant on a model Ollama does not have makes the status say which one to pull.
            created = await api.post("/api/assistants", json={"name": "Shop", "model": "mistral"})
            assert created.status_code == 201, created.text
            missing = (await api.get("/api/status")).json()

    assert healthy["status"] == "ok", healthy
    assert healthy["ollama"]["models_available"] == ["deepseek-r1:latest", "llama3.2:latest"]
    waha = {g["provider"]: g for g in healthy["gateways"]}["waha"]
    assert waha["configured"] and waha["ok"] and waha["url"] == waha_url
    assert WAHA_KEY not in json.dumps(healthy)

    assert missing["status"] == "degraded"
    assert missing["ollama"]["models_missing"] == ["mistral"]
    assert "ollama pull mistral" in missing["ollama"]["error"]


async def test_status_says_when_the_gateway_refuses_the_api_key(database_url, tmp_path):
    async with fake_server(fake_waha()) as waha_url:
        settings = make_settings(database_url, tmp_path / "data", waha_url=waha_url, waha_api_key="wrong-key")
        async with running_backend(settings) as (_, api):
            body = (await api.get("/api/status")).json()
    waha = {g["provider"]: g for g in body["gateways"]}["waha"]
    assert waha["configured"] is True and waha["reachable"] is True and waha["ok"] is False
    assert "API key" in waha["error"]
    assert body["status"] == "degraded"


async def _outbox(api, channel_id: int) -> list[dict]:
    body = (await api.get(f"/api/channels/{channel_id}/sandbox/outbox")).json()
    return body["items"] if isinstance(body, dict) else body


async def send_and_wait_for_the_reply(api) -> None:
    """A customer writes to a paired sandbox channel; returns once the assistant's reply is sent."""
    assistant = (await api.post("/api/assistants", json={"name": "Metrics shop"})).json()
    channel = await api.post("/api/channels", json={"assistant_id": assistant["id"], "provider": "sandbox"})
    assert channel.status_code in (200, 201), channel.text
    channel_id = channel.json()["id"]
    scanned = await api.post(f"/api/channels/{channel_id}/sandbox/scan", json={"phone_number": "+15550001111"})
    assert scanned.status_code in (200, 201), scanned.text
    sent = await api.post(
        f"/api/channels/{channel_id}/sandbox/messages",
        json={"from": "+15557654321", "text": "When do you open?", "id": "m-1"},
    )
    assert sent.status_code in (200, 201, 202), sent.text
    # Ollama is down in tests: the customer still gets a (degraded or fallback) reply.
    for _ in range(300):
        if await _outbox(api, channel_id):
            break
        await asyncio.sleep(0.1)
    assert len(await _outbox(api, channel_id)) == 1


async def test_metrics_count_a_message_in_and_its_reply_out(api):
    """A customer message through the sandbox gateway moves the in/out counters and the latency histogram."""
    before = await scrape(api)
    await send_and_wait_for_the_reply(api)

    after = await scrape(api)

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert moved("wa_messages_in_total", provider="sandbox") == 1
    assert moved("wa_messages_out_total", provider="sandbox") == 1
    assert moved("wa_reply_latency_seconds_count") == 1


async def test_metrics_need_the_bearer_token_when_metrics_token_is_set(database_url, tmp_path):
    settings = make_settings(database_url, tmp_path / "data", metrics_token="scrape-me-0123456789")
    async with running_backend(settings) as (running, _):
        async with running.client() as client:
            missing = await client.get("/metrics")
            wrong = await client.get("/metrics", headers={"Authorization": "Bearer scrape-me-wrong"})
            operator = await client.get("/metrics", headers={"Authorization": "Bearer not-even-a-jwt"})
            right = await client.get("/metrics", headers={"Authorization": "Bearer scrape-me-0123456789"})
    assert missing.status_code == wrong.status_code == operator.status_code == 401
    assert missing.json()["error"]["code"] == "bad_metrics_token"
    assert right.status_code == 200 and "wa_job_queue_depth" in right.text


async def test_a_scrape_costs_the_same_with_200k_finished_jobs(backend):
    db = backend.app.ctx.db
    await execute(
        db,
        "INSERT INTO jobs (kind, status, payload) "
        "SELECT 'reply', 'done', jsonb_build_object('n', n) FROM generate_series(1, 200000) n",
    )
    await enqueue_job(db, "metrics-probe", {"n": 1})
    conn = await asyncpg.connect(backend.app.ctx.settings.database_url)
    try:
        await conn.execute("VACUUM ANALYZE jobs")
        table_pages = await conn.fetchval("SELECT pg_relation_size('jobs') / current_setting('block_size')::int")
        plan = json.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {QUEUE_DEPTH}"))[0]["Plan"]
    finally:
        await conn.close()
    pages_read = plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]
    assert table_pages > 1000
    assert pages_read < 50, f"a scrape read {pages_read} of the jobs table's {table_pages} pages"
    async with backend.client() as client:
        assert (await scrape(client))[("wa_job_queue_depth", (("status", "queued"),))] == 1


async def test_workers_prune_finished_jobs_and_keep_failed_ones_longer(database_url, tmp_path):
    # A short lease makes the reaper, which prunes, go round every second or so.
    settings = make_settings(
        database_url, tmp_path / "data", job_lease_seconds=5, job_retention_days=7, job_failed_retention_days=30
    )
    async with running_backend(settings) as (running, _):
        db = running.app.ctx.db
        for name, status, days in [
            ("old done", "done", 8), ("recent done", "done", 1), ("old cancelled", "cancelled", 8),
            ("failed last week", "failed", 8), ("failed long ago", "failed", 31), ("old backlog", "queued", 40),
        ]:  # fmt: skip
            await execute(
                db,
                "INSERT INTO jobs (kind, status, payload, updated_at) VALUES ('metrics-probe', $1, "
                "jsonb_build_object('name', CAST($2 AS text)), now() - make_interval(days => $3))",
                status,
                name,
                days,
            )

        async def kept() -> set[str]:
            records = await fetch(db, "SELECT payload->>'name' AS name FROM jobs WHERE kind = 'metrics-probe'")
            return {r["name"] for r in records}

        deadline = asyncio.get_running_loop().time() + 20
        while "old done" in await kept() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.2)
        assert await kept() == {"recent done", "failed last week", "old backlog"}
