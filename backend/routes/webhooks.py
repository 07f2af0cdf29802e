"""Routes: gateway webhooks, authenticated per channel (HMAC, secret header or JWT)."""

from __future__ import annotations

from sanic import Blueprint, Request

from backend.errors import NotFound
from backend.gateways import PROVIDERS
from backend.http import ok
from backend.openapi import doc
from backend.routes.deps import runtime_of
from backend.services import channels as service
from backend.services.channels import WebhookResult

bp = Blueprint("webhooks", url_prefix="/webhooks")


@bp.post("/<provider:str>/<channel_id:int>")
@doc("A WhatsApp gateway's event for one channel", response=WebhookResult, public=True)
async def receive_webhook(request: Request, provider: str, channel_id: int):
    if provider not in PROVIDERS:
        raise NotFound(f"Unknown gateway provider '{provider}'.", code="unknown_provider")
    result = await service.handle_webhook(
        runtime_of(request), provider, channel_id, request.headers, request.body or b"", request_id=request.ctx.request_id
    )
    return ok(result)
