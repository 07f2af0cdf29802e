"""What every gateway shares about inbound media: the kind a mimetype means, and files that
arrive inside the webhook as base64."""

from __future__ import annotations

import base64
import binascii

from backend.gateways.base import MediaKind
from backend.gateways.errors import MediaTooLarge, MediaUnavailable


def kind_from_mimetype(mimetype: str | None) -> MediaKind:
    """A best guess when the provider does not say: ogg/opus audio is how WhatsApp sends voice
    notes, webp images are stickers, anything not audio, image or video is a document."""
    mime = (mimetype or "").lower()
    if mime.startswith("audio/ogg") or mime.startswith("audio/opus"):
        return "voice"
    if mime == "image/webp":
        return "sticker"
    for prefix, kind in (("audio/", "audio"), ("image/", "image"), ("video/", "video")):
        if mime.startswith(prefix):
            return kind  # type: ignore[return-value]
    return "document"


def place(latitude: object, longitude: object, *names: object) -> str | None:
    """A location as one line of text: "52.52, 13.4 — Shop Main St 1" (None when it says nothing)."""
    where = ", ".join(str(value) for value in (latitude, longitude) if value not in (None, ""))
    name = " ".join(value for value in names if isinstance(value, str) and value)
    return " — ".join(part for part in (where, name) if part) or None


def decode_inline(encoded: str, max_bytes: int, *, source: str) -> bytes:
    """The bytes of a base64 file (a `data:` URL prefix is allowed), refused past `max_bytes`
    before any decoding."""
    if encoded.startswith("data:"):
        encoded = encoded.partition(",")[2]
    estimate = len(encoded) * 3 // 4
    if estimate > max_bytes + 2:  # padding makes the estimate up to 2 bytes high
        raise MediaTooLarge(f"The media file is over the {max_bytes}-byte limit.", max_bytes=max_bytes, size=estimate)
    try:
        data = base64.b64decode(encoded, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise MediaUnavailable(f"The base64 of the media file from {source} is corrupt.") from exc
    if len(data) > max_bytes:
        raise MediaTooLarge(
            f"The media file is {len(data)} bytes, over the {max_bytes}-byte limit.", max_bytes=max_bytes, size=len(data)
        )
    return data
