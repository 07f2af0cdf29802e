"""Ollama models: what the server has, and pulling one as a background job with progress."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backend.errors import NotFound
from backend.runtime import Runtime
from backend.store import models as store
from backend.store.assistants import assistant_models
from backend.store.jobs import enqueue_job
from backend.store.models import PULL_JOB, pull_dedup_key
from rag.errors import LLMUnavailable
from rag.llm.ollama import ollama_model_name

# `name`, `name:tag`, `namespace/name:tag` on Ollama's own registry. A third part would be a
# registry host (`10.0.0.5:8443/x/y`, `hf.co/u/m`), which makes Ollama fetch from any address
# we can reach; a namespace holds neither '.' nor ':' (as in Ollama), so it cannot be a host either.
MODEL_NAME = re.compile(r"^(?:[A-Za-z0-9_][A-Za-z0-9_-]*/)?[A-Za-z0-9_][A-Za-z0-9_.-]*(?::[A-Za-z0-9_][A-Za-z0-9_.-]*)?$")


class ModelList(BaseModel):
    reachable: bool = Field(description="False when Ollama could not be reached (then `reason` says why)")
    reason: str | None = None
    message: str | None = None
    host: str
    models: list[dict[str, Any]]
    configured_model: str
    configured_model_pulled: bool
    missing_models: list[str] = Field(description="Models assistants use that Ollama does not have")


class PullRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=200, description="name, name:tag or namespace/name:tag (no registry host)")

    @field_validator("model")
    @classmethod
    def _no_registry_host(cls, value: str) -> str:
        if not MODEL_NAME.match(value):
            raise ValueError(
                "a model of Ollama's library: name, name:tag or namespace/name:tag, e.g. llama3.2:3b "
                "(a registry host or address is not accepted)"
            )
        return value


class PullStatus(BaseModel):
    job_id: int
    model: str
    status: str = Field(description="queued, running, done or failed")
    percent: int
    error: str | None
    created_at: datetime
    updated_at: datetime


async def list_models(rt: Runtime) -> ModelList:
    """Always 200: an unreachable Ollama is reported in the body (`reachable: false`), not as an error."""
    configured = rt.settings.ollama_model
    wanted = sorted({configured, *await assistant_models(rt.db)})
    try:
        models = await rt.ollama.list_models()
    except LLMUnavailable as exc:
        return ModelList(
            reachable=False,
            reason=exc.code,
            message=exc.message,
            host=rt.settings.ollama_host,
            models=[],
            configured_model=configured,
            configured_model_pulled=False,
            missing_models=wanted,
        )
    have = {m["name"] for m in models}
    missing = [m for m in wanted if ollama_model_name(m) not in have]
    message = None
    if missing:
        message = f"Not pulled in Ollama: {', '.join(missing)}. Pull with POST /api/models/pull."
    return ModelList(
        reachable=True,
        reason="model_not_found" if missing else None,
        message=message,
        host=rt.settings.ollama_host,
        models=models,
        configured_model=configured,
        configured_model_pulled=ollama_model_name(configured) in have,
        missing_models=missing,
    )


async def start_pull(rt: Runtime, request: PullRequest) -> PullStatus:
    job_id = await enqueue_job(rt.db, PULL_JOB, {"model": request.model}, dedup_key=pull_dedup_key(request.model), max_attempts=3)
    if job_id is None:  # the same pull is already queued
        job_id = await store.queued_pull_job_id(rt.db, request.model)
    return await pull_status(rt, job_id)


async def pull_status(rt: Runtime, job_id: int) -> PullStatus:
    job = await store.find_pull_job(rt.db, job_id)
    if job is None:
        raise NotFound(f"There is no model pull with id {job_id}.", code="pull_not_found")
    return PullStatus(
        job_id=job.id,
        model=job.model,
        status=job.status,
        percent=round((job.progress or 0) * 100),
        error=job.last_error if job.status in ("failed", "queued") else None,
        created_at=job.created_at,
        updated_at=job.updated_at,
    )
