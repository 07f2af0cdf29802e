"""Evolution API v2: instances, QR or pairing code, sending, media, and its webhooks (an HS256 JWT
signed with the channel's secret, or on Evolution before 2.3 a static secret header — Evolution
signs no body).

Values this version does not know are handled as in waha.py: an unknown connection state is
`pending_qr` with detail `unknown` and an error naming it; an unknown ack value is not a
MessageAck but an UnknownEvent (acknowledged and logged; the message keeps its last status)."""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import aiohttp
import jwt

from backend.errors import Invalid
from backend.gateways.base import (
    ChannelRef,
    GatewayEvent,
    InboundMessage,
    MediaKind,
    MediaRef,
    MessageAck,
    QrUpdated,
    ReactionEvent,
    SentMessage,
    SessionState,
    SessionStatusEvent,
    UnknownEvent,
)
from backend.gateways.errors import MediaUnavailable, NotSupported
from backend.gateways.headers import header
from backend.gateways.ids import from_unix, is_broadcast, is_group, normalise_phone, phone_from_jid
from backend.gateways.media import decode_inline, place
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
# Baileys message type → our media kind (audioMessage is a voice note when `ptt` is set).
KINDS: dict[str, MediaKind] = {
    "imageMessage": "image", "videoMessage": "video", "ptvMessage": "video", "audioMessage": "audio",
    "documentMessage": "document", "documentWithCaptionMessage": "document", "stickerMessage": "sticker",
    "locationMessage": "location", "contactMessage": "contacts",
}  # fmt: skip
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
    if not isinstance(state, str) or not state:
        raise ValueError("an Evolution connection state needs 'state'")
    error = f"Evolution reported a connection state this version does not know: {state[:40]!r}."
    return SessionState(status="pending_qr", detail="unknown", error=error)


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
    wrapped = message.get("documentWithCaptionMessage")  # {"message": {"documentMessage": {...}}}
    if isinstance(wrapped, dict) and isinstance(wrapped.get("message"), dict):
        return _text(wrapped["message"])
    return ""


def _media(item: Mapping, message: Mapping, message_id: str, text: str) -> MediaRef | None:
    """The attachment of a Baileys message, if any: the handle is the message id (for
    getBase64FromMediaMessage); `message.base64` is the file itself when webhooks carry it."""
    kind_name = next((k for k in message if k in KINDS), None)
    if kind_name is None and item.get("messageType") in KINDS:
        kind_name = item["messageType"]
    if kind_name is None:
        return None
    part = message.get(kind_name) if isinstance(message.get(kind_name), dict) else {}
    if kind_name == "documentWithCaptionMessage" and isinstance(part.get("message"), dict):
        inner = part["message"].get("documentMessage")
        part = inner if isinstance(inner, dict) else {}
    kind = KINDS[kind_name]
    if kind == "audio" and part.get("ptt"):
        kind = "voice"
    if kind == "location":
        description = place(part.get("degreesLatitude"), part.get("degreesLongitude"), part.get("name"), part.get("address"))
        return MediaRef(kind=kind, caption=text or None, description=description)
    if kind == "contacts":
        card = part.get("displayName") or part.get("vcard")
        return MediaRef(kind=kind, caption=text or None, description=str(card)[:500] if card else None)
    inline = message.get("base64") if isinstance(message.get("base64"), str) and message["base64"] else None
    size = part.get("fileLength")
    if isinstance(size, dict):  # protobuf Long as {"low", "high", "unsigned"}
        size = size.get("low")
    try:
        size = int(size) if size is not None else None
    except (TypeError, ValueError):
        size = None
    return MediaRef(
        kind=kind,
        handle=message_id,
        mimetype=part.get("mimetype") if isinstance(part.get("mimetype"), str) else None,
        filename=part.get("fileName") if isinstance(part.get("fileName"), str) else None,
        caption=text or None,
        size=size,
        sha256=part.get("fileSha256") if isinstance(part.get("fileSha256"), str) else None,
        inline_base64=inline,
    )


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
    text = _text(message)
    return InboundMessage(
        provider_message_id=key["id"],
        chat_id=chat_id,
        sender_id=author,
        text=text,
        from_me=from_me,
        sent_by_api=from_me and sent_by_api,
        is_group=group,
        is_broadcast=is_broadcast(chat_id),
        has_media=has_media,
        media_type=media_type,
        timestamp=from_unix(item.get("messageTimestamp")),
        sender_phone=None if from_me else (phone_from_jid(alt) or phone_from_jid(author)),
        sender_name=item.get("pushName") if isinstance(item.get("pushName"), str) and not from_me else None,
        media=_media(item, message, key["id"], text) if has_media else None,
    )


