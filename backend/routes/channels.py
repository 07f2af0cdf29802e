"""Routes: WhatsApp connections (create, read, pair by code, reconnect, log out, delete)."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import empty

from backend.http import ok, parse_body, parse_query
from backend.openapi import doc
from backend.routes.deps import runtime_of
from backend.services import channels as service
from backend.services.channels import Channel, ChannelCreate, ChannelPage, ChannelQuery, PairingCode, PairingRequest

bp = Blueprint("channels", url_prefix="/api/channels")


@bp.post("")
@doc("Connect an assistant to WhatsApp: starts pairing (pending_qr with a QR)", body=ChannelCreate, response=Channel, status=201,
     admin=True)  # fmt: skip
async def create_channel(request: Request):
    body = parse_body(request, ChannelCreate)
    return ok(await service.create_channel(runtime_of(request), body), status=201)


@bp.get("")
@doc("List channels (optionally of one assistant)", query=ChannelQuery, response=ChannelPage)
async def list_channels(request: Request):
    query = parse_query(request, ChannelQuery)
    return ok(await service.list_channels(runtime_of(request), query))


@bp.get("/<channel_id:int>")
@doc("Read a channel: status, detail, QR while pairing, number, last error", response=Channel)
async def get_channel(request: Request, channel_id: int):
    return ok(await service.read_channel(runtime_of(request), channel_id))


@bp.post("/<channel_id:int>/reconnect")
@doc("Start pairing again (new QR) or resume the session", response=Channel, admin=True)
async def reconnect_channel(request: Request, channel_id: int):
    return ok(await service.reconnect_channel(runtime_of(request), channel_id))


@bp.post("/<channel_id:int>/pairing-code")
@doc("Link by phone number instead of the QR: the 8-character code to type on that phone (WAHA, Evolution)",
     body=PairingRequest, response=PairingCode, admin=True)  # fmt: skip
async def request_pairing_code(request: Request, channel_id: int):
    body = parse_body(request, PairingRequest)
    return ok(await service.request_pairing_code(runtime_of(request), channel_id, body))


@bp.post("/<channel_id:int>/logout")
@doc("Unpair the phone; the channel stays, disconnected, ready to pair again", response=Channel, admin=True)
async def logout_channel(request: Request, channel_id: int):
    return ok(await service.logout_channel(runtime_of(request), channel_id))


@bp.delete("/<channel_id:int>")
@doc("Delete a channel and its gateway session", status=204, admin=True)
async def delete_channel(request: Request, channel_id: int):
    await service.delete_channel(runtime_of(request), channel_id)
    return empty()
