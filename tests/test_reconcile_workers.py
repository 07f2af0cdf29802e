"""Channel reconciliation is a worker task: it runs wherever the workers run, and only there."""

from __future__ import annotations

import asyncio

from tests.channel_support import connect_channel, db_rows, new_assistant
from tests.conftest import login
from tests.e2e_support import eventually
from tests.fakes.waha import FakeWaha, backend_with_gateway, fake_waha  # noqa: F401 - fixture
from tests.test_replies_crash import start_worker, stop, worker_env

INTERVAL = 0.2


async def _ready(backend, channel_id: int) -> bool:
    [channel] = await db_rows(backend, "SELECT status, phone_number FROM channels WHERE id = $1", channel_id)
    return channel["status"] == "ready" and channel["phone_number"] == "+15550100001"


async def test_only_the_worker_process_reconciles_when_the_backend_runs_no_workers(
    fake_waha: FakeWaha,  # noqa: F811
    database_url,
    tmp_path,
):
    async with backend_with_gateway(
        database_url,
        tmp_path,
        gateway_provider="waha",
        waha_url=fake_waha.url,
        waha_api_key="test-waha-key",
        run_workers=False,
        channel_reconcile_seconds=INTERVAL,
    ) as backend:
        async with backend.client(await login(backend)) as api:
            channel = await connect_channel(api, await new_assistant(api))
        await fake_waha.idle()
        fake_waha.drop_webhooks = True
        await fake_waha.scan("+15550100001")  # paired, but the backend is not told
        asked = len(fake_waha.requests)
        # An absence has no event to wait for: several intervals in which a reconciling backend would have asked.
        await asyncio.sleep(5 * INTERVAL)
        assert fake_waha.requests[asked:] == [] and not await _ready(backend, channel["id"])

        settings = backend.app.ctx.settings
        env = worker_env(settings, tmp_path, CHANNEL_RECONCILE_SECONDS=str(INTERVAL), PUBLIC_BASE_URL=settings.public_base_url)
        worker = start_worker(env, tmp_path)
        try:
            await eventually(lambda: _ready(backend, channel["id"]), within=60, what="the worker to heal the channel")
        finally:
            stop(worker)
