"""WhatsApp Cloud API (Meta's official Business Platform) over the Graph API: no QR and no
session, a channel is a phone number id plus the operator's access token and app secret.

Webhooks go to the URL set in the Meta app (one per app, so every number of the app posts to it):
a GET handshake answered with `hub.challenge`, then POSTs signed with `X-Hub-Signature-256`
(HMAC-SHA256 of the raw body under the app secret). Free-form messages may go out only within
24 hours of the customer's last message (`reply_window`); Meta refuses later ones with 131047,
raised as WindowClosed."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import aiohttp

from backend.errors import GatewayError, Invalid
from backend.gateways.base import (
    ChannelRef,
    GatewayEvent,
    InboundMessage,
    MediaRef,
    MessageAck,
    ReactionEvent,
    SentMessage,
    SessionState,
    UnknownEvent,
)
from backend.gateways.errors import (
    GatewayHttpError,
    MediaTooLarge,
    MediaUnavailable,
    NotSupported,
    RateLimited,
    TokenInvalid,
    WindowClosed,
)
from backend.gateways.headers import header
from backend.gateways.ids import from_unix, normalise_phone
from backend.gateways.media import place
from backend.gateways.transport import GatewayClient
from backend.settings import Settings

CONFIG_KEYS = ("phone_number_id", "access_token", "app_secret", "verify_token")
SIGNATURE_HEADER = "X-Hub-Signature-256"
MAX_TEXT = 4096  # characters in one text message (Meta's limit)
WINDOW_CLOSED = 131047
RATE_LIMITS = {130429, 131056, 80007}  # throughput, pair rate, account rate
TOKEN_INVALID = 190
STATUSES = {"sent": "sent", "delivered": "delivered", "read": "read", "played": "played", "failed": "failed"}
MEDIA_TYPES = ("audio", "image", "video", "document", "sticker")
_NUMBER_ID = re.compile(r"^\d{1,32}$")
_CHALLENGE = re.compile(r"^[A-Za-z0-9_\-.]{1,256}$")  # echoed back as text: nothing that could be markup


def validate_config(config: Mapping[str, Any]) -> dict[str, str]:
    """The four values a Cloud API channel needs, stripped; Invalid naming what is missing or wrong."""
    values = {key: str(config.get(key) or "").strip() for key in CONFIG_KEYS}
    missing = [key for key, value in values.items() if not value]
    if missing:
        message = f"A Cloud API channel needs {', '.join(missing)}."
        raise Invalid(message, code="cloud_config_missing", details={"missing": missing})
    if not _NUMBER_ID.match(values["phone_number_id"]):
        raise Invalid("phone_number_id is the number's id from Meta's app dashboard: digits only.", code="cloud_config_invalid")
    if len(values["verify_token"]) < 8 or not _CHALLENGE.match(values["verify_token"]):
        raise Invalid(
            "verify_token: choose 8 to 256 letters, digits, '-', '_' or '.' (paste the same in Meta's webhook settings).",
            code="cloud_config_invalid",
        )
    return values


def handshake_challenge(params: Mapping[str, str], verify_token: str) -> str | None:
    """Meta's subscription check: `hub.mode=subscribe` and our verify token → echo `hub.challenge`."""
    mode, token, challenge = (params.get(key) or "" for key in ("hub.mode", "hub.verify_token", "hub.challenge"))
    if mode != "subscribe" or not verify_token or not challenge or not _CHALLENGE.match(challenge):
        return None
    if not hmac.compare_digest(token.encode(), verify_token.encode()):
        return None
    return challenge


