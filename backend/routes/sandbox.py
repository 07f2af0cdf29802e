"""Routes: the sandbox gateway's pretend phone (scan the QR, write as a customer, read the outbox)."""

from __future__ import annotations

from sanic import Blueprint, Request

from backend.http import Page, ok, parse_body, parse_query, request_id
from backend.openapi import doc
from backend.routes.deps import db_of, runtime_of
from backend.services import sandbox as service
from backend.services.channels import Channel
from backend.services.sandbox import OutboxPage, SandboxDelivery, SandboxMessage, SandboxReaction, SandboxScan

bp = Blueprint("sandbox", url_prefix="/api/channels/<channel_id:int>/sandbox")


@bp.post("/scan")
@doc("Scan the sandbox QR: the channel becomes ready as this number", body=SandboxScan, response=Channel, admin=True)
async def sandbox_scan(request: Request, channel_id: int):
    body = parse_body(request, SandboxScan) if (request.body or b"").strip() else SandboxScan()
    return ok(await service.sandbox_scan(runtime_of(request), channel_id, body))


@bp.post("/messages")
@doc("Write to the sandbox number as a customer (delivered like a webhook)", body=SandboxMessage, response=SandboxDelivery)
async def sandbox_message(request: Request, channel_id: int):
    body = parse_body(request, SandboxMessage)
    delivery = await service.sandbox_message(runtime_of(request), channel_id, body, request_id=request_id(request))
    return ok(delivery)


@bp.post("/reactions")
@doc(
    "React as the customer to one of the bot's replies (feedback; never answered)", body=SandboxReaction, response=SandboxDelivery
)
async def sandbox_reaction(request: Request, channel_id: int):
    body = parse_body(request, SandboxReaction)
    return ok(await service.sandbox_reaction(runtime_of(request), channel_id, body))


@bp.get("/outbox")
@doc("What the sandbox gateway was asked to send", query=Page, response=OutboxPage)
async def sandbox_outbox(request: Request, channel_id: int):
    page = parse_query(request, Page)
    return ok(await service.sandbox_outbox(db_of(request), channel_id, page))
