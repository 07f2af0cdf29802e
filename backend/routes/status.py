"""Operator-facing observability: Prometheus `/metrics` and the dependency status `/api/status`."""

from __future__ import annotations

import hmac
import time

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sanic import Blueprint, Request
from sanic.response import raw

from backend.errors import Unauthorized
from backend.http import ok
from backend.openapi import doc
from backend.services.status import Status, collect_status, describe_embedded, model_statuses, refresh_database_gauges

bp = Blueprint("status")
log = structlog.get_logger(__name__)


@bp.get("/metrics")
@doc("Prometheus metrics (text exposition format); with METRICS_TOKEN set, `Authorization: Bearer <it>`", public=True)
async def metrics(request: Request):
    _check_metrics_token(request)
    db = request.app.ctx.db
    if db is not None:
        try:
            await refresh_database_gauges(db)
        except Exception as exc:  # a scrape still answers with what this process knows
            log.warning("metrics.database_unavailable", error=type(exc).__name__)
    return raw(generate_latest(), content_type=CONTENT_TYPE_LATEST)


def _check_metrics_token(request: Request) -> None:
    expected = request.app.ctx.settings.metrics_token.get_secret_value()
    if not expected:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise Unauthorized("Metrics need 'Authorization: Bearer <METRICS_TOKEN>'.", code="bad_metrics_token")


@bp.get("/api/status")
@doc(
    "Dependency status: database, every model engine (Ollama, OpenAI-compatible, embedded), each gateway, the job queue, "
    "the models loaded at start",
    response=Status,
)
async def status(request: Request):
    ctx = request.app.ctx
    runtime = getattr(ctx, "runtime", None)
    if runtime is not None:
        embedded, openai_llm = runtime.embedded.describe(), runtime.openai
        models = model_statuses(runtime.model_loads, runtime.transcriber.describe())
    else:  # the database is not up yet: what the settings alone tell
        embedded, openai_llm, models = describe_embedded(ctx.settings), None, []
    result = await collect_status(
        ctx.settings,
        ctx.db,
        ctx.http,
        embedded=embedded,
        openai_llm=openai_llm,
        not_ready_reason=ctx.not_ready_reason,
        uptime_seconds=time.time() - ctx.started_at,
        loaded_models=models,
    )
    return ok(result)
