"""Answers and retrieval for an assistant, without WhatsApp (the console's playground)."""

from __future__ import annotations

from sanic import Blueprint, Request

from backend.http import ok, parse_body
from backend.openapi import doc
from backend.routes.deps import runtime_of
from backend.services import knowledge
from backend.services.answers import GenerateRequest, GenerateResponse, answer_question, to_response
from backend.services.assistants import get_assistant
from backend.services.knowledge import SearchRequest, SearchResponse

bp = Blueprint("answers", url_prefix="/api/assistants/<assistant_id:int>")


@bp.post("/generate")
@doc("Answer a question from the assistant's documents (degraded, with the reason, when Ollama fails)",
     body=GenerateRequest, response=GenerateResponse)  # fmt: skip
async def generate(request: Request, assistant_id: int):
    body = parse_body(request, GenerateRequest)
    rt = runtime_of(request)
    assistant = await get_assistant(rt.db, assistant_id)
    answer = await answer_question(rt, assistant, body.question, [t.model_dump() for t in body.history], language=body.language)
    return ok(to_response(answer))


@bp.post("/search")
@doc("Retrieve the best passages (hybrid by default) without generating", body=SearchRequest, response=SearchResponse)
async def search(request: Request, assistant_id: int):
    body = parse_body(request, SearchRequest)
    return ok(await knowledge.search(runtime_of(request), assistant_id, body))
