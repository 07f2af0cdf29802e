"""Evolution API v2: instances, QR, sending, and its webhooks (an HS256 JWT signed with the
channel's secret, or on Evolution before 2.3 a static secret header — Evolution signs no body)."""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import jwt

from backend.gateways.base import (
    ChannelRef,
    GatewayEvent,
    InboundMessage,
    MessageAck,
    QrUpdated,
    SentMessage,
    SessionState,
    SessionStatusEvent,
    UnknownEvent,
)
from backend.gateways.ids import from_unix, is_broadcast, is_group, phone_from_jid
from backend.gateways.transport import GatewayClient, GatewayHttpError
from backend.settings import Settings

SECRET_HEADER = "x-webhook-secret"
JWT_LEEWAY_SECONDS = 30  # clock difference tolerated between Evolution and us
EVENTS = ["QRCODE_UPDATED", "CONNECTION_UPDATE", "MESSAGES_UPSERT", "MESSAGES_UPDATE"]
MEDIA_TYPES = {
    "imageMessage", "videoMessage", "audioMessage", "documentMessage", "documentWithCaptionMessage",
    "stickerMessage", "ptvMessage", "locationMessage", "contactMessage",
}  # fmt: skip
CAPTIONED = ("imageMessage", "videoMessage", "documentMessage")
ACKS = {
    "ERROR": "failed", "PENDING": "pending", "SERVER_ACK": "sent", "DELIVERY_ACK": "delivered",
    "READ": "read", "PLAYED": "played",
}  # fmt: skip
QR_LIMIT = "The QR code was not scanned in time (Evolution's QR limit). Reconnect to show a new one."


def connection_state(data: Mapping, owner: str | None = None) -> SessionState:
    """Our state for an Evolution `connection.update` (or connectionState) value."""
    state, reason = data.get("state"), data.get("statusReason")
    if state == "open":
        phone = phone_from_jid(data.get("wuid") or owner)
        return SessionState(status="ready", detail="working", phone_number=phone)
    if state == "connecting":
        return SessionState(status="pending_qr", detail="starting")
    if state == "refused":
        return SessionState(status="disconnected", detail="qr_expired", error=QR_LIMIT)
    if state == "close" and reason == 401:
        return SessionState(status="disconnected", detail="logged_out", error="The phone unlinked this device.")
    if state == "close":
        suffix = f" (reason {reason})" if reason else ""
        return SessionState(status="disconnected", detail="closed", error=f"The WhatsApp connection closed{suffix}.")
    raise ValueError(f"unknown Evolution connection state {state!r}")


def _text(message: Mapping) -> str:
    if isinstance(message.get("conversation"), str):
        return message["conversation"]
    extended = message.get("extendedTextMessage")
    if isinstance(extended, dict) and isinstance(extended.get("text"), str):
        return extended["text"]
    for kind in CAPTIONED:
        part = message.get(kind)
        if isinstance(part, dict) and isinstance(part.get("caption"), str):
            return part["caption"]
    return ""


