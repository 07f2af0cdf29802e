"""WhatsApp ids: chat kinds (user, group, @lid, broadcast) and phone numbers from jids."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_DIGITS = re.compile(r"^\+?(\d{5,16})$")


def is_group(chat_id: str) -> bool:
    return chat_id.endswith("@g.us")


def is_broadcast(chat_id: str) -> bool:
    return chat_id.endswith("@broadcast") or chat_id.endswith("@newsletter")


def phone_from_jid(jid: str | None) -> str | None:
    """'+7911111' from '7911111@c.us' or '7911111:12@s.whatsapp.net'; None for @lid, groups, junk.

    An @lid id hides the number, so it never becomes a phone number."""
    if not jid or not isinstance(jid, str):
        return None
    user, _, server = jid.partition("@")
    if server not in {"c.us", "s.whatsapp.net", ""}:
        return None
    user = user.split(":", 1)[0]
    match = _DIGITS.match(user)
    return f"+{match.group(1)}" if match else None


def normalise_phone(value: str) -> str | None:
    """'+1 555-010-0000' → '+15550100000'; None when it is not a plausible number."""
    digits = re.sub(r"[\s\-().]", "", value or "")
    match = _DIGITS.match(digits)
    return f"+{match.group(1)}" if match else None


def from_unix(value: object) -> datetime | None:
    """A datetime from Unix seconds (int, float or numeric string); None when absent or odd."""
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if seconds > 1e11:  # milliseconds
        seconds /= 1000
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
