"""The foundation: health, auth, assistants CRUD, the JSON error shape, migrations."""

from __future__ import annotations

import time

import asyncpg
import jwt
import pytest

from backend.database import execute, fetchval, head_revision, run_migrations
from tests.conftest import create_database, drop_database, login
from tests.sandbox_chat import make_sandbox


async def test_health_and_readiness(backend):
    async with backend.client() as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}


async def test_login_returns_a_token_and_wrong_password_is_refused(backend):
    async with backend.client() as client:
        good = await client.post("/api/auth/login", json={"email": "ADMIN@example.com", "password": "test-admin-password"})
        bad = await client.post("/api/auth/login", json={"email": "admin@example.com", "password": "nope"})
    assert good.status_code == 200 and good.json()["token"]
    assert bad.status_code == 401
    assert bad.json()["error"]["code"] == "bad_credentials"


async def test_login_attempts_are_rate_limited(backend):
    async with backend.client() as client:
        codes = [
            (await client.post("/api/auth/login", json={"email": "admin@example.com", "password": "wrong"})).status_code
            for _ in range(6)
        ]
        # Even the right password waits out the window once it is locked.
        locked = await client.post("/api/auth/login", json={"email": "admin@example.com", "password": "test-admin-password"})
    assert codes == [401] * 5 + [429]
    assert locked.status_code == 429 and locked.json()["error"]["code"] == "too_many_requests"