def parse_message(item: Mapping, *, sent_by_api: bool = False) -> InboundMessage:
    """One `messages.upsert` (or `send.message`) data object as an InboundMessage."""
    key = item.get("key")
    if not isinstance(key, dict) or not isinstance(key.get("id"), str) or not isinstance(key.get("remoteJid"), str):
        raise ValueError("an Evolution message needs key.id and key.remoteJid")
    chat_id = key["remoteJid"]
    from_me = bool(key.get("fromMe"))
    group = is_group(chat_id)
    participant = key.get("participant") if isinstance(key.get("participant"), str) else None
    author = participant if group and participant else chat_id
    # LID mode hides numbers; v2.3.6+ gives the phone jid in *Alt, older versions in senderPn.
    alt = key.get("participantAlt") if group else key.get("remoteJidAlt")
    alt = alt or key.get("senderPn") or item.get("senderPn")
    message = item.get("message") if isinstance(item.get("message"), dict) else {}
    message_type = item.get("messageType") if isinstance(item.get("messageType"), str) else None
    media_kinds = [kind for kind in message if kind in MEDIA_TYPES]
    has_media = message_type in MEDIA_TYPES or bool(media_kinds)
    media_part = message.get(media_kinds[0]) if media_kinds else None
    media_type = (media_part.get("mimetype") if isinstance(media_part, dict) else None) or (message_type if has_media else None)
    return InboundMessage(
        provider_message_id=key["id"],
        chat_id=chat_id,
        sender_id=author,
        text=_text(message),
        from_me=from_me,
        sent_by_api=from_me and sent_by_api,
        is_group=group,
        is_broadcast=is_broadcast(chat_id),
        has_media=has_media,
        media_type=media_type,
        timestamp=from_unix(item.get("messageTimestamp")),
        sender_phone=None if from_me else (phone_from_jid(alt) or phone_from_jid(author)),
        sender_name=item.get("pushName") if isinstance(item.get("pushName"), str) and not from_me else None,
    )


def parse_ack(item: Mapping) -> MessageAck | None:
    key = item.get("key") if isinstance(item.get("key"), dict) else {}
    message_id = item.get("keyId") or key.get("id") or item.get("messageId")
    status = ACKS.get(str(item.get("status") or (item.get("update") or {}).get("status")).upper())
    if not isinstance(message_id, str) or status is None:
        return None
    return MessageAck(provider_message_id=message_id, status=status)


def _items(data: Any) -> list[dict]:
    if isinstance(data, dict) and isinstance(data.get("messages"), list):
        data = data["messages"]
    items = data if isinstance(data, list) else [data]
    if not items or not all(isinstance(item, dict) for item in items):
        raise ValueError("'data' must be an object or a list of objects")
    return items


