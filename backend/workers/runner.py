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
from collections.abc import Awaitable, Mapping
from types import MappingProxyType
from typing import Any

import asyncpg
import structlog

from backend.database import is_connection_error
from backend.errors import AppError, GatewayError
from backend.runtime import Runtime
from backend.store import jobs as store
from backend.store import media as media_store
from backend.workers import golden, indexing, replies
from backend.workers.jobs import REASONS, Job, JobFailure, JobHandler, Lease, PermanentFailure, RetryLater, describe
from backend.workers.reconcile import reconcile_forever

log = structlog.get_logger(__name__)

# Every kind of job these workers take, and its handler.
HANDLERS: Mapping[str, JobHandler] = MappingProxyType({**indexing.HANDLERS, **replies.HANDLERS, **golden.HANDLERS})

LOST = describe("worker_lost")


def reason_of(exc: BaseException) -> tuple[str, str | None]:
    """The reason code (and a sentence for a person, if the handler wrote one) for a failure."""
    if isinstance(exc, JobFailure):
        return exc.reason, exc.message
    # Our own errors' messages are written for the people who read the API's answers.
    if isinstance(exc, AppError) and exc.code in REASONS:
        return exc.code, exc.message
    if isinstance(exc, GatewayError):
        return "gateway_error", exc.message
    if isinstance(exc, TimeoutError):
        return "timed_out", None
    if is_connection_error(exc):
        return "database_unreachable", None
    return "internal_error", None


def backoff_seconds(attempt: int) -> float:
    return min(2.0 ** (attempt - 1), 60.0)


class Workers:
    """N claim loops in this process plus one listener connection, a reaper and channel
    reconciliation (so it runs wherever workers run, and only there)."""

    def __init__(self, rt: Runtime, concurrency: int, handlers: Mapping[str, JobHandler] = HANDLERS) -> None:
        self.rt = rt
        self.concurrency = concurrency
        self.handlers = handlers
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
        if self.rt.settings.channel_reconcile_seconds > 0:
            self.tasks.append(loop.create_task(reconcile_forever(self.rt, self.rt.settings.channel_reconcile_seconds)))
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
            except Exception as exc:
                log.warning("workers.listen_failed", error=type(exc).__name__)
            await asyncio.sleep(1)

    async def _reap(self) -> None:
        """Reclaim jobs of dead workers; prune old finished ones and customers' old files (cheap when there are none)."""
        settings = self.rt.settings
        while not self.stopping:
            try:
                for job in await store.reclaim_expired_jobs(self.rt.db, LOST):
                    log.warning("job.reclaimed", job=job.id, kind=job.kind, status=job.status)
                    if job.status == "failed":
                        await self._call_failed(job, job.last_error or LOST)
                    else:
                        self.wake_one()
                pruned = await store.prune_finished_jobs(
                    self.rt.db, settings.job_retention_days, settings.job_failed_retention_days
                )
                if pruned:
                    log.info("jobs.pruned", count=pruned)
                if forgotten := await media_store.forget_old_files(self.rt.db, settings.media_retention_days):
                    log.info("media.files_deleted", count=forgotten)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
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
            except Exception as exc:
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

    async def _run(self, job: Job, worker_id: str) -> None:
        handler = self.handlers[job.kind]
        started = time.perf_counter()
        bound = log.bind(
            job=job.id,
            kind=job.kind,
            attempt=job.attempts,
            **({"request_id": job.payload["request_id"]} if "request_id" in job.payload else {}),
        )
        lease = Lease(db=self.rt.db, job_id=job.id, worker_id=worker_id, seconds=self.rt.settings.job_lease_seconds)
        try:
            await handler.run(self.rt, job, lease)
        except asyncio.CancelledError:
            raise  # shutting down: the lease expires and another worker takes it
        except Exception as exc:  # every failure is retried or recorded
            reason, message = reason_of(exc)
            # The person reads the reason; the log keeps what happened.
            detail = {"reason": reason, "error": f"{type(exc).__name__}: {exc}"}
            if exc.__cause__ is not None:
                detail["cause"] = f"{type(exc.__cause__).__name__}: {exc.__cause__}"
            if isinstance(exc, PermanentFailure) or job.attempts >= job.max_attempts:
                await self._give_up(job, worker_id, handler, describe(reason, message), bound, detail)
                return
            delay = exc.delay if isinstance(exc, RetryLater) and exc.delay is not None else backoff_seconds(job.attempts)
            bound.warning("job.retry", retry_in_s=delay, **detail)
            if not isinstance(exc, JobFailure) and not is_connection_error(exc):
                bound.debug("job.traceback", traceback=traceback.format_exc())
            error = describe(reason, message, retrying=True)
            await self._safely(store.retry_job(self.rt.db, job.id, worker_id, error, delay))
        else:
            await self._safely(store.finish_job(self.rt.db, job.id, worker_id))
            bound.info("job.done", ms=round((time.perf_counter() - started) * 1000, 1))

    async def _give_up(self, job: Job, worker_id: str, handler: JobHandler, error: str, bound, detail: dict) -> None:
        bound.error("job.failed", **detail)
        await self._safely(store.fail_job(self.rt.db, job.id, worker_id, error))
        await self._safely(handler.failed(self.rt, job, error))

    async def _call_failed(self, job: Job, error: str) -> None:
        handler = self.handlers.get(job.kind)
        if handler is not None:
            await self._safely(handler.failed(self.rt, job, error))

    async def _safely(self, coro: Awaitable[Any]) -> None:
        # If the database is down the lease runs out and the job is retried later.
        try:
            await coro
        except Exception as exc:
            log.warning("workers.bookkeeping_failed", error=f"{type(exc).__name__}: {exc}")


async def start_workers(rt: Runtime, concurrency: int | None = None) -> Workers:
    workers = Workers(rt, concurrency or rt.settings.worker_concurrency)
    await workers.start()
    return workers
