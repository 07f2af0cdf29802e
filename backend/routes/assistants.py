"""Assistants CRUD."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import empty

from backend.http import Page, ok, page_of, parse_body, parse_query
from backend.openapi import doc
from backend.routes.deps import db_of, settings_of
from backend.services import assistants as service
from backend.services.assistants import Assistant, AssistantFields, AssistantPage, AssistantPatch, LanguageCatalog

bp = Blueprint("assistants", url_prefix="/api/assistants")


@bp.get("")
@doc("List assistants", query=Page, response=AssistantPage)
async def list_assistants(request: Request):
    page = parse_query(request, Page)
    items, total = await service.list_assistants(db_of(request), page)
    return ok(page_of(items, total, page))


@bp.post("")
@doc("Create an assistant", body=AssistantFields, response=Assistant, status=201, admin=True)
async def create_assistant(request: Request):
    fields = parse_body(request, AssistantFields)
    assistant = await service.create_assistant(db_of(request), fields, settings_of(request).ollama_model)
    return ok(assistant, status=201)


@bp.get("/languages")
@doc("The languages an assistant can serve, with their shipped fixed texts and command words", response=LanguageCatalog)
async def list_languages(request: Request):
    return ok(service.language_catalog())


@bp.get("/<assistant_id:int>")
@doc("Read an assistant", response=Assistant)
async def get_assistant(request: Request, assistant_id: int):
    return ok(await service.get_assistant(db_of(request), assistant_id))


@bp.patch("/<assistant_id:int>")
@doc("Change some fields of an assistant", body=AssistantPatch, response=Assistant, admin=True)
async def update_assistant(request: Request, assistant_id: int):
    patch = parse_body(request, AssistantPatch)
    return ok(await service.update_assistant(db_of(request), assistant_id, patch))


@bp.delete("/<assistant_id:int>")
@doc("Delete an assistant with its documents and channels", status=204, admin=True)
async def delete_assistant(request: Request, assistant_id: int):
    await service.delete_assistant(db_of(request), assistant_id)
    return empty()
