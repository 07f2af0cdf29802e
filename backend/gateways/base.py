"""The one interface every WhatsApp gateway implements, and the provider-neutral events.

The rest of the backend speaks these types only — never a provider's raw JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol

ChannelStatus = Literal["pending_qr", "ready", "disconnected"]
# What a customer sent besides text. voice = a voice note (push-to-talk), audio = an audio file.
MediaKind = Literal["audio", "voice", "image", "video", "document", "sticker", "location", "contacts"]
WITHOUT_FILE = ("location", "contacts")  # kinds that are all in the webhook: nothing to download
# The mimetypes kept as the sender declared them, per kind. A sender chooses the mimetype freely (a modified client
# can call a voice note `text/html`), and a stored mimetype reaches the console's media widgets and the file route:
# anything else is stored as `application/octet-stream`, which no browser renders as a page. No SVG: it runs script.
SAFE_MIMETYPES: dict[str, frozenset[str]] = {
    # A voice note recorded in a browser (the sandbox) is WAV or WebM.
    "voice": frozenset(
        {"audio/ogg", "audio/opus", "audio/mpeg", "audio/mp4", "audio/aac", "audio/amr", "audio/webm", "audio/wav"}
    ),
    "audio": frozenset(
        {
            "audio/ogg",
            "audio/opus",
            "audio/mpeg",
            "audio/mp3",
            "audio/mp4",
            "audio/aac",
            "audio/amr",
            "audio/webm",
            "audio/wav",
            "audio/x-wav",
            "audio/flac",
            "audio/x-m4a",
        }
    ),
    "image": frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"}),
    "sticker": frozenset({"image/webp", "image/png"}),
    "video": frozenset({"video/mp4", "video/3gpp", "video/webm", "video/quicktime"}),
    "document": frozenset(
        {
            "application/pdf",
            "text/plain",
            "application/msword",
            "application/zip",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            "application/vnd.ms-excel",
        }
    ),
}
UNSAFE_MIMETYPE = "application/octet-stream"


def safe_mimetype(kind: str, declared: str | None) -> str | None:
    """The declared mimetype when it belongs to the kind (parameters such as `; codecs=opus` kept), else the
    neutral `application/octet-stream`; None stays None (nothing was declared)."""
    if declared is None:
        return None
    base = declared.split(";", 1)[0].strip().lower()
    if base in SAFE_MIMETYPES.get(kind, frozenset()) and len(declared) <= 100 and declared.isprintable():
        return declared.strip()
    return UNSAFE_MIMETYPE


@dataclass(frozen=True)
class ChannelRef:
    """What a gateway needs to know about one of our channels.

    `config` holds a provider's own settings, secrets included (the Cloud API's phone_number_id,
    access_token, app_secret, verify_token): kept out of repr and comparisons."""

    id: int
    provider: str
    session_name: str
    webhook_secret: str = field(repr=False)
    config: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class SessionState:
    status: ChannelStatus
    detail: str  # finer state: starting, scan_qr, working, failed, stopped, logged_out, ...
    qr: str | None = None  # the raw QR string, rendered by the console
    phone_number: str | None = None  # E.164 digits with a leading '+', once paired
    error: str | None = None
    display_name: str | None = None  # the account's name as WhatsApp shows it, when the gateway says (Cloud API)


@dataclass(frozen=True)
class SentMessage:
    provider_message_id: str | None
    status: str = "sent"


@dataclass(frozen=True)
class MediaRef:
    """A media attachment of an inbound message, and what its gateway needs to fetch the bytes.

    `handle` per provider: WAHA the file's `media.url`; Evolution the message id (for
    getBase64FromMediaMessage); Cloud API the media id; sandbox the message id. `inline_base64` is
    set when the webhook itself carried the file (Evolution with base64 webhooks, the sandbox)."""

    kind: MediaKind
    handle: str = ""
    mimetype: str | None = None
    filename: str | None = None
    caption: str | None = None
    size: int | None = None  # bytes, when the provider says
    sha256: str | None = None  # as the provider gives it (Meta: base64), for a check after download
    description: str | None = None  # location or contact card as a line of text (no file to download)
    inline_base64: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # At ingest, for every gateway: never store a sender's mimetype that a browser would run.
        object.__setattr__(self, "mimetype", safe_mimetype(self.kind, self.mimetype))

    @property
    def downloadable(self) -> bool:
        return self.kind not in WITHOUT_FILE and bool(self.handle or self.inline_base64)


@dataclass(frozen=True)
class InboundMessage:
    provider_message_id: str
    chat_id: str  # where a reply goes (user, group or @lid id), opaque
    sender_id: str  # the author (differs from chat_id in groups)
    text: str
    from_me: bool = False
    sent_by_api: bool = False  # fromMe sent through the gateway's API (our own replies), not the phone
    is_group: bool = False
    is_broadcast: bool = False  # status@broadcast, newsletters
    has_media: bool = False
    media_type: str | None = None
    timestamp: datetime | None = None
    sender_phone: str | None = None  # when the payload gives a real number (not for @lid)
    sender_name: str | None = None
    media: MediaRef | None = None  # set whenever has_media is and the kind is known


@dataclass(frozen=True)
class ReactionEvent:
    """A customer (or the phone's owner) reacted to a message with an emoji; "" = reaction removed."""

    reacted_to: str  # provider id of the message reacted to
    emoji: str
    chat_id: str
    sender_id: str
    provider_message_id: str | None = None  # the reaction's own id, when the provider gives one
    from_me: bool = False
    timestamp: datetime | None = None
    sender_phone: str | None = None

    @property
    def removed(self) -> bool:
        return self.emoji == ""

    @property
    def name(self) -> str:
        """For code that logs events by name, as it does an UnknownEvent's."""
        return "reaction"


@dataclass(frozen=True)
class SessionStatusEvent:
    state: SessionState
    at: datetime | None = None  # when the gateway emitted it, from the signed payload (None: it does not say)


@dataclass(frozen=True)
class QrUpdated:
    qr: str
    at: datetime | None = None


@dataclass(frozen=True)
class MessageAck:
    provider_message_id: str
    status: str  # pending, sent, delivered, read, played, failed
    error_code: str | None = None  # when failed and the provider says why (Cloud API: "131047", ...)
    error: str | None = None  # the provider's words for it


@dataclass(frozen=True)
class UnknownEvent:
    name: str
    raw: Mapping = field(default_factory=dict, repr=False)


GatewayEvent = InboundMessage | SessionStatusEvent | QrUpdated | MessageAck | ReactionEvent | UnknownEvent


class Gateway(Protocol):
    """One WhatsApp bridge. Calls time out and retry with back-off; failures raise GatewayError
    (subclasses in backend.gateways.errors say which: WindowClosed, RateLimited, TokenInvalid,
    MediaTooLarge, MediaUnavailable, NotSupported; `errors.retryable(exc)` says whether to retry)."""

    name: str
    # How long after the customer's last message a free-form reply may go out (None = no limit).
    reply_window: timedelta | None

    async def start_session(self, channel: ChannelRef, webhook_url: str) -> SessionState: ...

    async def get_state(self, channel: ChannelRef) -> SessionState: ...

    async def send_text(self, channel: ChannelRef, chat_id: str, text: str, reply_to: str | None = None) -> SentMessage:
        """Send `text`; with `reply_to` (a provider message id) it quotes that message."""
        ...

    async def find_recent_outgoing(self, channel: ChannelRef, chat_id: str, text: str) -> str | None:
        """The provider id of a message we sent to `chat_id` with this text, if the gateway has one.

        Used after a crash mid-send: if the gateway already has the message, it is not sent again."""
        ...

    async def mark_seen(self, channel: ChannelRef, chat_id: str, message_ids: list[str]) -> None: ...

    async def set_typing(self, channel: ChannelRef, chat_id: str, typing: bool) -> None: ...

    async def download_media(self, channel: ChannelRef, media: MediaRef, max_bytes: int) -> bytes:
        """The attachment's bytes. MediaTooLarge past `max_bytes` (reading stops there),
        MediaUnavailable (retryable) when the download fails, NotSupported for a location or contact."""
        ...

    async def request_pairing_code(self, channel: ChannelRef, phone_number: str) -> str:
        """A code to type on the phone (WhatsApp > Linked devices > Link with phone number) instead
        of scanning the QR. The session must be waiting for a scan (start_session first)."""
        ...

    async def logout(self, channel: ChannelRef) -> None: ...

    async def restart(self, channel: ChannelRef, webhook_url: str) -> SessionState: ...

    async def delete_session(self, channel: ChannelRef) -> None: ...

    def check_webhook_headers(self, channel: ChannelRef, headers: Mapping[str, str]) -> bool:
        """What can be checked before the body is read: False means refuse without reading it."""
        ...

    def verify_webhook(self, channel: ChannelRef, headers: Mapping[str, str], body: bytes) -> bool: ...

    def verification_challenge(self, channel: ChannelRef, params: Mapping[str, str]) -> str | None:
        """The answer to a GET on the webhook URL (the Cloud API's subscription handshake):
        the text to send back with 200, or None for 403. Only the Cloud API uses it."""
        ...

    def parse_webhook(self, headers: Mapping[str, str], body: bytes, channel: ChannelRef | None = None) -> list[GatewayEvent]:
        """The events in a verified body. With `channel`, events for another number (one Meta app
        posts every number's events to each webhook URL) become UnknownEvents."""
        ...
