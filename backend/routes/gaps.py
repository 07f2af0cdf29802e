"""Knowledge gaps: questions the assistant could not answer well, grouped, most frequent first."""

from __future__ import annotations

from sanic import Blueprint, Request

from backend.http import ok, parse_body, parse_query
from backend.openapi import doc
from backend.routes.deps import runtime_of
from backend.services.gaps import AnsweredGap, GapAnswer, GapsQuery, GapsResponse, answer_gap, knowledge_gaps

bp = Blueprint("gaps", url_prefix="/api/assistants/<assistant_id:int>")


@bp.get("/gaps")
@doc("Questions answered with the fallback or a low retrieval score, grouped by similarity", query=GapsQuery,
     response=GapsResponse)  # fmt: skip
async def list_gaps(request: Request, assistant_id: int):
    query = parse_query(request, GapsQuery)
    return ok(await knowledge_gaps(runtime_of(request), assistant_id, query))


@bp.post("/gaps/answer")
@doc("Answer a gap: its question and answer become an FAQ entry, indexed at once, and its questions leave the list",
     body=GapAnswer, response=AnsweredGap, status=201)  # fmt: skip
async def answer_a_gap(request: Request, assistant_id: int):
    answered = await answer_gap(runtime_of(request), assistant_id, parse_body(request, GapAnswer))
    return ok(answered, status=200 if answered.duplicate else 201)