def parse_reaction(item: Mapping) -> ReactionEvent | None:
    """A `messages.upsert` holding a Baileys reactionMessage ({key: the message reacted to, text});
    None when the item is not a reaction."""
    message = item.get("message") if isinstance(item.get("message"), dict) else {}
    reaction = message.get("reactionMessage")
    if not isinstance(reaction, dict):
        return None
    key, target = item.get("key"), reaction.get("key")
    if not isinstance(key, dict) or not isinstance(key.get("remoteJid"), str) or not isinstance(target, dict):
        raise ValueError("an Evolution reaction needs key.remoteJid and reactionMessage.key")
    if not isinstance(target.get("id"), str) or not target["id"]:
        raise ValueError("an Evolution reaction needs reactionMessage.key.id")
    chat_id = key["remoteJid"]
    from_me = bool(key.get("fromMe"))
    participant = key.get("participant") if isinstance(key.get("participant"), str) else None
    author = participant if is_group(chat_id) and participant else chat_id
    alt = key.get("participantAlt") if is_group(chat_id) else key.get("remoteJidAlt")
    return ReactionEvent(
        reacted_to=target["id"],
        emoji=reaction.get("text") if isinstance(reaction.get("text"), str) else "",
        chat_id=chat_id,
        sender_id=author,
        provider_message_id=key.get("id") if isinstance(key.get("id"), str) else None,
        from_me=from_me,
        timestamp=from_unix(item.get("messageTimestamp")),
        sender_phone=None if from_me else (phone_from_jid(alt) or phone_from_jid(author)),
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
    scheme, _, token = header(headers, "Authorization").partition(" ")
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
    reply_window: timedelta | None = None

    def __init__(self, settings: Settings, http: aiohttp.ClientSession) -> None:
        key = settings.evolution_api_key.get_secret_value()
        self.client = GatewayClient(
            http,
            name="evolution",
            display_name="Evolution API",
            base_url=settings.evolution_url,
            headers={"apikey": key} if key else {},
            timeout=settings.gateway_timeout_seconds,
            attempts=settings.gateway_attempts,
        )
        self.webhook_auth = settings.evolution_webhook_auth
        self.media_timeout = settings.media_download_timeout_seconds

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
        if state.detail == "starting":
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

    async def send_text(self, channel: ChannelRef, chat_id: str, text: str, reply_to: str | None = None) -> SentMessage:
        body: dict[str, Any] = {"number": chat_id, "text": text}
        if reply_to:
            # Evolution looks the quoted message up by its key in its own store.
            body["quoted"] = {"key": {"id": reply_to, "remoteJid": chat_id, "fromMe": False}}
        answer = await self.client.call(
            "POST", f"/message/sendText/{self._instance(channel)}", operation="send_text", json_body=body, idempotent=False
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

    async def download_media(self, channel: ChannelRef, media: MediaRef, max_bytes: int) -> bytes:
        """The base64 the webhook carried, or POST /chat/getBase64FromMediaMessage/{instance} with
        the message id (Evolution keeps the message in its store and downloads it from WhatsApp)."""
        if not media.downloadable:
            raise NotSupported(f"A WhatsApp {media.kind} has no file to download.")
        encoded = media.inline_base64
        if encoded is None:
            raw = await self.client.download(
                f"/chat/getBase64FromMediaMessage/{self._instance(channel)}",
                method="POST",
                json_body={"message": {"key": {"id": media.handle}}, "convertToMp4": False},
                operation="download_media",
                max_bytes=max_bytes * 4 // 3 + 64 * 1024,  # the JSON answer carries base64
                seconds=self.media_timeout,
                headers=self.client.headers,
            )
            try:
                answer = json.loads(raw)
            except ValueError as exc:
                raise MediaUnavailable("Evolution answered the media request with something other than JSON.") from exc
            encoded = answer.get("base64") if isinstance(answer, dict) else None
            if not isinstance(encoded, str) or not encoded:
                raise MediaUnavailable("Evolution answered the media request without the file.")
        return decode_inline(encoded, max_bytes, source="Evolution")

    async def request_pairing_code(self, channel: ChannelRef, phone_number: str) -> str:
        """GET /instance/connect/{instance}?number= → {"pairingCode": "WZYEH1YY", "code": <QR>, ...}."""
        phone = normalise_phone(phone_number)
        if phone is None:
            raise Invalid(f"{phone_number[:40]!r} is not a phone number (digits with the country code).", code="invalid_phone")
        answer = await self.client.call(
            "GET", f"/instance/connect/{self._instance(channel)}", operation="pairing_code", params={"number": phone.lstrip("+")}
        )
        if isinstance(answer, list):
            answer = answer[0] if answer else None
        code = answer.get("pairingCode") if isinstance(answer, dict) else None
        if isinstance(code, str) and code:
            return code
        instance = answer.get("instance") if isinstance(answer, dict) else None
        if isinstance(instance, dict) and instance.get("state") == "open":
            raise GatewayHttpError("This Evolution instance is connected already: log out first.", http_status=409, body=answer)
        raise GatewayHttpError(
            "Evolution gave no pairing code (it gives none while still connecting: try again in a few seconds).",
            http_status=502,
            body=answer,
        )

    def verification_challenge(self, channel: ChannelRef, params: Mapping[str, str]) -> str | None:
        return None  # Evolution makes no GET handshake

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
            given = header(headers, SECRET_HEADER)
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

    def parse_webhook(self, headers: Mapping[str, str], body: bytes, channel: ChannelRef | None = None) -> list[GatewayEvent]:
        data = json.loads(body)
        if not isinstance(data, dict) or not isinstance(data.get("event"), str):
            raise ValueError("an Evolution webhook is an object with an 'event'")
        event = data["event"].lower().replace("_", ".")  # "MESSAGES_UPSERT" in config, "messages.upsert" when sent
        payload = data.get("data")
        at = _signed_at(headers) if self.webhook_auth == "jwt" else None
        if event in ("messages.upsert", "send.message"):
            return [parse_reaction(item) or parse_message(item, sent_by_api=event == "send.message") for item in _items(payload)]
        if event == "messages.update":
            return [parse_ack(item) or UnknownEvent(name="messages.update:unknown_value", raw=item) for item in _items(payload)]
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
