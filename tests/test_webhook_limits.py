"""Webhooks against a hostile caller: refused before their body is read when the headers prove
nothing, bounded by WEBHOOK_MAX_MB when they do, and a replayed signed event changes nothing.

The flood test runs `python -m backend` as a child process, so its memory is measured alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.channel_support import connect_channel, db_rows, new_assistant
from tests.conftest import create_database, drop_database, login
from tests.fakes.console_stack import admin_token, start_backend
from tests.fakes.waha import FakeWaha, backend_with_gateway, fake_waha  # noqa: F401

MB = 1024 * 1024


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process, in kB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def reset_peak(pid: int) -> bool:
    try:  # Linux: "5" resets VmHWM to the current RSS
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@pytest.fixture
def sandbox_backend(pg_url: str, template_url: str, tmp_path: Path):
    url = asyncio.run(create_database(pg_url))
    backend = start_backend(url, tmp_path)
    try:
        yield backend, url
    finally:
        backend.stop()
        asyncio.run(drop_database(pg_url, url))


def sandbox_channel(backend_url: str, database_url: str) -> tuple[int, str]:
    """A sandbox channel made through the API, and its webhook secret (read from its row)."""
    headers = {"Authorization": f"Bearer {admin_token(backend_url)}"}
    with httpx.Client(base_url=backend_url, headers=headers, timeout=30) as api:
        assistant = api.post("/api/assistants", json={"name": "Flooded"}).json()
        channel = api.post("/api/channels", json={"assistant_id": assistant["id"], "provider": "sandbox"}).json()

    async def secret() -> str:
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetchval("SELECT webhook_secret FROM channels WHERE id = $1", channel["id"])
        finally:
            await conn.close()

    return channel["id"], asyncio.run(secret())


async def timed_post(
    base_url: str, path: str, headers: dict[str, str], *, length: int = 0, sent: bytes = b"", chunked: bool = False
):
    """POST announcing a `length`-byte body (or a chunked one) but sending only `sent` of it, then
    read the answer: a backend that waits for the whole body never answers (the read times out).
    Returns (status, seconds, JSON body)."""
    host, port = base_url.removeprefix("http://").split(":")
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, int(port))
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}"
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{framing}\r\n{extra}\r\n".encode())
    for offset in range(0, len(sent), MB):
        part = sent[offset : offset + MB]
        writer.write(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
        await writer.drain()
    try:
        async with asyncio.timeout(20):
            status = int((await reader.readline()).split()[1])
            size = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    size = int(value)
            answer = json.loads(await reader.readexactly(size))
        return status, time.perf_counter() - started, answer
    finally:
        writer.close()


def test_unauthenticated_20_mb_webhooks_are_refused_without_the_backend_holding_them(sandbox_backend):
    backend, database_url = sandbox_backend
    channel_id, secret = sandbox_channel(backend.url, database_url)
    pid = backend.process.pid
    path = f"/webhooks/sandbox/{channel_id}"

    async def flood() -> list[tuple[int, float, dict]]:
        url, size = backend.url, 20 * MB
        wrong = [timed_post(url, path, {"x-sandbox-secret": "not-the-secret"}, length=size) for _ in range(10)]
        missing = [timed_post(url, path, {}, length=size) for _ in range(5)]
        unknown = [timed_post(url, "/webhooks/sandbox/999999", {"x-sandbox-secret": secret}, length=size) for _ in range(5)]
        return await asyncio.gather(*wrong, *missing, *unknown)

    before = memory_kb(pid)
    peak_reset = reset_peak(pid)
    answers = asyncio.run(flood())
    after = memory_kb(pid)
    growth_mb = (after["VmHWM"] - (before["VmRSS"] if peak_reset else before["VmHWM"])) / 1024
    print(
        f"\n20 parallel 20 MB unauthenticated webhooks: RSS {before['VmRSS'] / 1024:.0f} MB before, "
        f"peak {after['VmHWM'] / 1024:.0f} MB, {after['VmRSS'] / 1024:.0f} MB after (peak growth {growth_mb:.1f} MB); "
        f"slowest answer {max(seconds for _, seconds, _ in answers):.2f} s"
    )
    assert [status for status, _, _ in answers] == [401] * 20
    assert len({json.dumps(body, sort_keys=True) for _, _, body in answers}) == 1  # unknown or wrong: the same answer
    # Answered before any of the body was sent: 20 bodies that would be 400 MB buffered cost nothing.
    assert growth_mb < 60, f"the backend grew by {growth_mb:.0f} MB under the flood"

    async def authentic() -> list[tuple[int, float, dict]]:
        headers = {"x-sandbox-secret": secret}
        event = json.dumps({"event": "padding.test", "payload": {"pad": "x" * (2 * MB)}}).encode()
        return [
            await timed_post(backend.url, path, headers, length=17 * MB),  # says its length: 413 before reading
            await timed_post(backend.url, path, headers, sent=b" " * (16 * MB + 1), chunked=True),  # 413 once past it
            await timed_post(backend.url, path, headers, length=len(event), sent=event),  # over 1 MiB, within 16 MB
        ]

    too_large, too_large_chunked, accepted = asyncio.run(authentic())
    assert too_large[0] == too_large_chunked[0] == 413
    assert too_large[2]["error"]["code"] == too_large_chunked[2]["error"]["code"] == "too_large"
    assert "WEBHOOK_MAX_MB" in too_large[2]["error"]["message"]
    assert accepted[0] == 200 and accepted[2]["outcomes"] == ["unknown:padding.test"]


# -- WAHA: the HMAC covers the body, but its header must be there before the body is read ----------


@pytest.fixture
async def waha_stack(fake_waha: FakeWaha, database_url, tmp_path):  # noqa: F811
    async with backend_with_gateway(
        database_url, tmp_path, gateway_provider="waha", waha_url=fake_waha.url, waha_api_key="test-waha-key"
    ) as backend:
        async with backend.client(await login(backend)) as api:
            yield api, backend, fake_waha


async def test_a_waha_webhook_without_its_hmac_header_is_refused_before_its_body(waha_stack):
    api, backend, fake = waha_stack
    channel = await connect_channel(api, await new_assistant(api))
    await fake.idle()
    path = f"/webhooks/waha/{channel['id']}"
    unsigned = await timed_post(backend.url, path, {}, length=20 * MB)  # answered with none of the body sent
    # With the header, the body is read before the HMAC can be checked: up to 1 MB, as WAHA's webhooks carry no file.
    too_large = await timed_post(backend.url, path, {"X-Webhook-Hmac": "0" * 128}, length=20 * MB)
    over_a_mb = await timed_post(backend.url, path, {"X-Webhook-Hmac": "0" * 128}, length=2 * MB)
    body = json.dumps({"event": "presence.update", "payload": {"id": "x", "presences": []}}).encode()
    forged = await timed_post(backend.url, path, {"X-Webhook-Hmac": "0" * 128}, length=len(body), sent=body)
    signed = hmac.new(fake.session()["config"]["webhooks"][0]["hmac"]["key"].encode(), body, hashlib.sha512).hexdigest()
    genuine = await timed_post(backend.url, path, {"X-Webhook-Hmac": signed}, length=len(body), sent=body)
    assert unsigned[0] == 401
    assert too_large[0] == 413 and over_a_mb[0] == 413 and "waha gateway's limit" in over_a_mb[2]["error"]["message"]
    assert forged[0] == 401 and forged[2] == unsigned[2]
    assert genuine[0] == 200 and genuine[2]["outcomes"] == ["unknown:presence.update"]


async def test_a_replayed_signed_working_event_does_not_revive_a_logged_out_channel(waha_stack):
    api, backend, fake = waha_stack
    channel = await connect_channel(api, await new_assistant(api))
    await fake.idle()
    assert await fake.scan("+15550100001") == [200]
    captured = fake.deliveries[-1]  # session.status WORKING, signed, with its envelope timestamp
    assert json.loads(captured[1])["payload"]["status"] == "WORKING"
    await asyncio.sleep(1.2)
    assert (await api.post(f"/api/channels/{channel['id']}/logout")).json()["detail"] == "logged_out"
    await fake.idle()

    status, answer = await fake.replay(captured)
    assert status == 200 and answer["outcomes"] == ["ignored:stale"]
    still = (await api.get(f"/api/channels/{channel['id']}")).json()
    assert still["status"] == "disconnected" and still["detail"] == "logged_out"
    assert await db_rows(backend, "SELECT * FROM assistant_phone_numbers") == []

    # Pairing again works: the new WORKING is newer than the logout.
    await api.post(f"/api/channels/{channel['id']}/reconnect")
    await fake.idle()
    assert await fake.scan("+15550100001") == [200]
    assert (await api.get(f"/api/channels/{channel['id']}")).json()["status"] == "ready"


async def test_a_late_retry_of_an_older_status_event_is_ignored(waha_stack):
    api, backend, fake = waha_stack
    channel = await connect_channel(api, await new_assistant(api))
    await fake.idle()
    await fake.scan("+15550100001")
    working = fake.deliveries[-1]
    await asyncio.sleep(1.2)
    await fake.unlink()  # FAILED, newer
    assert (await api.get(f"/api/channels/{channel['id']}")).json()["status"] == "disconnected"
    status, answer = await fake.replay(working)  # WAHA retrying the old WORKING after it
    assert status == 200 and answer["outcomes"] == ["ignored:stale"]
    assert (await api.get(f"/api/channels/{channel['id']}")).json()["status"] == "disconnected"


async def test_bodies_past_the_budget_of_bodies_read_at_once_get_503_at_once(fake_waha, database_url, tmp_path):  # noqa: F811
    """Many large signed-looking bodies at once cannot take the backend's memory: the ones past WEBHOOK_BODIES_MB
    are answered 503 before any of their body is read (the gateway retries), and the budget comes back after."""
    async with backend_with_gateway(
        database_url, tmp_path, gateway_provider="waha", waha_url=fake_waha.url, waha_api_key="k", webhook_bodies_mb=1
    ) as backend:
        async with backend.client(await login(backend)) as api:
            channel = await connect_channel(api, await new_assistant(api))
        await fake_waha.idle()
        path = f"/webhooks/waha/{channel['id']}"
        signed_looking = {"X-Webhook-Hmac": "0" * 128}
        # Holds 900 kB of the budget while its body trickles in (half of it is sent, then nothing).
        held = asyncio.ensure_future(timed_post(backend.url, path, signed_looking, length=900_000, sent=b" " * 450_000))
        await asyncio.sleep(0.5)
        refused = await timed_post(backend.url, path, signed_looking, length=200_000)
        assert refused[0] == 503 and refused[2]["error"]["code"] == "busy" and refused[1] < 2
        held.cancel()
        await asyncio.gather(held, return_exceptions=True)
        await asyncio.sleep(0.5)  # the server sees the connection go and gives the budget back
        body = json.dumps({"event": "presence.update", "payload": {"id": "x", "presences": []}}).encode()
        after = await timed_post(backend.url, path, signed_looking, length=len(body), sent=body)
        assert after[0] == 401  # read, then refused on its signature: the budget is free again
