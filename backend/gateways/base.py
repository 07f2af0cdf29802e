"""The one interface every WhatsApp gateway implements, and the provider-neutral events.

The rest of the backend speaks these types only — never a provider's raw JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

ChannelStatus = Literal["pending_qr", "ready", "disconnected"]


@dataclass(frozen=True)
class ChannelRef:
    """What a gateway needs to know about one of our channels."""

    id: int
    provider: str
    session_name: str
    webhook_secret: str


@dataclass(frozen=True)
class SessionState:
    status: ChannelStatus
    detail: str  # finer state: starting, scan_qr, working, failed, stopped, logged_out, ...
    qr: str | None = None  # the raw QR string, rendered by the console
    phone_number: str | None = None  # E.164 digits with a leading '+', once paired
    error: str | None = None


@dataclass(frozen=True)
class SentMessage:
    provider_message_id: str | None
    status: str = "sent"


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


@dataclass(frozen=True)
class UnknownEvent:
    name: str
    raw: Mapping = field(default_factory=dict, repr=False)


GatewayEvent = InboundMessage | SessionStatusEvent | QrUpdated | MessageAck | UnknownEvent


class Gateway(Protocol):
    """One WhatsApp bridge. Calls time out and retry with back-off; failures raise GatewayError."""

    name: str

    async def start_session(self, channel: ChannelRef, webhook_url: str) -> SessionState: ...

    async def get_state(self, channel: ChannelRef) -> SessionState: ...

    async def send_text(self, channel: ChannelRef, chat_id: str, text: str) -> SentMessage: ...

    async def find_recent_outgoing(self, channel: ChannelRef, chat_id: str, text: str) -> str | None:
        """The provider id of a message we sent to `chat_id` with this text, if the gateway has one.

        Used after a crash mid-send: if the gateway already has the message, it is not sent again."""
        ...

    async def mark_seen(self, channel: ChannelRef, chat_id: str, message_ids: list[str]) -> None: ...

    async def set_typing(self, channel: ChannelRef, chat_id: str, typing: bool) -> None: ...

    async def logout(self, channel: ChannelRef) -> None: ...

    async def restart(self, channel: ChannelRef, webhook_url: str) -> SessionState: ...

    async def delete_session(self, channel: ChannelRef) -> None: ...

    def check_webhook_headers(self, channel: ChannelRef, headers: Mapping[str, str]) -> bool:
        """What can be checked before the body is read: False means refuse without reading it."""
        ...

    def verify_webhook(self, channel: ChannelRef, headers: Mapping[str, str], body: bytes) -> bool: ...

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[GatewayEvent]: ...
