"""WAHA (WhatsApp HTTP API): sessions, QR or pairing code, sending, media, and its webhooks
(HMAC-SHA512 signed).

Values this version does not know are handled as in evolution.py: an unknown session status is
`pending_qr` with detail `unknown` and an error naming it (the session exists but is not usable
yet, and the console says so instead of guessing); an unknown ack value is not a MessageAck but
an UnknownEvent (acknowledged and logged; the message keeps its last known status)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from backend.errors import Invalid
from backend.gateways.base import (
    ChannelRef,
    GatewayEvent,
    InboundMessage,
    MediaKind,
    MediaRef,
    MessageAck,
    ReactionEvent,
    SentMessage,
    SessionState,
    SessionStatusEvent,
    UnknownEvent,
)
from backend.gateways.errors import MediaUnavailable, NotSupported
from backend.gateways.headers import header
from backend.gateways.ids import from_unix, is_broadcast, is_group, normalise_phone, phone_from_jid
from backend.gateways.media import kind_from_mimetype, place
from backend.gateways.transport import GatewayClient, GatewayHttpError
from backend.settings import Settings

# `message` only: with `message.any` too, WAHA delivers every message twice (and our own sends).
# A file of WAHA's store: /api/files/<file>, or /api/files/<session>/<file> (newer WAHA); no "..", no other route.
WAHA_FILE_PATH = re.compile(r"/api/files/(?:(?!\.\.?/)[\w@.-]+/)?(?!\.\.?$)[\w@.-]+", re.ASCII)
EVENTS = ["message", "session.status", "message.ack", "message.reaction"]
# WAHA status → (our status, detail)
STATES = {
    "STARTING": ("pending_qr", "starting"),
    "SCAN_QR_CODE": ("pending_qr", "scan_qr"),
    "PASSKEY_REQUIRED": ("pending_qr", "passkey"),
    "PASSKEY_CONFIRMATION_REQUIRED": ("pending_qr", "passkey"),
    "WORKING": ("ready", "working"),
    "FAILED": ("disconnected", "failed"),
    "STOPPED": ("disconnected", "stopped"),
}
ACKS = {-1: "failed", 0: "pending", 1: "sent", 2: "delivered", 3: "read", 4: "played"}
ACK_NAMES = {"ERROR": "failed", "PENDING": "pending", "SERVER": "sent", "DEVICE": "delivered", "READ": "read", "PLAYED": "played"}


def _hmac_header(headers: Mapping[str, str]) -> str | None:
    """The X-Webhook-Hmac value when it names the algorithm we check (sha512, WAHA's only one)."""
    given = header(headers, "X-Webhook-Hmac")
    algorithm = (header(headers, "X-Webhook-Hmac-Algorithm") or "sha512").lower()
    return given if given and algorithm == "sha512" else None


def session_state(status: str, me: Any) -> SessionState:
    """Our state for a WAHA session status and its `me` (the paired account)."""
    if status not in STATES:
        error = f"WAHA reported a session status this version does not know: {status[:40]!r}."
        return SessionState(status="pending_qr", detail="unknown", error=error)
    ours, detail = STATES[status]
    phone = phone_from_jid(me.get("id")) if isinstance(me, dict) else None
    error = "The WhatsApp session failed: the QR code expired or the phone unlinked it." if status == "FAILED" else None
    return SessionState(status=ours, detail=detail, phone_number=phone if ours == "ready" else None, error=error)  # type: ignore[arg-type]


def _message_id(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict):  # WEBJS gives {fromMe, remote, id, _serialized}
        return value.get("_serialized") or value.get("id")
    return None


def _media_kind(mimetype: str | None, engine_type: Any) -> MediaKind:
    """WEBJS's `_data.type` tells voice notes (ptt), audio files and stickers apart; else the mimetype."""
    if engine_type in ("ptt", "audio", "sticker", "image", "video", "document"):
        return "voice" if engine_type == "ptt" else engine_type
    return kind_from_mimetype(mimetype)


def _media(payload: Mapping, data: Mapping, text: str) -> MediaRef | None:
    media = payload.get("media") if isinstance(payload.get("media"), dict) else None
    if media is not None and isinstance(media.get("url"), str) and media["url"]:
        mimetype = media.get("mimetype") if isinstance(media.get("mimetype"), str) else None
        return MediaRef(
            kind=_media_kind(mimetype, data.get("type")),
            handle=media["url"],
            mimetype=mimetype,
            filename=media.get("filename") if isinstance(media.get("filename"), str) else None,
            caption=text or None,
        )
    location = payload.get("location") if isinstance(payload.get("location"), dict) else None
    if location is not None:
        description = place(
            location.get("latitude"), location.get("longitude"), *(location.get(k) for k in ("name", "address", "description"))
        )
        return MediaRef(kind="location", caption=text or None, description=description)
    cards = payload.get("vCards")
    if isinstance(cards, list) and cards:
        return MediaRef(kind="contacts", caption=text or None, description="\n".join(str(card)[:500] for card in cards[:5]))
    return None


def parse_message(payload: Mapping) -> InboundMessage:
    """A WAMessage (`message` payload) as an InboundMessage."""
    message_id = _message_id(payload.get("id"))
    sender = payload.get("from")
    if not message_id or not isinstance(sender, str):
        raise ValueError("a WAHA message needs 'id' and 'from'")
    from_me = bool(payload.get("fromMe"))
    to = payload.get("to") if isinstance(payload.get("to"), str) else None
    chat_id = (to or sender) if from_me else sender
    participant = payload.get("participant") if isinstance(payload.get("participant"), str) else None
    group = is_group(chat_id)
    author = participant if group and participant else sender
    media = payload.get("media") if isinstance(payload.get("media"), dict) else None
    data = payload.get("_data") if isinstance(payload.get("_data"), dict) else {}
    text = payload.get("body") if isinstance(payload.get("body"), str) else ""
    attachment = _media(payload, data, text)
    return InboundMessage(
        provider_message_id=message_id,
        chat_id=chat_id,
        sender_id=author,
        text=text,
        from_me=from_me,
        sent_by_api=from_me and payload.get("source") == "api",
        is_group=group,
        is_broadcast=is_broadcast(chat_id),
        has_media=bool(payload.get("hasMedia")) or media is not None or attachment is not None,
        media_type=(media.get("mimetype") if media else None) or (attachment.kind if attachment else None),
        timestamp=from_unix(payload.get("timestamp")),
        sender_phone=None if from_me else phone_from_jid(author),
        sender_name=data.get("notifyName") or data.get("pushName"),
        media=attachment,
    )


def parse_ack(payload: Mapping) -> MessageAck | None:
    """The delivery status; None for an ack value this version does not know."""
    message_id = _message_id(payload.get("id"))
    if not message_id:
        raise ValueError("a WAHA message.ack needs 'id'")
    ack = payload.get("ack")
    status = ACK_NAMES.get(str(payload.get("ackName")).upper()) or (ACKS.get(ack) if isinstance(ack, int) else None)
    if status is None:
        return None
    error = payload.get("error") if status == "failed" and isinstance(payload.get("error"), str) else None
    return MessageAck(provider_message_id=message_id, status=status, error=error)


def parse_reaction(payload: Mapping) -> ReactionEvent:
    """A `message.reaction` payload: `reaction.text` ("" = removed) on `reaction.messageId`."""
    reaction = payload.get("reaction")
    sender = payload.get("from")
    if not isinstance(reaction, dict) or not isinstance(reaction.get("messageId"), str) or not isinstance(sender, str):
        raise ValueError("a WAHA message.reaction needs 'from' and reaction.messageId")
    from_me = bool(payload.get("fromMe"))
    to = payload.get("to") if isinstance(payload.get("to"), str) else None
    chat_id = (to or sender) if from_me else sender
    participant = payload.get("participant") if isinstance(payload.get("participant"), str) else None
    author = participant if is_group(chat_id) and participant else sender
    return ReactionEvent(
        reacted_to=reaction["messageId"],
        emoji=reaction.get("text") if isinstance(reaction.get("text"), str) else "",
        chat_id=chat_id,
        sender_id=author,
        provider_message_id=_message_id(payload.get("id")),
        from_me=from_me,
        timestamp=from_unix(payload.get("timestamp")),
        sender_phone=None if from_me else phone_from_jid(author),
    )


class WahaGateway:
    name = "waha"
    webhook_max_bytes = 1024 * 1024  # WAHA's webhooks carry a file URL, never the file
    reply_window: timedelta | None = None

    def __init__(self, settings: Settings, http: aiohttp.ClientSession) -> None:
        key = settings.waha_api_key.get_secret_value()
        self.client = GatewayClient(
            http,
            name="waha",
            display_name="WAHA",
            base_url=settings.waha_url,
            headers={"X-Api-Key": key} if key else {},
            timeout=settings.gateway_timeout_seconds,
            attempts=settings.gateway_attempts,
        )
        self.media_timeout = settings.media_download_timeout_seconds

    @staticmethod
    def _config(channel: ChannelRef, webhook_url: str) -> dict:
        return {
            "webhooks": [
                {
                    "url": webhook_url,
                    "events": EVENTS,
                    "hmac": {"key": channel.webhook_secret},
                    "retries": {"policy": "exponential", "delaySeconds": 2, "attempts": 8},
                }
            ],
            "metadata": {"channel_id": str(channel.id)},
        }

    def _session(self, channel: ChannelRef) -> str:
        return quote(channel.session_name, safe="")

    async def start_session(self, channel: ChannelRef, webhook_url: str) -> SessionState:
        config = self._config(channel, webhook_url)
        try:
            await self.client.call(
                "POST",
                "/api/sessions",
                operation="create_session",
                json_body={"name": channel.session_name, "start": True, "config": config},
            )
        except GatewayHttpError as exc:
            if exc.http_status not in (409, 422):
                raise
            # It exists already (a restart of ours, or WAHA Core's "default"): point it at us and start it.
            await self._update_and_start(channel, config)
        return await self.get_state(channel)

    async def _update_and_start(self, channel: ChannelRef, config: dict) -> None:
        name = self._session(channel)
        await self.client.call("PUT", f"/api/sessions/{name}", operation="update_session", json_body={"config": config})
        info = await self.client.call("GET", f"/api/sessions/{name}", operation="get_session")
        if isinstance(info, dict) and info.get("status") in ("STOPPED", "FAILED", None):
            await self.client.call("POST", f"/api/sessions/{name}/start", operation="start_session")

    async def get_state(self, channel: ChannelRef) -> SessionState:
        name = self._session(channel)
        try:
            info = await self.client.call("GET", f"/api/sessions/{name}", operation="get_session")
        except GatewayHttpError as exc:
            if exc.http_status == 404:
                return SessionState(
                    status="disconnected", detail="stopped", error="WAHA has no such session; reconnect to create it."
                )
            raise
        if not isinstance(info, dict) or not isinstance(info.get("status"), str):
            raise GatewayHttpError("WAHA answered an unexpected session object.", http_status=502, body=info)
        state = session_state(info["status"], info.get("me"))
        if state.status == "ready" and state.phone_number is None:
            me = await self.client.call("GET", f"/api/sessions/{name}/me", operation="get_me")
            state = session_state(info["status"], me)
        if state.detail == "scan_qr":
            state = SessionState(status=state.status, detail=state.detail, qr=await self._qr(name))
        return state

    async def _qr(self, name: str) -> str | None:
        try:
            answer = await self.client.call("GET", f"/api/{name}/auth/qr", operation="get_qr", params={"format": "raw"})
        except GatewayHttpError as exc:
            if exc.http_status in (404, 422):  # not (or no longer) waiting for a scan
                return None
            raise
        return answer.get("value") if isinstance(answer, dict) else None

    async def send_text(self, channel: ChannelRef, chat_id: str, text: str, reply_to: str | None = None) -> SentMessage:
        body = {"session": channel.session_name, "chatId": chat_id, "text": text}
        if reply_to:
            body["reply_to"] = reply_to
        answer = await self.client.call("POST", "/api/sendText", operation="send_text", json_body=body, idempotent=False)
        message_id = None
        if isinstance(answer, dict):
            key = answer.get("key") if isinstance(answer.get("key"), dict) else {}
            message_id = _message_id(answer.get("id")) or key.get("id")
        return SentMessage(provider_message_id=message_id, status="sent")

    async def find_recent_outgoing(self, channel: ChannelRef, chat_id: str, text: str) -> str | None:
        answer = await self.client.call(
            "GET",
            f"/api/{self._session(channel)}/chats/{quote(chat_id, safe='@.')}/messages",
            operation="list_messages",
            params={"limit": "20", "downloadMedia": "false"},
        )
        for message in answer if isinstance(answer, list) else []:
            if isinstance(message, dict) and message.get("fromMe") and message.get("body") == text:
                return _message_id(message.get("id"))
        return None

    async def mark_seen(self, channel: ChannelRef, chat_id: str, message_ids: list[str]) -> None:
        await self.client.call(
            "POST",
            "/api/sendSeen",
            operation="send_seen",
            json_body={"session": channel.session_name, "chatId": chat_id, "messageIds": message_ids},
        )

    async def set_typing(self, channel: ChannelRef, chat_id: str, typing: bool) -> None:
        path = "/api/startTyping" if typing else "/api/stopTyping"
        await self.client.call("POST", path, operation="typing", json_body={"session": channel.session_name, "chatId": chat_id})

    async def download_media(self, channel: ChannelRef, media: MediaRef, max_bytes: int) -> bytes:
        """GET `media.url` with the API key. WAHA builds that URL from its own idea of its address
        (often localhost), so a file path under /api/files/ is fetched from WAHA_URL instead; the
        key goes only there, never to another host (WAHA Plus may hand out S3 links)."""
        if not media.downloadable:
            raise NotSupported(f"A WhatsApp {media.kind} has no file to download.")
        url = media.handle
        parts, ours = urlsplit(url), urlsplit(self.client.base_url)
        if parts.path.startswith("/api/files/") or not parts.scheme:
            url = self.client.base_url + parts.path
        target = urlsplit(url)
        same_host = (target.scheme, target.netloc) == (ours.scheme, ours.netloc)
        # Only a file of WAHA's file store gets the key: a signed webhook's path could name any API route.
        if same_host and not WAHA_FILE_PATH.fullmatch(target.path.removeprefix(ours.path.rstrip("/"))):
            raise MediaUnavailable("The media's file path is not one of WAHA's files (/api/files/…).")
        return await self.client.download(
            url,
            operation="download_media",
            max_bytes=max_bytes,
            seconds=self.media_timeout,
            headers=self.client.headers if same_host else {},
        )

    async def request_pairing_code(self, channel: ChannelRef, phone_number: str) -> str:
        """POST /api/{session}/auth/request-code → {"code": "ABCD-ABCD"}; only while the session waits for a scan."""
        phone = normalise_phone(phone_number)
        if phone is None:
            raise Invalid(f"{phone_number[:40]!r} is not a phone number (digits with the country code).", code="invalid_phone")
        try:
            answer = await self.client.call(
                "POST",
                f"/api/{self._session(channel)}/auth/request-code",
                operation="request_code",
                json_body={"phoneNumber": phone.lstrip("+")},
                idempotent=False,  # each call makes WhatsApp send a new code
            )
        except GatewayHttpError as exc:
            if exc.http_status == 422:
                raise GatewayHttpError(
                    "WAHA gives a pairing code only while the session waits for a scan: connect (or reconnect) first.",
                    http_status=422,
                    body=exc.body,
                    code="not_pairing",
                ) from exc
            raise
        code = answer.get("code") if isinstance(answer, dict) else None
        if not isinstance(code, str) or not code:
            raise GatewayHttpError("WAHA answered the pairing-code request without a code.", http_status=502, body=answer)
        return code

    def verification_challenge(self, channel: ChannelRef, params: Mapping[str, str]) -> str | None:
        return None  # WAHA makes no GET handshake

    async def logout(self, channel: ChannelRef) -> None:
        name = self._session(channel)
        try:
            await self.client.call("POST", f"/api/sessions/{name}/logout", operation="logout")
            # Stopped, so it does not sit in SCAN_QR_CODE until someone asks for a new QR.
            await self.client.call("POST", f"/api/sessions/{name}/stop", operation="stop_session")
        except GatewayHttpError as exc:
            if exc.http_status != 404:
                raise

    async def restart(self, channel: ChannelRef, webhook_url: str) -> SessionState:
        name = self._session(channel)
        try:
            await self.client.call(
                "PUT",
                f"/api/sessions/{name}",
                operation="update_session",
                json_body={"config": self._config(channel, webhook_url)},
            )
        except GatewayHttpError as exc:
            if exc.http_status != 404:
                raise
            return await self.start_session(channel, webhook_url)
        await self.client.call("POST", f"/api/sessions/{name}/restart", operation="restart_session")
        return await self.get_state(channel)

    async def delete_session(self, channel: ChannelRef) -> None:
        try:
            await self.client.call("DELETE", f"/api/sessions/{self._session(channel)}", operation="delete_session")
        except GatewayHttpError as exc:
            if exc.http_status != 404:
                raise

    def check_webhook_headers(self, channel: ChannelRef, headers: Mapping[str, str]) -> bool:
        """The HMAC covers the body, so before it only its header can be required."""
        return _hmac_header(headers) is not None

    def verify_webhook(self, channel: ChannelRef, headers: Mapping[str, str], body: bytes) -> bool:
        """`X-Webhook-Hmac` must be the hex HMAC-SHA512 of the raw body under the channel's key."""
        given = _hmac_header(headers)
        if given is None:
            return False
        expected = hmac.new(channel.webhook_secret.encode(), body, hashlib.sha512).hexdigest()
        return hmac.compare_digest(given.strip().lower(), expected)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes, channel: ChannelRef | None = None) -> list[GatewayEvent]:
        data = json.loads(body)
        if not isinstance(data, dict) or not isinstance(data.get("event"), str):
            raise ValueError("a WAHA webhook is an object with an 'event'")
        event, payload = data["event"], data.get("payload")
        if event == "session.status":
            if not isinstance(payload, dict) or not isinstance(payload.get("status"), str):
                raise ValueError("session.status needs payload.status")
            # The envelope's `timestamp` (ms, WAHA 2025+) is inside the signed body, unlike X-Webhook-Timestamp.
            return [SessionStatusEvent(session_state(payload["status"], data.get("me")), at=from_unix(data.get("timestamp")))]
        if event in ("message", "message.any"):
            if not isinstance(payload, dict):
                raise ValueError(f"{event} needs an object payload")
            return [parse_message(payload)]
        if event == "message.ack":
            if not isinstance(payload, dict):
                raise ValueError("message.ack needs an object payload")
            ack = parse_ack(payload)
            return [ack if ack is not None else UnknownEvent(name="message.ack:unknown_value", raw=data)]
        if event == "message.reaction":
            if not isinstance(payload, dict):
                raise ValueError("message.reaction needs an object payload")
            return [parse_reaction(payload)]
        return [UnknownEvent(name=event, raw=data)]
