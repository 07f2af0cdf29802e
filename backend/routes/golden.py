"""Golden questions of an assistant, their runs, and the regressions across assistants."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import empty

from backend.http import Page, ok, parse_body, parse_query
from backend.openapi import doc
from backend.routes.deps import db_of
from backend.services import golden as service
from backend.services.golden import (
    GoldenFields,
    GoldenPage,
    GoldenPatch,
    GoldenQuestion,
    GoldenRun,
    GoldenRunDetail,
    GoldenRunPage,
    RegressionList,
)

bp = Blueprint("golden", url_prefix="/api")


@bp.get("/assistants/<assistant_id:int>/golden")
@doc("List the golden questions, each with its latest result", query=Page, response=GoldenPage)
async def list_golden(request: Request, assistant_id: int):
    return ok(await service.list_questions(db_of(request), assistant_id, parse_query(request, Page)))


@bp.post("/assistants/<assistant_id:int>/golden")
@doc("Add a golden question, or save one from a bot reply (`reply_id`)", body=GoldenFields, response=GoldenQuestion,
     status=201)  # fmt: skip
async def create_golden(request: Request, assistant_id: int):
    fields = parse_body(request, GoldenFields)
    return ok(await service.create_question(db_of(request), assistant_id, fields), status=201)


@bp.patch("/assistants/<assistant_id:int>/golden/<question_id:int>")
@doc("Change a golden question", body=GoldenPatch, response=GoldenQuestion)
async def update_golden(request: Request, assistant_id: int, question_id: int):
    patch = parse_body(request, GoldenPatch)
    return ok(await service.update_question(db_of(request), assistant_id, question_id, patch))


@bp.delete("/assistants/<assistant_id:int>/golden/<question_id:int>")
@doc("Delete a golden question (its past results stay in their runs)", status=204)
async def delete_golden(request: Request, assistant_id: int, question_id: int):
    await service.delete_question(db_of(request), assistant_id, question_id)
    return empty()


@bp.post("/assistants/<assistant_id:int>/golden/run")
@doc("Run every golden question through the assistant's real answer path, in the background", response=GoldenRun,
     status=202)  # fmt: skip
async def run_golden(request: Request, assistant_id: int):
    return ok(await service.request_run(db_of(request), assistant_id), status=202)


@bp.get("/assistants/<assistant_id:int>/golden/runs")
@doc("The runs, newest first", query=Page, response=GoldenRunPage)
async def list_golden_runs(request: Request, assistant_id: int):
    return ok(await service.list_runs(db_of(request), assistant_id, parse_query(request, Page)))


@bp.get("/assistants/<assistant_id:int>/golden/runs/<run_id:int>")
@doc("A run with every question's answer, sources, timings and verdict", response=GoldenRunDetail)
async def get_golden_run(request: Request, assistant_id: int, run_id: int):
    return ok(await service.get_run(db_of(request), assistant_id, run_id))


@bp.get("/golden/regressions")
@doc("Assistants whose latest golden run has questions that passed before and fail now", response=RegressionList)
async def list_regressions(request: Request):
    return ok(await service.regressions(db_of(request)))
