"""Golden runs: ask an assistant's golden questions and keep the verdicts (`backend.services.golden`)."""

from __future__ import annotations

from backend.errors import NotFound
from backend.runtime import Runtime
from backend.services import golden
from backend.store import golden as store
from backend.workers.jobs import Job, Lease


class GoldenRunJob:
    """Kind `golden_run`, payload `{"run_id"}`, serial per assistant."""

    async def run(self, rt: Runtime, job: Job, lease: Lease) -> None:
        try:
            await golden.run_questions(rt, job.payload["run_id"], lease.heartbeat)
        except NotFound:
            return  # the assistant was deleted, and its runs with it

    async def failed(self, rt: Runtime, job: Job, error: str) -> None:
        await store.fail_run(rt.db, job.payload["run_id"], error)


HANDLERS = {store.RUN_JOB: GoldenRunJob()}
