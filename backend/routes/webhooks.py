"""Routes: gateway webhooks, authenticated per channel (HMAC, JWT or secret header).

A streaming route: Sanic does not read the body first, so a caller that cannot prove who it is
from its headers is refused before we hold any of it, and the body is read up to WEBHOOK_MAX_MB.
"""

from __future__ import annotations

from sanic import Blueprint, Request

from backend.errors import NotFound
from backend.gateways import PROVIDERS
from backend.http import ok, read_body
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
    body = await read_body(request, rt.settings.webhook_max_bytes, "WEBHOOK_MAX_MB")
    result = await service.handle_webhook(
        rt, provider, channel_id, request.headers, body, request_id=request.ctx.request_id, channel=channel
    )
    return ok(result)