def graph_error(status: int, body: Any) -> GatewayHttpError | None:
    """A Graph API error answer (`{"error": {"code", "message", ...}}`) as the error it means."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    try:
        code = int(error.get("code"))
    except (TypeError, ValueError):
        code = None
    details = error.get("error_data", {}).get("details") if isinstance(error.get("error_data"), dict) else None
    words = str(details or error.get("message") or "no message")[:300]
    if code == TOKEN_INVALID:
        message = f"Meta refused the access token (error 190: {words}). Paste a new token."
        return TokenInvalid(message, http_status=status, body=body)
    if code == WINDOW_CLOSED:
        return WindowClosed(
            f"The customer last wrote more than 24 hours ago, so WhatsApp allows only a template now (error 131047: {words}).",
            http_status=status,
            body=body,
        )
    if code in RATE_LIMITS:
        return RateLimited(f"Meta is rate-limiting this number (error {code}: {words}).", http_status=status, body=body)
    return GatewayHttpError(f"The Cloud API answered {status} (error {code}: {words}).", http_status=status, body=body)


def _sha256_matches(data: bytes, given: str) -> bool:
    """Meta's `sha256` of a media file: hex in some answers, base64 in others."""
    digest = hashlib.sha256(data).digest()
    if re.fullmatch(r"[0-9a-fA-F]{64}", given):
        return hmac.compare_digest(digest.hex(), given.lower())
    try:
        return hmac.compare_digest(digest, base64.b64decode(given, validate=True))
    except (binascii.Error, ValueError):
        return False  # a hash we cannot read proves nothing: the file is not taken on trust


def _contacts(value: Mapping) -> list[dict]:
    contacts = value.get("contacts")
    return [c for c in contacts if isinstance(c, dict)] if isinstance(contacts, list) else []


def _identity(message: Mapping, contacts: list[dict]) -> tuple[str, str | None, str | None]:
    """(stable id, phone, name) of a message's author: the business-scoped `user_id` when Meta gives
    one (it does for everyone from 2026; `wa_id`, the phone, may then be absent), else `wa_id`."""
    phone_id = message.get("from") if isinstance(message.get("from"), str) else None
    user_id = message.get("from_user_id") if isinstance(message.get("from_user_id"), str) else None
    contact = next(
        (c for c in contacts if (phone_id and c.get("wa_id") == phone_id) or (user_id and c.get("user_id") == user_id)),
        contacts[0] if len(contacts) == 1 else {},
    )
    user_id = user_id or (contact.get("user_id") if isinstance(contact.get("user_id"), str) else None)
    phone_id = phone_id or (contact.get("wa_id") if isinstance(contact.get("wa_id"), str) else None)
    stable = user_id or phone_id
    if not stable:
        raise ValueError("a Cloud API message needs 'from' or a contact's user_id")
    profile = contact.get("profile") if isinstance(contact.get("profile"), dict) else {}
    name = profile.get("name") if isinstance(profile.get("name"), str) else None
    return stable, normalise_phone(phone_id) if phone_id else None, name


def _media(message: Mapping, kind: str) -> tuple[MediaRef, str]:
    """A media message's reference and its caption (the message's text)."""
    part = message.get(kind) if isinstance(message.get(kind), dict) else {}
    caption = part.get("caption") if isinstance(part.get("caption"), str) else ""
    if kind == "location":
        description = place(part.get("latitude"), part.get("longitude"), part.get("name"), part.get("address"))
        return MediaRef(kind="location", description=description), ""
    if kind == "contacts":
        cards = message.get("contacts") if isinstance(message.get("contacts"), list) else []
        lines = []
        for card in cards[:5]:
            if not isinstance(card, dict):
                continue
            name = (card.get("name") or {}).get("formatted_name") if isinstance(card.get("name"), dict) else None
            phones = [p.get("phone") for p in card.get("phones") or [] if isinstance(p, dict) and p.get("phone")]
            lines.append(" ".join(str(x) for x in [name, *phones[:3]] if x))
        return MediaRef(kind="contacts", description="\n".join(lines) or None), ""
    media_id = part.get("id")
    if not isinstance(media_id, str) or not media_id:
        raise ValueError(f"a Cloud API {kind} message needs {kind}.id")
    size = part.get("file_size")
    return (
        MediaRef(
            kind="voice" if kind == "audio" and part.get("voice") else kind,  # type: ignore[arg-type]
            handle=media_id,
            mimetype=part.get("mime_type") if isinstance(part.get("mime_type"), str) else None,
            filename=part.get("filename") if isinstance(part.get("filename"), str) else None,
            caption=caption or None,
            size=size if isinstance(size, int) else None,
            sha256=part.get("sha256") if isinstance(part.get("sha256"), str) else None,
        ),
        caption,
    )


