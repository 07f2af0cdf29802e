"""Worker loops: claim jobs (SKIP LOCKED), woken by LISTEN/NOTIFY with a slow poll as safety net."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import traceback
import uuid
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
import structlog

from backend.database import is_connection_error
from backend.runtime import Runtime
from backend.store import jobs as store

log = structlog.get_logger(__name__)


class RetryLater(Exception):
    """A handler's way to ask for another attempt after `delay` seconds."""

    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentFailure(Exception):
    """A handler's way to say "retrying cannot help"."""


class JobHandler(Protocol):
    async def run(self, rt: Runtime, job: Job) -> None: ...

    async def failed(self, rt: Runtime, job: Job, error: str) -> None: ...


@dataclass
class Job:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    worker_id: str
    lease_seconds: int
    _rt: Runtime | None = field(default=None, repr=False)

    async def heartbeat(self, progress: float | None = None) -> None:
        """Extend the lease of a long job and record progress (0..1)."""
        assert self._rt is not None
        await store.extend_lease(self._rt.db, self.id, self.worker_id, self.lease_seconds, progress)


def handlers() -> dict[str, JobHandler]:
    from backend.workers import indexing, replies

    return {**indexing.HANDLERS, **replies.HANDLERS}


def backoff_seconds(attempt: int) -> float:
    return min(2.0 ** (attempt - 1), 60.0)


