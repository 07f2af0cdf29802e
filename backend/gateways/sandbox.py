"""The built-in sandbox gateway: a pretend phone kept in the database, for trying everything
without WhatsApp. Its "webhooks" use the same path as a real gateway's."""

from __future__ import annotations

import hmac
import json
import secrets
import time
import uuid
from collections.abc import Mapping
from typing import Any

from databases import Database

from backend.errors import Conflict, GatewayError
from backend.gateways.base import (
    ChannelRef,
    GatewayEvent,
    InboundMessage,
    SentMessage,
    SessionState,
    SessionStatusEvent,
    UnknownEvent,
)
from backend.gateways.ids import from_unix, phone_from_jid
from backend.store import channels as store

SECRET_HEADER = "x-sandbox-secret"
_STATES = {
    "scan_qr": ("pending_qr", "scan_qr"),
    "working": ("ready", "working"),
    "logged_out": ("disconnected", "logged_out"),
    "stopped": ("disconnected", "stopped"),
}


def _state(session: dict | None) -> SessionState:
    if session is None:
        return SessionState(status="disconnected", detail="stopped")
    status, detail = _STATES[session["state"]]
    return SessionState(
        status=status,  # type: ignore[arg-type]
        detail=detail,
        qr=session["qr"] if status == "pending_qr" else None,
        phone_number=session["phone_number"] if status == "ready" else None,
    )


def _new_qr(channel: ChannelRef) -> str:
    # Shaped like a WhatsApp pairing string; the console renders it as a QR code.
    return f"2@sandbox-{channel.id}-{secrets.token_urlsafe(18)},{secrets.token_urlsafe(24)}"


class SandboxGateway:
    name = "sandbox"

    def __init__(self, db: Database) -> None:
        self.db = db

    async def start_session(self, channel: ChannelRef, webhook_url: str) -> SessionState:
        return _state(await store.upsert_sandbox_session(self.db, channel.id, "scan_qr", _new_qr(channel), None))

    async def get_state(self, channel: ChannelRef) -> SessionState:
        return _state(await store.find_sandbox_session(self.db, channel.id))

    async def _require_working(self, channel: ChannelRef) -> dict:
        session = await store.find_sandbox_session(self.db, channel.id)
        if session is None or session["state"] != "working":
            raise GatewayError("The sandbox phone is not connected: scan its QR code first.", code="gateway_not_connected")
        return session

    async def send_text(self, channel: ChannelRef, chat_id: str, text: str) -> SentMessage:
        await self._require_working(channel)
        provider_id = f"sandbox-out-{uuid.uuid4().hex}"
        await store.insert_outbox(self.db, channel.id, provider_id, chat_id, text)
        return SentMessage(provider_message_id=provider_id, status="sent")

    async def find_recent_outgoing(self, channel: ChannelRef, chat_id: str, text: str) -> str | None:
        return await store.find_outbox_message(self.db, channel.id, chat_id, text)

    async def mark_seen(self, channel: ChannelRef, chat_id: str, message_ids: list[str]) -> None:
        await self._require_working(channel)

    async def set_typing(self, channel: ChannelRef, chat_id: str, typing: bool) -> None:
        await self._require_working(channel)

    async def logout(self, channel: ChannelRef) -> None:
        session = await store.find_sandbox_session(self.db, channel.id)
        phone = session["phone_number"] if session else None
        await store.upsert_sandbox_session(self.db, channel.id, "logged_out", None, phone)

    async def restart(self, channel: ChannelRef, webhook_url: str) -> SessionState:
        return await self.start_session(channel, webhook_url)

    async def delete_session(self, channel: ChannelRef) -> None:
        await store.delete_sandbox_session(self.db, channel.id)

    # -- what the pretend phone does; each returns the webhook it would send --

    async def scan(self, channel: ChannelRef, phone_number: str) -> bytes:
        session = await store.find_sandbox_session(self.db, channel.id)
        if session is None or session["state"] != "scan_qr":
            raise Conflict("There is no QR code to scan: reconnect the channel first.", code="no_qr")
        await store.upsert_sandbox_session(self.db, channel.id, "working", None, phone_number)
        return self.webhook_body(channel, "session.status", {"status": "working", "phone_number": phone_number})

    async def inbound(
        self, channel: ChannelRef, sender: str, text: str, message_id: str | None, *, name: str | None = None
    ) -> bytes:
        session = await store.find_sandbox_session(self.db, channel.id)
        if session is None or session["state"] != "working":
            raise Conflict("The sandbox phone is not connected: scan its QR code first.", code="not_connected")
        payload = {
            "name": name,
            "id": message_id or f"sandbox-in-{uuid.uuid4().hex}",
            "from": sender,
            "text": text,
            "timestamp": int(time.time()),
        }
        return self.webhook_body(channel, "message", payload)

    @staticmethod
    def webhook_body(channel: ChannelRef, event: str, payload: dict[str, Any]) -> bytes:
        return json.dumps({"event": event, "session": channel.session_name, "payload": payload}).encode()

    @staticmethod
    def webhook_headers(channel: ChannelRef) -> dict[str, str]:
        return {"content-type": "application/json", SECRET_HEADER: channel.webhook_secret}

    # -- webhooks --

    def check_webhook_headers(self, channel: ChannelRef, headers: Mapping[str, str]) -> bool:
        given = headers.get(SECRET_HEADER) or headers.get(SECRET_HEADER.title()) or ""
        return bool(given) and hmac.compare_digest(given.encode(), channel.webhook_secret.encode())

    def verify_webhook(self, channel: ChannelRef, headers: Mapping[str, str], body: bytes) -> bool:
        return self.check_webhook_headers(channel, headers)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[GatewayEvent]:
        data = json.loads(body)
        if not isinstance(data, dict) or not isinstance(data.get("event"), str):
            raise ValueError("a sandbox webhook is an object with an 'event'")
        payload = data.get("payload")
        if not isinstance(payload, dict):
            raise ValueError("a sandbox webhook has an object 'payload'")
        event = data["event"]
        if event == "session.status":
            state = payload.get("status")
            if state not in _STATES:
                raise ValueError(f"unknown sandbox session status {state!r}")
            return [
                SessionStatusEvent(_state({"state": state, "qr": payload.get("qr"), "phone_number": payload.get("phone_number")}))
            ]
        if event == "message":
            message_id, sender = payload.get("id"), payload.get("from")
            if not isinstance(message_id, str) or not message_id or not isinstance(sender, str) or not sender:
                raise ValueError("a sandbox message needs a string 'id' and 'from'")
            return [
                InboundMessage(
                    provider_message_id=message_id,
                    chat_id=sender,
                    sender_id=sender,
                    text=str(payload.get("text") or ""),
                    timestamp=from_unix(payload.get("timestamp")),
                    sender_phone=phone_from_jid(sender),
                    sender_name=payload.get("name"),
                )
            ]
        return [UnknownEvent(name=event, raw=data)]