def parse_message(message: Mapping, contacts: list[dict]) -> InboundMessage | ReactionEvent | UnknownEvent:
    """One `value.messages[]` item."""
    message_id, kind = message.get("id"), message.get("type")
    if not isinstance(message_id, str) or not message_id or not isinstance(kind, str):
        raise ValueError("a Cloud API message needs 'id' and 'type'")
    stable, phone, name = _identity(message, contacts)
    common = {"chat_id": stable, "sender_id": stable, "timestamp": from_unix(message.get("timestamp")), "sender_phone": phone}
    if kind == "reaction":
        reaction = message.get("reaction") if isinstance(message.get("reaction"), dict) else {}
        if not isinstance(reaction.get("message_id"), str):
            raise ValueError("a Cloud API reaction needs reaction.message_id")
        emoji = reaction.get("emoji") if isinstance(reaction.get("emoji"), str) else ""
        return ReactionEvent(reacted_to=reaction["message_id"], emoji=emoji, provider_message_id=message_id, **common)
    text, media = "", None
    if kind == "text":
        body = message.get("text")
        text = body.get("body") if isinstance(body, dict) and isinstance(body.get("body"), str) else ""
    elif kind == "button":  # a tap on a template's quick-reply button
        button = message.get("button")
        text = str(button.get("text") or "") if isinstance(button, dict) else ""
    elif kind == "interactive":  # a reply button or list row we offered
        interactive = message.get("interactive") if isinstance(message.get("interactive"), dict) else {}
        choice = interactive.get("button_reply") or interactive.get("list_reply") or {}
        text = str(choice.get("title") or "") if isinstance(choice, dict) else ""
    elif kind in (*MEDIA_TYPES, "location", "contacts"):
        media, text = _media(message, kind)
    else:  # unsupported, system, order, request_welcome, ...
        return UnknownEvent(name=f"message.{kind}"[:60], raw=message)
    return InboundMessage(
        provider_message_id=message_id,
        text=text,
        has_media=media is not None,
        media_type=(media.mimetype or media.kind) if media else None,
        sender_name=name,
        media=media,
        **common,
    )


def parse_status(status: Mapping) -> MessageAck | UnknownEvent:
    """One `value.statuses[]` item; a failed one carries Meta's first error code and title."""
    message_id, value = status.get("id"), status.get("status")
    if not isinstance(message_id, str) or not message_id or not isinstance(value, str):
        raise ValueError("a Cloud API status needs 'id' and 'status'")
    ours = STATUSES.get(value)
    if ours is None:
        return UnknownEvent(name=f"status.{value}"[:60], raw=status)
    errors = status.get("errors") if isinstance(status.get("errors"), list) else []
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    code = first.get("code")
    title = first.get("title") or first.get("message")
    return MessageAck(
        provider_message_id=message_id,
        status=ours,
        error_code=str(code) if code is not None and ours == "failed" else None,
        error=str(title)[:300] if title and ours == "failed" else None,
    )