class Workers:
    """N claim loops in this process plus one listener connection and a reaper."""

    def __init__(self, rt: Runtime, concurrency: int) -> None:
        self.rt = rt
        self.concurrency = concurrency
        self.handlers = handlers()
        # Idle claim loops, each waiting on its own future: a NOTIFY wakes ONE of them (a herd of
        # claim queries per job would cost more than the job); `nudges` counts every wake-up, so
        # a loop whose claim came back empty while one happened looks again instead of sleeping.
        self.idle: deque[asyncio.Future] = deque()
        self.nudges = 0
        self.tasks: list[asyncio.Task] = []
        self.listener: asyncpg.Connection | None = None
        self.id_prefix = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stopping = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self._loop(f"{self.id_prefix}:{i}")) for i in range(self.concurrency)]
        self.tasks.append(loop.create_task(self._listen()))
        self.tasks.append(loop.create_task(self._reap()))
        log.info("workers.started", concurrency=self.concurrency, kinds=sorted(self.handlers))

    async def stop(self) -> None:
        self.stopping = True
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.listener is not None and not self.listener.is_closed():
            await self.listener.close()

    async def _listen(self) -> None:
        """Keep one LISTEN connection; reconnect after the database goes away."""
        while not self.stopping:
            try:
                self.listener = await asyncpg.connect(self.rt.database_url)
                await self.listener.add_listener(store.CHANNEL, lambda *_: self.wake_one())
                self.wake_all()  # catch up on anything queued while we were not listening
                while not self.listener.is_closed():
                    await asyncio.sleep(1)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                log.warning("workers.listen_failed", error=type(exc).__name__)
            await asyncio.sleep(1)

    async def _reap(self) -> None:
        """Reclaim jobs of dead workers; prune old finished ones (cheap when there are none: an index range)."""
        settings = self.rt.settings
        while not self.stopping:
            try:
                for record in await store.reclaim_expired_jobs(self.rt.db):
                    log.warning("job.reclaimed", job=record["id"], kind=record["kind"], status=record["status"])
                    if record["status"] == "failed":
                        await self._call_failed(record, record["last_error"] or "worker lost")
                    else:
                        self.wake_one()
                pruned = await store.prune_finished_jobs(
                    self.rt.db, settings.job_retention_days, settings.job_failed_retention_days
                )
                if pruned:
                    log.info("jobs.pruned", count=pruned)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                log.warning("workers.reap_failed", error=type(exc).__name__)
            await asyncio.sleep(max(1.0, min(settings.job_lease_seconds / 4, 30)))

    def wake_one(self) -> None:
        self.nudges += 1
        while self.idle:
            waiter = self.idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def wake_all(self) -> None:
        self.nudges += 1
        while self.idle:
            waiter = self.idle.popleft()
            if not waiter.done():
                waiter.set_result(None)

    async def _idle(self, seconds: float) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self.idle.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout=seconds)
        except TimeoutError:
            pass
        finally:
            if not waiter.done():
                waiter.cancel()
            with contextlib.suppress(ValueError):
                self.idle.remove(waiter)  # timed out: not woken, still queued

    async def _loop(self, worker_id: str) -> None:
        kinds = sorted(self.handlers)
        while not self.stopping:
            nudges = self.nudges
            try:
                claim = await store.claim_next_job(self.rt.db, worker_id, kinds, self.rt.settings.job_lease_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                level = "warning" if is_connection_error(exc) else "error"
                getattr(log, level)("workers.claim_failed", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(1)
                continue
            if claim.job is None:
                if self.nudges == nudges:
                    # Until woken, a delayed job falls due (burst window, retry back-off), or the safety poll.
                    wait = self.rt.settings.job_poll_seconds
                    await self._idle(wait if claim.next_due_in is None else min(wait, max(claim.next_due_in, 0.001)))
                continue
            if claim.more_due:
                self.wake_one()  # let one sibling take the next
            await self._run(claim.job, worker_id)

    async def _run(self, record: dict, worker_id: str) -> None:
        job = Job(
            id=record["id"],
            kind=record["kind"],
            payload=record["payload"],
            attempts=record["attempts"],
            max_attempts=record["max_attempts"],
            worker_id=worker_id,
            lease_seconds=self.rt.settings.job_lease_seconds,
            _rt=self.rt,
        )
        handler = self.handlers[job.kind]
        started = time.perf_counter()
        bound = log.bind(
            job=job.id,
            kind=job.kind,
            attempt=job.attempts,
            **({"request_id": job.payload["request_id"]} if "request_id" in job.payload else {}),
        )
        try:
            await handler.run(self.rt, job)
        except asyncio.CancelledError:
            raise  # shutting down: the lease expires and another worker takes it
        except PermanentFailure as exc:
            await self._give_up(job, handler, str(exc), bound)
        except Exception as exc:  # noqa: BLE001 - every failure is retried or recorded
            error = f"{type(exc).__name__}: {exc}"
            if job.attempts >= job.max_attempts:
                await self._give_up(job, handler, error, bound)
            else:
                delay = exc.delay if isinstance(exc, RetryLater) and exc.delay is not None else backoff_seconds(job.attempts)
                bound.warning("job.retry", error=error, retry_in_s=delay)
                if not isinstance(exc, (RetryLater,)) and not is_connection_error(exc):
                    bound.debug("job.traceback", traceback=traceback.format_exc())
                await self._safely(store.retry_job(self.rt.db, job.id, worker_id, error, delay))
        else:
            await self._safely(store.finish_job(self.rt.db, job.id, worker_id))
            bound.info("job.done", ms=round((time.perf_counter() - started) * 1000, 1))

    async def _give_up(self, job: Job, handler: JobHandler, error: str, bound) -> None:  # noqa: ANN001
        bound.error("job.failed", error=error)
        await self._safely(store.fail_job(self.rt.db, job.id, job.worker_id, error))
        await self._safely(handler.failed(self.rt, job, error))

    async def _call_failed(self, record: dict, error: str) -> None:
        handler = self.handlers.get(record["kind"])
        if handler is not None:
            job = Job(
                record["id"],
                record["kind"],
                record["payload"],
                record["attempts"],
                record["max_attempts"],
                "",
                0,
                self.rt,
            )
            await self._safely(handler.failed(self.rt, job, error))

    async def _safely(self, coro: Awaitable[Any]) -> None:
        # If the database is down the lease runs out and the job is retried later.
        try:
            await coro
        except Exception as exc:  # noqa: BLE001
            log.warning("workers.bookkeeping_failed", error=f"{type(exc).__name__}: {exc}")


async def start_workers(rt: Runtime, concurrency: int | None = None) -> Workers:
    workers = Workers(rt, concurrency or rt.settings.worker_concurrency)
    await workers.start()
    return workers
