"""Reactions as feedback on the bot's replies: stored against the reply, never answered."""

from __future__ import annotations

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


async def record_reaction(rt: Runtime, channel: ChannelRow, event: ReactionEvent) -> str:
    """The webhook outcome: `reaction` when it was kept (or taken back) on one of our replies."""
    if event.from_me:
        return "ignored:own_reaction"
    message_id = await store.set_reaction(
        rt.db, channel.id, event.reacted_to, event.sender_id, event.emoji, sentiment_of(event.emoji) if event.emoji else None
    )
    if message_id is None:
        return "ignored:reaction_to_unknown"
    log.info(
        "feedback.reaction", channel=channel.id, message=message_id, removed=event.removed, sentiment=sentiment_of(event.emoji)
    )
    return "reaction"