class CloudGateway:
    name = "cloud"
    webhook_max_bytes = 1024 * 1024  # Meta's webhooks carry media ids, never the file
    reply_window: timedelta | None = timedelta(hours=24)

    def __init__(self, settings: Settings, http: aiohttp.ClientSession) -> None:
        self.client = GatewayClient(
            http,
            name="cloud",
            display_name="The WhatsApp Cloud API",
            base_url=f"{settings.cloud_api_url.rstrip('/')}/{settings.cloud_api_version}",
            headers={},
            timeout=settings.gateway_timeout_seconds,
            attempts=settings.gateway_attempts,
            classify=graph_error,
        )
        self.media_timeout = settings.media_download_timeout_seconds

    @staticmethod
    def _setting(channel: ChannelRef, key: str) -> str:
        value = str(channel.config.get(key) or "").strip()
        if not value:
            raise GatewayError(f"This Cloud API channel has no {key}: edit its settings.", code="cloud_config_missing")
        return value

    def _number_id(self, channel: ChannelRef) -> str:
        number_id = self._setting(channel, "phone_number_id")
        if not _NUMBER_ID.match(number_id):
            raise GatewayError("This Cloud API channel's phone_number_id is not a number id.", code="cloud_config_invalid")
        return number_id

    def _auth(self, channel: ChannelRef) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._setting(channel, 'access_token')}"}

    async def _post_message(self, channel: ChannelRef, body: dict, operation: str, *, idempotent: bool) -> Any:
        return await self.client.call(
            "POST",
            f"/{self._number_id(channel)}/messages",
            operation=operation,
            json_body={"messaging_product": "whatsapp", **body},
            headers=self._auth(channel),
            idempotent=idempotent,
        )

    # -- the number --

    async def start_session(self, channel: ChannelRef, webhook_url: str) -> SessionState:
        """Nothing to start: the number is ready when Meta accepts the token. The webhook URL is
        set by the operator in the Meta app (the API cannot set it with a number's token)."""
        return await self.get_state(channel)

    async def get_state(self, channel: ChannelRef) -> SessionState:
        try:
            answer = await self.client.call(
                "GET",
                f"/{self._number_id(channel)}",
                operation="get_number",
                params={"fields": "display_phone_number,verified_name,quality_rating"},
                headers=self._auth(channel),
            )
        except TokenInvalid as exc:
            return SessionState(status="disconnected", detail="failed", error=exc.message)
        except GatewayHttpError as exc:
            if exc.retryable:
                raise
            return SessionState(
                status="disconnected", detail="failed", error=f"Meta refused this number's settings: {exc.message}"
            )
        if not isinstance(answer, dict):
            raise GatewayHttpError("The Cloud API answered an unexpected phone number object.", http_status=502, body=answer)
        shown = answer.get("display_phone_number")
        name = answer.get("verified_name")
        return SessionState(
            status="ready",
            detail="working",
            phone_number=normalise_phone(shown) if isinstance(shown, str) else None,
            display_name=name if isinstance(name, str) else None,
        )

    async def restart(self, channel: ChannelRef, webhook_url: str) -> SessionState:
        return await self.get_state(channel)

    async def logout(self, channel: ChannelRef) -> None:
        """Nothing at Meta to log out of: the channel stops using the token (revoke it in Meta's Business settings)."""

    async def delete_session(self, channel: ChannelRef) -> None:
        """Nothing at Meta to delete."""

    async def request_pairing_code(self, channel: ChannelRef, phone_number: str) -> str:
        raise NotSupported("The Cloud API links a number in Meta's app dashboard, not with a pairing code.")

    # -- messages --

    async def send_text(self, channel: ChannelRef, chat_id: str, text: str, reply_to: str | None = None) -> SentMessage:
        if len(text) > MAX_TEXT:
            raise Invalid(f"A WhatsApp message holds at most {MAX_TEXT} characters; this one has {len(text)}.", code="too_long")
        # A phone number goes in `to`; a business-scoped user id (username users) in `recipient`.
        target = {"to": chat_id} if re.fullmatch(r"[0-9]{5,20}", chat_id) else {"recipient": chat_id}
        body: dict[str, Any] = {
            "recipient_type": "individual",
            **target,
            "type": "text",
            "text": {"preview_url": False, "body": text},
        }
        if reply_to:
            body["context"] = {"message_id": reply_to}
        answer = await self._post_message(channel, body, "send_text", idempotent=False)
        messages = answer.get("messages") if isinstance(answer, dict) else None
        first = messages[0] if isinstance(messages, list) and messages and isinstance(messages[0], dict) else {}
        message_id = first.get("id") if isinstance(first.get("id"), str) else None
        return SentMessage(provider_message_id=message_id, status="sent")

    async def find_recent_outgoing(self, channel: ChannelRef, chat_id: str, text: str) -> str | None:
        return None  # the Graph API keeps no message history to look in

    async def mark_seen(self, channel: ChannelRef, chat_id: str, message_ids: list[str]) -> None:
        """Read receipt and typing indicator in one call, on the newest message (WhatsApp marks
        the earlier ones read with it). The indicator lasts until our reply, or 25 s."""
        if not message_ids:
            return
        body = {"status": "read", "message_id": message_ids[-1], "typing_indicator": {"type": "text"}}
        await self._post_message(channel, body, "mark_read", idempotent=True)

    async def set_typing(self, channel: ChannelRef, chat_id: str, typing: bool) -> None:
        """Typing rides on the read receipt (mark_seen): the Cloud API has no call of its own for it."""

    # -- media --

    async def download_media(self, channel: ChannelRef, media: MediaRef, max_bytes: int) -> bytes:
        """Media id → a URL valid for 5 minutes (GET /{media-id}) → the bytes, with the token both times."""
        if not media.downloadable:
            raise NotSupported(f"A WhatsApp {media.kind} has no file to download.")
        info = await self.client.call(
            "GET",
            f"/{quote(media.handle, safe='')}",
            operation="get_media",
            params={"phone_number_id": self._number_id(channel)},
            headers=self._auth(channel),
        )
        url = info.get("url") if isinstance(info, dict) else None
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise MediaUnavailable("The Cloud API gave no download link for this media.")
        size = info.get("file_size")
        if isinstance(size, int) and size > max_bytes:
            message = f"The media file is {size} bytes, over the {max_bytes}-byte limit."
            raise MediaTooLarge(message, max_bytes=max_bytes, size=size)
        data = await self.client.download(
            url, operation="download_media", max_bytes=max_bytes, seconds=self.media_timeout, headers=self._auth(channel)
        )
        expected = info.get("sha256") or media.sha256
        if isinstance(expected, str) and expected and not _sha256_matches(data, expected):
            raise MediaUnavailable("The media file arrived damaged (its SHA-256 does not match Meta's).")
        return data

    # -- webhooks --

    def check_webhook_headers(self, channel: ChannelRef, headers: Mapping[str, str]) -> bool:
        """The signature covers the body, so before it only a well-formed header can be required."""
        return re.fullmatch(r"sha256=[0-9a-fA-F]{64}", header(headers, SIGNATURE_HEADER).strip()) is not None

    def verify_webhook(self, channel: ChannelRef, headers: Mapping[str, str], body: bytes) -> bool:
        """`X-Hub-Signature-256` must be sha256=<hex HMAC-SHA256 of the raw body under the app secret>."""
        secret = str(channel.config.get("app_secret") or "")
        given = header(headers, SIGNATURE_HEADER).strip()
        if not secret or not self.check_webhook_headers(channel, headers):
            return False
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(given[len("sha256=") :].lower(), expected)

    def verification_challenge(self, channel: ChannelRef, params: Mapping[str, str]) -> str | None:
        return handshake_challenge(params, str(channel.config.get("verify_token") or ""))

    def parse_webhook(self, headers: Mapping[str, str], body: bytes, channel: ChannelRef | None = None) -> list[GatewayEvent]:
        data = json.loads(body)
        if not isinstance(data, dict) or not isinstance(data.get("entry"), list):
            raise ValueError("a Cloud API webhook is an object with an 'entry' list")
        if data.get("object") != "whatsapp_business_account":
            return [UnknownEvent(name=f"object.{data.get('object')}"[:60], raw=data)]
        ours = str(channel.config.get("phone_number_id") or "") if channel is not None else ""
        events: list[GatewayEvent] = []
        for entry in data["entry"]:
            changes = entry.get("changes") if isinstance(entry, dict) else None
            if not isinstance(changes, list):
                raise ValueError("each Cloud API entry has a 'changes' list")
            for change in changes:
                if not isinstance(change, dict) or not isinstance(change.get("value"), dict):
                    raise ValueError("each Cloud API change has an object 'value'")
                events.extend(self._change_events(change, ours))
        return events

    @staticmethod
    def _change_events(change: Mapping, ours: str) -> list[GatewayEvent]:
        value, field_name = change["value"], change.get("field")
        if field_name != "messages":
            return [UnknownEvent(name=f"field.{field_name}"[:60], raw=value)]
        metadata = value.get("metadata") if isinstance(value.get("metadata"), dict) else {}
        if not metadata.get("phone_number_id"):
            raise ValueError("a Cloud API messages change needs value.metadata.phone_number_id")
        if ours and str(metadata["phone_number_id"]) != ours:
            return [UnknownEvent(name="other_number", raw=metadata)]  # the app's other number
        contacts = _contacts(value)
        events: list[GatewayEvent] = []
        for key in ("messages", "statuses", "errors"):
            if not isinstance(value.get(key) or [], list):
                raise ValueError(f"value.{key} is a list")
        for message in value.get("messages") or []:
            if not isinstance(message, dict):
                raise ValueError("value.messages holds objects")
            events.append(parse_message(message, contacts))
        for status in value.get("statuses") or []:
            if not isinstance(status, dict):
                raise ValueError("value.statuses holds objects")
            events.append(parse_status(status))
        for error in value.get("errors") or []:
            events.append(UnknownEvent(name="errors", raw=error if isinstance(error, dict) else {"error": error}))
        return events or [UnknownEvent(name="messages.empty", raw=value)]