def _bearer(headers: Mapping[str, str]) -> str | None:
    scheme, _, token = (headers.get("authorization") or headers.get("Authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _signed_at(headers: Mapping[str, str]) -> datetime | None:
    """When Evolution emitted the event: its JWT's `iat` (verified before parsing). The envelope's
    `date_time` is no use: it is the server's local time labelled UTC."""
    token = _bearer(headers)
    if token is None:
        return None
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return from_unix(claims.get("iat"))


def _qr_code(answer: Any) -> str | None:
    """The raw QR string from a connect/create answer (an object, or a list holding one)."""
    if isinstance(answer, list):
        answer = answer[0] if answer else None
    if isinstance(answer, dict) and isinstance(answer.get("qrcode"), dict):
        answer = answer["qrcode"]
    code = answer.get("code") if isinstance(answer, dict) else None
    return code if isinstance(code, str) and code else None


class EvolutionGateway:
    name = "evolution"

    def __init__(self, settings: Settings, http: aiohttp.ClientSession) -> None:
        key = settings.evolution_api_key.get_secret_value()
        self.client = GatewayClient(
            http,
            provider="Evolution API",
            base_url=settings.evolution_url,
            headers={"apikey": key} if key else {},
            timeout=settings.gateway_timeout_seconds,
            attempts=settings.gateway_attempts,
        )
        self.webhook_auth = settings.evolution_webhook_auth

    def _instance(self, channel: ChannelRef) -> str:
        return quote(channel.session_name, safe="")

    async def _set_webhook(self, channel: ChannelRef, webhook_url: str) -> None:
        webhook = {
            "enabled": True,
            "url": webhook_url,
            # Evolution has no HMAC. With `jwt_key` (2.3+) it sends instead `Authorization: Bearer
            # <HS256 JWT, 10 minutes>` signed with it, so the secret itself never travels; older
            # versions pass headers through as they are, so they get the static header.
            "headers": {"jwt_key" if self.webhook_auth == "jwt" else SECRET_HEADER: channel.webhook_secret},
            "byEvents": False,
            "base64": False,
            "events": EVENTS,
        }
        await self.client.call(
            "POST", f"/webhook/set/{self._instance(channel)}", operation="set_webhook", json_body={"webhook": webhook}
        )

    async def start_session(self, channel: ChannelRef, webhook_url: str) -> SessionState:
        try:
            await self.client.call(
                "POST",
                "/instance/create",
                operation="create_instance",
                json_body={"instanceName": channel.session_name, "integration": "WHATSAPP-BAILEYS", "qrcode": True},
            )
        except GatewayHttpError as exc:
            if exc.http_status not in (403, 409):  # 403 "name already in use": it exists, reuse it
                raise
        await self._set_webhook(channel, webhook_url)
        return await self._connect(channel)

    async def _connect(self, channel: ChannelRef) -> SessionState:
        """Ask for a QR (this also starts connecting a closed instance)."""
        answer = await self.client.call("GET", f"/instance/connect/{self._instance(channel)}", operation="connect")
        qr = _qr_code(answer)
        if qr:
            return SessionState(status="pending_qr", detail="scan_qr", qr=qr)
        instance = answer.get("instance") if isinstance(answer, dict) else None
        if isinstance(instance, dict) and instance.get("state") == "open":
            return await self.get_state(channel)
        return SessionState(status="pending_qr", detail="starting")  # {"count": 0}: no QR yet

    async def get_state(self, channel: ChannelRef) -> SessionState:
        name = self._instance(channel)
        try:
            answer = await self.client.call("GET", f"/instance/connectionState/{name}", operation="connection_state")
        except GatewayHttpError as exc:
            if exc.http_status == 404:
                return SessionState(
                    status="disconnected", detail="stopped", error="Evolution has no such instance; reconnect to create it."
                )
            raise
        instance = answer.get("instance") if isinstance(answer, dict) else None
        if not isinstance(instance, dict):
            raise GatewayHttpError("Evolution answered an unexpected connection state.", http_status=502, body=answer)
        state = connection_state(instance)
        if state.status == "ready":
            return connection_state(instance, owner=await self._owner(channel))
        if state.status == "pending_qr":
            return await self._connect(channel)
        return state

    async def _owner(self, channel: ChannelRef) -> str | None:
        answer = await self.client.call(
            "GET", "/instance/fetchInstances", operation="fetch_instances", params={"instanceName": channel.session_name}
        )
        for item in answer if isinstance(answer, list) else [answer]:
            if not isinstance(item, dict):
                continue
            info = item.get("instance") if isinstance(item.get("instance"), dict) else item  # v2.1 nests, v2.2 does not
            if (info.get("instanceName") or info.get("name")) in (channel.session_name, None):
                return info.get("owner") or info.get("ownerJid")
        return None

    async def send_text(self, channel: ChannelRef, chat_id: str, text: str) -> SentMessage:
        answer = await self.client.call(
            "POST",
            f"/message/sendText/{self._instance(channel)}",
            operation="send_text",
            json_body={"number": chat_id, "text": text},
            idempotent=False,
        )
        key = answer.get("key") if isinstance(answer, dict) and isinstance(answer.get("key"), dict) else {}
        return SentMessage(provider_message_id=key.get("id"), status="sent")

    async def find_recent_outgoing(self, channel: ChannelRef, chat_id: str, text: str) -> str | None:
        answer = await self.client.call(
            "POST",
            f"/chat/findMessages/{self._instance(channel)}",
            operation="find_messages",
            json_body={"where": {"key": {"remoteJid": chat_id, "fromMe": True}}, "limit": 20},
        )
        if isinstance(answer, dict):  # v2: {"messages": {"records": [...]}}
            answer = (
                (answer.get("messages") or {}).get("records")
                if isinstance(answer.get("messages"), dict)
                else answer.get("messages")
            )
        for item in answer if isinstance(answer, list) else []:
            key = item.get("key") if isinstance(item, dict) else None
            message = item.get("message") if isinstance(item, dict) else None
            if isinstance(key, dict) and key.get("fromMe") and isinstance(message, dict) and _text(message) == text:
                return key.get("id")
        return None

    async def mark_seen(self, channel: ChannelRef, chat_id: str, message_ids: list[str]) -> None:
        await self.client.call(
            "POST",
            f"/chat/markMessageAsRead/{self._instance(channel)}",
            operation="mark_read",
            json_body={"readMessages": [{"remoteJid": chat_id, "fromMe": False, "id": mid} for mid in message_ids]},
        )

    async def set_typing(self, channel: ChannelRef, chat_id: str, typing: bool) -> None:
        # Evolution holds the call open for `delay` ms, then sends "paused" itself.
        await self.client.call(
            "POST",
            f"/chat/sendPresence/{self._instance(channel)}",
            operation="typing",
            json_body={"number": chat_id, "presence": "composing" if typing else "paused", "delay": 1000 if typing else 0},
        )

    async def logout(self, channel: ChannelRef) -> None:
        try:
            await self.client.call("DELETE", f"/instance/logout/{self._instance(channel)}", operation="logout")
        except GatewayHttpError as exc:
            if exc.http_status not in (400, 404):  # 400: "not connected" — already logged out
                raise

    async def restart(self, channel: ChannelRef, webhook_url: str) -> SessionState:
        return await self.start_session(channel, webhook_url)

    async def delete_session(self, channel: ChannelRef) -> None:
        await self.logout(channel)  # Evolution refuses to delete a connected instance
        try:
            await self.client.call("DELETE", f"/instance/delete/{self._instance(channel)}", operation="delete_instance")
        except GatewayHttpError as exc:
            if exc.http_status != 404:
                raise

    def check_webhook_headers(self, channel: ChannelRef, headers: Mapping[str, str]) -> bool:
        """In the mode EVOLUTION_WEBHOOK_AUTH names: a Bearer JWT (HS256) signed with the channel's
        secret and not expired, or the secret header. Either is all there is: nothing covers the body."""
        if self.webhook_auth == "header":
            given = headers.get(SECRET_HEADER) or ""
            return bool(given) and hmac.compare_digest(given.encode(), channel.webhook_secret.encode())
        token = _bearer(headers)
        if token is None:
            return False
        try:
            jwt.decode(
                token,
                channel.webhook_secret,
                algorithms=["HS256"],
                options={"require": ["exp", "iat"]},
                leeway=JWT_LEEWAY_SECONDS,
            )
        except jwt.PyJWTError:
            return False
        return True

    def verify_webhook(self, channel: ChannelRef, headers: Mapping[str, str], body: bytes) -> bool:
        return self.check_webhook_headers(channel, headers)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[GatewayEvent]:
        data = json.loads(body)
        if not isinstance(data, dict) or not isinstance(data.get("event"), str):
            raise ValueError("an Evolution webhook is an object with an 'event'")
        event = data["event"].lower().replace("_", ".")  # "MESSAGES_UPSERT" in config, "messages.upsert" when sent
        payload = data.get("data")
        at = _signed_at(headers) if self.webhook_auth == "jwt" else None
        if event in ("messages.upsert", "send.message"):
            return [parse_message(item, sent_by_api=event == "send.message") for item in _items(payload)]
        if event == "messages.update":
            return [ack for ack in (parse_ack(item) for item in _items(payload)) if ack is not None]
        if event == "connection.update":
            if not isinstance(payload, dict):
                raise ValueError("connection.update needs an object 'data'")
            return [SessionStatusEvent(connection_state(payload, owner=data.get("sender")), at=at)]
        if event == "qrcode.updated":
            if not isinstance(payload, dict):
                raise ValueError("qrcode.updated needs an object 'data'")
            qr = _qr_code(payload)
            if qr:
                return [QrUpdated(qr=qr, at=at)]
            state = SessionState(status="disconnected", detail="qr_expired", error=QR_LIMIT)
            return [SessionStatusEvent(state, at=at)]
        return [UnknownEvent(name=event, raw=data)]
