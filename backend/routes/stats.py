"""Numbers for the overview: messages per day, reply latency, failures."""

from __future__ import annotations

from sanic import Blueprint, Request

from backend.http import ok, parse_query
from backend.openapi import doc
from backend.routes.deps import db_of
from backend.services import conversations as service
from backend.services.conversations import Stats, StatsQuery

bp = Blueprint("stats", url_prefix="/api/stats")


@bp.get("")
@doc(
    "Messages per day, median/p90 reply latency, failed, unanswered and degraded counts, who waits for a person",
    query=StatsQuery,
    response=Stats,
)
async def get_stats(request: Request):
    return ok(await service.stats(db_of(request), parse_query(request, StatsQuery)))
