"""Conversations: contacts, their threads, human takeover (pause/resume) and operator replies."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import raw

from backend.http import Page, ok, parse_body, parse_query
from backend.openapi import doc
from backend.routes.deps import db_of, runtime_of
from backend.services import conversations as service
from backend.services.conversations import (
    Contact,
    ContactChange,
    ContactPage,
    ContactQuery,
    Message,
    OperatorReply,
    PauseRequest,
    Thread,
)

bp = Blueprint("contacts", url_prefix="/api/contacts")


@bp.get("")
@doc("Contacts with their last message (filter by assistant, channel, text, status)", query=ContactQuery, response=ContactPage)
async def list_contacts(request: Request):
    query = parse_query(request, ContactQuery)
    return ok(await service.list_contacts(db_of(request), query))


@bp.get("/<contact_id:int>")
@doc("One contact: who owns the conversation, pause and opt-out state", response=Contact)
async def get_contact(request: Request, contact_id: int):
    return ok(await service.get_contact(db_of(request), contact_id))


@bp.patch("/<contact_id:int>")
@doc(
    "Set the customer's language (kept against detection), or null to give it back to detection",
    body=ContactChange,
    response=Contact,
)
async def change_contact(request: Request, contact_id: int):
    change = parse_body(request, ContactChange)
    return ok(await service.change_contact(db_of(request), contact_id, change))


@bp.get("/<contact_id:int>/messages")
@doc("A contact's thread, both ways, oldest first (pages count back from the newest)", query=Page, response=Thread)
async def get_thread(request: Request, contact_id: int):
    page = parse_query(request, Page)
    return ok(await service.get_thread(db_of(request), contact_id, page))


@bp.get("/<contact_id:int>/messages/<message_id:int>/media")
@doc("A message's file (a voice note, an image...), to play or view")
async def get_message_file(request: Request, contact_id: int, message_id: int):
    data, mimetype = await service.message_file(db_of(request), contact_id, message_id)
    # Never rendered as a page of ours: a customer's file is data, whatever it claims to be.
    return raw(data, content_type=mimetype, headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"})


@bp.post("/<contact_id:int>/pause")
@doc("Take the conversation over: the bot stays quiet for this contact", body=PauseRequest, response=Contact)
async def pause_contact(request: Request, contact_id: int):
    body = parse_body(request, PauseRequest) if (request.body or b"").strip() else PauseRequest()
    return ok(await service.pause_contact(db_of(request), contact_id, body.minutes))


@bp.post("/<contact_id:int>/resume")
@doc("Give the conversation back to the bot", response=Contact)
async def resume_contact(request: Request, contact_id: int):
    return ok(await service.resume_contact(db_of(request), contact_id))


@bp.post("/<contact_id:int>/reply")
@doc(
    "Send a message as an operator (pauses the bot for this contact); 201 sent, 202 still queued",
    body=OperatorReply,
    response=Message,
    status=201,
)
async def operator_reply(request: Request, contact_id: int):
    body = parse_body(request, OperatorReply)
    message, confirmed = await service.operator_reply(runtime_of(request), contact_id, body)
    return ok(message, status=201 if confirmed else 202)
