"""Ollama models: list (always 200, `reachable: false` when Ollama is down) and pull with progress."""

from __future__ import annotations

from sanic import Blueprint, Request

from backend.http import ok, parse_body
from backend.openapi import doc
from backend.routes.deps import runtime_of
from backend.services import models as service
from backend.services.models import ModelList, PullRequest, PullStatus

bp = Blueprint("models", url_prefix="/api/models")


@bp.get("")
@doc("Models Ollama has, and which models assistants need that it lacks", response=ModelList)
async def list_models(request: Request):
    return ok(await service.list_models(runtime_of(request)))


@bp.post("/pull")
@doc("Start pulling a model in the background; poll GET /api/models/pull/{job_id}", body=PullRequest, response=PullStatus,
     status=202, admin=True)  # fmt: skip
async def pull_model(request: Request):
    body = parse_body(request, PullRequest)
    return ok(await service.start_pull(runtime_of(request), body), status=202)


@bp.get("/pull/<job_id:int>")
@doc("Progress of a model pull", response=PullStatus)
async def pull_status(request: Request, job_id: int):
    return ok(await service.pull_status(runtime_of(request), job_id))
