"""The built-in sandbox gateway: a pretend phone kept in the database, for trying everything
without WhatsApp. Its "webhooks" use the same path as a real gateway's.

Media: the pretend phone sends a file inside its message webhook, as base64 (the way Evolution
does with base64 webhooks), so the sandbox stores no files of its own: whoever keeps the message
keeps its media (MediaRef.inline_base64) and `download_media` decodes it. A pairing code is a
fixed demo code per channel ("SAND-0042" for channel 42); `scan` then links the pretend phone."""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, get_args

from databases import Database

from backend.errors import Conflict, GatewayError, Invalid
from backend.gateways.base import (
    ChannelRef,
    GatewayEvent,
    InboundMessage,
    MediaKind,
    MediaRef,
    ReactionEvent,
    SentMessage,
    SessionState,
    SessionStatusEvent,
    UnknownEvent,
)
from backend.gateways.errors import NotSupported
from backend.gateways.headers import header
from backend.gateways.ids import from_unix, normalise_phone, phone_from_jid
from backend.gateways.media import decode_inline, kind_from_mimetype
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


def _media(payload: Mapping, message_id: str, text: str) -> MediaRef | None:
    media = payload.get("media")
    if media is None:
        return None
    if not isinstance(media, dict) or not isinstance(media.get("base64"), str):
        raise ValueError("a sandbox message's 'media' is an object with 'base64'")
    mimetype = media.get("mimetype") if isinstance(media.get("mimetype"), str) else None
    kind = media.get("kind") if media.get("kind") in get_args(MediaKind) else kind_from_mimetype(mimetype)
    return MediaRef(
        kind=kind,
        handle=message_id,
        mimetype=mimetype,
        filename=media.get("filename") if isinstance(media.get("filename"), str) else None,
        caption=text or None,
        size=media.get("size") if isinstance(media.get("size"), int) else None,
        inline_base64=media["base64"],
    )


class SandboxGateway:
    name = "sandbox"
    reply_window: timedelta | None = None

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

    async def send_text(self, channel: ChannelRef, chat_id: str, text: str, reply_to: str | None = None) -> SentMessage:
        # The outbox keeps no quote: `reply_to` is accepted, and the pretend phone shows the text alone.
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

    async def download_media(self, channel: ChannelRef, media: MediaRef, max_bytes: int) -> bytes:
        """The file the pretend phone sent inside its webhook."""
        if not media.downloadable or media.inline_base64 is None:
            raise NotSupported("The sandbox sends files inside its message webhook, and this message carried none.")
        return decode_inline(media.inline_base64, max_bytes, source="the sandbox")

    async def request_pairing_code(self, channel: ChannelRef, phone_number: str) -> str:
        """A fixed demo code; type nothing anywhere: `scan` (the console's "phone") links it."""
        if normalise_phone(phone_number) is None:
            raise Invalid(f"{phone_number[:40]!r} is not a phone number (digits with the country code).", code="invalid_phone")
        session = await store.find_sandbox_session(self.db, channel.id)
        if session is None or session["state"] != "scan_qr":
            raise Conflict("The sandbox gives a pairing code only while it waits for a scan: reconnect first.", code="no_qr")
        return f"SAND-{channel.id % 10000:04d}"

    def verification_challenge(self, channel: ChannelRef, params: Mapping[str, str]) -> str | None:
        return None

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
        self,
        channel: ChannelRef,
        sender: str,
        text: str,
        message_id: str | None,
        *,
        name: str | None = None,
        media: bytes | None = None,
        mimetype: str | None = None,
        filename: str | None = None,
        kind: MediaKind | None = None,
    ) -> bytes:
        """A customer's message; with `media`, the file travels inside the webhook (see the module)."""
        session = await store.find_sandbox_session(self.db, channel.id)
        if session is None or session["state"] != "working":
            raise Conflict("The sandbox phone is not connected: scan its QR code first.", code="not_connected")
        payload: dict[str, Any] = {
            "name": name,
            "id": message_id or f"sandbox-in-{uuid.uuid4().hex}",
            "from": sender,
            "text": text,
            "timestamp": int(time.time()),
        }
        if media is not None:
            payload["media"] = {
                "kind": kind or kind_from_mimetype(mimetype),
                "mimetype": mimetype,
                "filename": filename,
                "size": len(media),
                "base64": base64.b64encode(media).decode(),
            }
        return self.webhook_body(channel, "message", payload)

    async def react(self, channel: ChannelRef, sender: str, message_id: str, emoji: str) -> bytes:
        """The customer reacts to one of our messages ("" takes the reaction back)."""
        await self._require_working(channel)
        payload = {"id": f"sandbox-in-{uuid.uuid4().hex}", "from": sender, "message_id": message_id, "emoji": emoji}
        return self.webhook_body(channel, "message.reaction", {**payload, "timestamp": int(time.time())})

    @staticmethod
    def webhook_body(channel: ChannelRef, event: str, payload: dict[str, Any]) -> bytes:
        return json.dumps({"event": event, "session": channel.session_name, "payload": payload}).encode()

    @staticmethod
    def webhook_headers(channel: ChannelRef) -> dict[str, str]:
        return {"content-type": "application/json", SECRET_HEADER: channel.webhook_secret}

    # -- webhooks --

    def check_webhook_headers(self, channel: ChannelRef, headers: Mapping[str, str]) -> bool:
        given = header(headers, SECRET_HEADER)
        return bool(given) and hmac.compare_digest(given.encode(), channel.webhook_secret.encode())

    def verify_webhook(self, channel: ChannelRef, headers: Mapping[str, str], body: bytes) -> bool:
        return self.check_webhook_headers(channel, headers)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes, channel: ChannelRef | None = None) -> list[GatewayEvent]:
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
            text = str(payload.get("text") or "")
            media = _media(payload, message_id, text)
            return [
                InboundMessage(
                    provider_message_id=message_id,
                    chat_id=sender,
                    sender_id=sender,
                    text=text,
                    timestamp=from_unix(payload.get("timestamp")),
                    sender_phone=phone_from_jid(sender),
                    sender_name=payload.get("name"),
                    has_media=media is not None,
                    media_type=(media.mimetype or media.kind) if media else None,
                    media=media,
                )
            ]
        if event == "message.reaction":
            sender, target, emoji = payload.get("from"), payload.get("message_id"), payload.get("emoji")
            if not all(isinstance(value, str) for value in (sender, target, emoji)) or not sender or not target:
                raise ValueError("a sandbox reaction needs string 'from', 'message_id' and 'emoji'")
            return [
                ReactionEvent(
                    reacted_to=target,
                    emoji=emoji,
                    chat_id=sender,
                    sender_id=sender,
                    provider_message_id=payload.get("id") if isinstance(payload.get("id"), str) else None,
                    timestamp=from_unix(payload.get("timestamp")),
                    sender_phone=phone_from_jid(sender),
                )
            ]
        return [UnknownEvent(name=event, raw=data)]
