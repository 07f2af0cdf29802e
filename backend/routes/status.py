"""Operator-facing observability: Prometheus `/metrics` and the dependency status `/api/status`."""

from __future__ import annotations

import time

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sanic import Blueprint, Request
from sanic.response import raw

from backend.http import ok
from backend.openapi import doc
from backend.services.status import Status, collect_status, describe_embedded, refresh_queue_gauges

bp = Blueprint("status")
log = structlog.get_logger(__name__)


@bp.get("/metrics")
@doc("Prometheus metrics (text exposition format)", public=True)
async def metrics(request: Request):
    db = request.app.ctx.db
    if db is not None:
        try:
            await refresh_queue_gauges(db)
        except Exception as exc:  # noqa: BLE001 - a scrape still answers with what this process knows
            log.warning("metrics.queue_unavailable", error=type(exc).__name__)
    return raw(generate_latest(), content_type=CONTENT_TYPE_LATEST)


@bp.get("/api/status")
@doc(
    "Dependency status: database, every model engine (Ollama, OpenAI-compatible, embedded), each gateway, the job queue",
    response=Status,
)
async def status(request: Request):
    ctx = request.app.ctx
    runtime = getattr(ctx, "runtime", None)
    if runtime is not None:
        embedded, openai_llm = runtime.embedded.describe(), runtime.openai
    else:  # the database is not up yet: what the settings alone tell
        embedded, openai_llm = describe_embedded(ctx.settings), None
    result = await collect_status(
        ctx.settings,
        ctx.db,
        ctx.http,
        embedded=embedded,
        openai_llm=openai_llm,
        not_ready_reason=ctx.not_ready_reason,
        uptime_seconds=time.time() - ctx.started_at,
    )
    return ok(result)