async def test_assistant_crud_round_trip(api):
    created = await api.post("/api/assistants", json={"name": "Shop", "instructions": "Be brief.", "temperature": 0.5})
    assert created.status_code == 201
    assistant = created.json()
    assert assistant["model"] == "llama3.2" and assistant["policies"]["ignore_groups"] is True

    patched = await api.patch(f"/api/assistants/{assistant['id']}", json={"name": "Shop 2"})
    assert patched.status_code == 200
    assert patched.json()["name"] == "Shop 2" and patched.json()["instructions"] == "Be brief."

    listing = (await api.get("/api/assistants", params={"limit": 10})).json()
    assert listing["total"] == 1 and listing["items"][0]["name"] == "Shop 2"

    assert (await api.delete(f"/api/assistants/{assistant['id']}")).status_code == 204
    missing = await api.get(f"/api/assistants/{assistant['id']}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "assistant_not_found"


async def test_pagination(api):
    for i in range(5):
        await api.post("/api/assistants", json={"name": f"A{i}"})
    page = (await api.get("/api/assistants", params={"limit": 2, "offset": 2})).json()
    assert page["total"] == 5 and [a["name"] for a in page["items"]] == ["A2", "A3"]
    bad = await api.get("/api/assistants", params={"limit": "many"})
    assert bad.status_code == 400 and bad.json()["error"]["details"][0]["field"] == "limit"


async def test_an_assistant_whose_stored_settings_an_older_or_newer_version_wrote_is_still_listed(api, backend):
    created = (await api.post("/api/assistants", json={"name": "Shop"})).json()
    await execute(
        backend.app.ctx.db,
        "UPDATE assistants SET settings = settings || $2 WHERE id = $1",
        created["id"],
        {"written_by_another_version": True, "pause_minutes": 0, "history_turns": 3},
    )
    listing = await api.get("/api/assistants")
    one = await api.get(f"/api/assistants/{created['id']}")
    assert listing.status_code == 200 and one.status_code == 200, (listing.text, one.text)
    [listed] = listing.json()["items"]
    assert listed == one.json()
    # The unknown key is left out, the invalid value read as its default, the valid one kept.
    assert "written_by_another_version" not in listed["policies"]
    assert listed["policies"]["pause_minutes"] == created["policies"]["pause_minutes"]
    assert listed["policies"]["history_turns"] == 3


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "malformed_json"),
        (b"", "missing_body"),
        (b'{"name": 5}', "invalid"),
        (b'{"instructions": "no name"}', "invalid"),
        (b'{"name": "x", "temperature": "hot"}', "invalid"),
        (b'{"name": "x", "surprise": true}', "invalid"),
        (b'{"name": "x", "language": "klingon"}', "invalid"),
        (b'["a list"]', "invalid"),
    ],
)
async def test_bad_assistant_input_is_a_clear_400_and_writes_nothing(api, body, code):
    response = await api.post("/api/assistants", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert (await api.get("/api/assistants")).json()["total"] == 0


async def test_unknown_ids_and_routes_are_404_json(api):
    assert (await api.patch("/api/assistants/424242", json={"name": "x"})).status_code == 404
    assert (await api.delete("/api/assistants/424242")).status_code == 404
    response = await api.get("/api/no-such-thing")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


async def test_a_request_id_is_echoed_or_made_up_and_reaches_the_reply_job(api, backend):
    given = await api.get("/api/assistants", headers={"X-Request-ID": "trace-42"})
    assert given.status_code == 200 and given.headers["x-request-id"] == "trace-42"
    longer = await api.get("/api/assistants", headers={"X-Request-ID": "x" * 100})
    assert longer.headers["x-request-id"] == "x" * 64
    async with backend.client() as anonymous:  # refused before any route ran: still traceable
        refused = await anonymous.get("/api/assistants")
    assert refused.status_code == 401 and len(refused.headers["x-request-id"]) >= 32

    _, channel_id = await make_sandbox(api)
    sent = await api.post(
        f"/api/channels/{channel_id}/sandbox/messages",
        json={"from": "+15550001", "text": "Hello"},
        headers={"X-Request-ID": "trace-43"},
    )
    assert sent.status_code == 200 and sent.headers["x-request-id"] == "trace-43"
    payload = await fetchval(backend.app.ctx.db, "SELECT payload FROM jobs WHERE kind = 'reply'")
    assert payload["request_id"] == "trace-43"  # the job's log lines carry it too


async def test_body_over_the_limit_is_413_json(tmp_path, database_url):
    from backend.app import create_app
    from tests.conftest import make_settings
    from tests.servers import serve_app

    app = create_app(make_settings(database_url, tmp_path, max_upload_mb=1), name="small_limit")
    async with serve_app(app) as running:
        token = await login(running)
        async with running.client(token) as client:
            response = await client.post(
                "/api/assistants",
                content=b'{"name": "' + b"x" * (3 * 1024 * 1024) + b'"}',
                headers={"content-type": "application/json"},
            )
            assert response.status_code == 413
            assert response.json()["error"]["code"] == "too_large"
            assert (await client.get("/api/assistants")).json()["total"] == 0


async def test_api_refuses_missing_expired_forged_tokens(backend, settings):
    secret = settings.secret_key.get_secret_value()
    now = int(time.time())
    expired = jwt.encode({"sub": "1", "ver": 0, "exp": now - 10}, secret, algorithm="HS256")
    forged = jwt.encode({"sub": "1", "ver": 0, "exp": now + 600}, "someone-elses-key-of-enough-length!!", algorithm="HS256")
    async with backend.client() as client:
        missing = await client.get("/api/assistants")
        results = {
            name: await client.get("/api/assistants", headers={"Authorization": f"Bearer {token}"})
            for name, token in {"expired": expired, "forged": forged, "garbage": "abc.def"}.items()
        }
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_token"
    assert results["expired"].json()["error"]["code"] == "token_expired"
    assert results["forged"].json()["error"]["code"] == "invalid_token"
    assert all(r.status_code == 401 for r in results.values())


async def test_openapi_document_lists_the_routes(backend):
    async with backend.client() as client:
        spec = (await client.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    assert "post" in spec["paths"]["/api/assistants"]
    assert spec["paths"]["/api/assistants/{assistant_id}"]["patch"]["security"] == [{"bearer": []}]


async def test_migrations_go_up_and_down_from_empty(pg_url):
    from alembic import command

    from backend.database import alembic_config

    url = await create_database(pg_url, template=None)
    try:
        await run_migrations(url)
        conn = await asyncpg.connect(url)
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
        assert {
            "assistants",
            "channels",
            "assistant_phone_numbers",
            "contacts",
            "messages",
            "documents",
            "chunks",
            "jobs",
            "operators",
        } <= tables
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == head_revision()
        await conn.close()

        import asyncio

        await asyncio.to_thread(command.downgrade, alembic_config(url), "base")
        conn = await asyncpg.connect(url)
        left = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
        await conn.close()
        assert left <= {"alembic_version"}
    finally:
        await drop_database(pg_url, url)


async def test_two_backends_migrating_at_once_apply_each_step_once(pg_url):
    """Three `alembic upgrade head` processes on one empty database: one schema, no errors."""
    import asyncio
    import os
    import sys

    url = await create_database(pg_url, template=None)
    try:
        env = {**os.environ, "DATABASE_URL": url}
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "alembic",
                "upgrade",
                "head",
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(3)
        ]
        results = [await proc.communicate() for proc in procs]
        assert [proc.returncode for proc in procs] == [0, 0, 0], results
        conn = await asyncpg.connect(url)
        assert await conn.fetchval("SELECT count(*) FROM alembic_version") == 1
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == head_revision()
        await conn.close()
    finally:
        await drop_database(pg_url, url)


async def test_admin_creates_an_operator_who_cannot_manage_operators(api, backend):
    created = await api.post("/api/operators", json={"email": "ana@example.com", "password": "long-enough-pw"})
    assert created.status_code == 201 and created.json()["role"] == "operator"
    assert "password" not in created.text and "hash" not in created.text
    again = await api.post("/api/operators", json={"email": "ANA@example.com", "password": "long-enough-pw"})
    assert again.status_code == 409

    token = await login(backend, "ana@example.com", "long-enough-pw")
    async with backend.client(token) as ana:
        assert (await ana.get("/api/assistants")).status_code == 200
        refused = await ana.post("/api/operators", json={"email": "eve@example.com", "password": "long-enough-pw"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    emails = [o["email"] for o in (await api.get("/api/operators")).json()["items"]]
    assert emails == ["admin@example.com", "ana@example.com"]
