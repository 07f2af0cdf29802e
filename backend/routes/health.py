"""Liveness, readiness and the OpenAPI document."""

from __future__ import annotations

import asyncio

from sanic import Blueprint, Request
from sanic.response import json

from backend.database import current_revision, head_revision
from backend.openapi import build_openapi, doc

bp = Blueprint("health")


@bp.get("/healthz")
@doc("Liveness: the process is up", public=True)
async def healthz(request: Request):
    return json({"status": "ok"})


@bp.get("/readyz")
@doc("Readiness: database reachable and migrations at head", public=True)
async def readyz(request: Request):
    reason = request.app.ctx.not_ready_reason
    db = request.app.ctx.db
    if reason is None and db is not None:
        try:
            revision = await asyncio.wait_for(current_revision(db), timeout=3)
        except Exception as exc:  # any failure here means "not ready"
            reason = f"database unreachable ({type(exc).__name__})"
        else:
            if revision != head_revision():
                reason = f"migrations not at head (database at {revision}, code at {head_revision()})"
    if reason:
        return json({"status": "unavailable", "reason": reason}, status=503)
    return json({"status": "ready"})


@bp.get("/openapi.json")
@doc("This document", public=True)
async def openapi(request: Request):
    return json(build_openapi(request.app))
