"""Reactions as feedback on the bot's replies: stored against the reply, never answered."""

from __future__ import annotations

import unicodedata

import structlog

from backend.gateways.base import ReactionEvent
from backend.runtime import Runtime
from backend.store import reactions as store
from backend.store.channels import ChannelRow

log = structlog.get_logger(__name__)

# What a reaction says about the reply; other emoji are kept as they are, with no sentiment.
POSITIVE = frozenset({"👍", "❤️", "❤"})
NEGATIVE = frozenset({"👎"})


def sentiment_of(emoji: str) -> str | None:
    base = emoji.replace("\ufe0f", "")  # 👍🏽 and ❤️ arrive with skin tone or variation selectors
    base = "".join(ch for ch in base if not 0x1F3FB <= ord(ch) <= 0x1F3FF)
    if base in POSITIVE or emoji in POSITIVE:
        return "positive"
    if base in NEGATIVE:
        return "negative"
    return None


# A reaction is one emoji: with skin tones, ZWJ sequences and flags, at most this many code points.
MAX_EMOJI_CODE_POINTS = 16
_EMOJI_CATEGORIES = frozenset({"So", "Sk", "Mn", "Me", "Cf"})  # symbols, modifiers, variation selectors, ZWJ, tags


def is_reaction_emoji(text: str) -> bool:
    """A short emoji and nothing else: a modified client can send any string as a reaction, and the console shows it."""
    return 0 < len(text) <= MAX_EMOJI_CODE_POINTS and all(unicodedata.category(char) in _EMOJI_CATEGORIES for char in text)


async def record_reaction(rt: Runtime, channel: ChannelRow, event: ReactionEvent) -> str:
    """The webhook outcome: `reaction` when it was kept (or taken back) on one of our replies."""
    if event.from_me:
        return "ignored:own_reaction"
    if event.emoji and not is_reaction_emoji(event.emoji):
        return "ignored:not_an_emoji"
    message_id = await store.set_reaction(
        rt.db,
        channel.id,
        event.reacted_to,
        event.chat_id,
        event.sender_id,
        event.emoji,
        sentiment_of(event.emoji) if event.emoji else None,
    )
    if message_id is None:
        return "ignored:reaction_to_unknown"
    log.info(
        "feedback.reaction", channel=channel.id, message=message_id, removed=event.removed, sentiment=sentiment_of(event.emoji)
    )
    return "reaction"
