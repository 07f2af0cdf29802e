"""Routes: gateway webhooks, authenticated per channel (HMAC, JWT or secret header).

A streaming route: Sanic does not read the body first, so a caller that cannot prove who it is
from its headers is refused before we hold any of it, and the body is read up to its provider's limit, within
WEBHOOK_BODIES_MB of bodies being read at once.
"""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import text

from backend.errors import NotFound
from backend.gateways import PROVIDERS
from backend.http import ok, read_body, request_id
from backend.openapi import doc
from backend.routes.deps import runtime_of
from backend.services import webhooks as service
from backend.services.webhooks import WebhookResult

bp = Blueprint("webhooks", url_prefix="/webhooks")


@bp.post("/<provider:str>/<channel_id:int>", stream=True)
@doc("A WhatsApp gateway's event for one channel", response=WebhookResult, public=True)
async def receive_webhook(request: Request, provider: str, channel_id: int):
    if provider not in PROVIDERS:
        raise NotFound(f"Unknown gateway provider '{provider}'.", code="unknown_provider")
    rt = runtime_of(request)
    channel = await service.admit_webhook(rt, provider, channel_id, request.headers)
    limit, setting = service.body_limit(rt, provider)
    declared = request.headers.get("content-length", "")
    with rt.webhook_bodies.reserve(min(int(declared), limit) if declared.isdigit() else limit):
        body = await read_body(request, limit, setting)
    result = await service.handle_webhook(
        rt, provider, channel_id, request.headers, body, request_id=request_id(request), channel=channel
    )
    return ok(result)


@bp.get("/<provider:str>/<channel_id:int>")
@doc(
    "A gateway's check of its callback URL (the Cloud API's `hub.challenge`, answered as text when `hub.verify_token` matches)",
    public=True,
)
async def verify_webhook(request: Request, provider: str, channel_id: int):
    if provider not in PROVIDERS:
        raise NotFound(f"Unknown gateway provider '{provider}'.", code="unknown_provider")
    params = {key: request.args.get(key) for key in request.args}
    return text(await service.verify_subscription(runtime_of(request), provider, channel_id, params))
