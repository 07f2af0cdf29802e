"""Per-assistant reply policies, stored in `assistants.settings` (defaults fit most teams)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ReplyPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ignore_groups: bool = True
    ignore_broadcasts: bool = True
    burst_window_seconds: float = Field(default=2.0, ge=0, le=60, description="Messages this close are answered together")
    history_turns: int = Field(default=6, ge=0, le=50, description="Recent turns sent to the model as memory")
    memory_idle_minutes: int = Field(default=120, ge=1, description="After this much silence the conversation starts afresh")
    handoff_words: list[str] = Field(default_factory=lambda: ["human", "agent", "operator", "person"])
    resume_words: list[str] = Field(default_factory=lambda: ["#bot"])
    pause_minutes: int = Field(default=60, ge=1, description="Human takeover lasts this long unless resumed")
    opt_out_words: list[str] = Field(default_factory=lambda: ["stop", "unsubscribe"])
    opt_in_words: list[str] = Field(default_factory=lambda: ["start"])
    max_replies_per_contact_per_minute: int = Field(default=6, ge=1)
    max_replies_per_channel_per_minute: int = Field(default=60, ge=1)
    media_reply: str = "Thanks! I can't look at pictures or files yet — could you write your question?"
    voice_unclear_reply: str = "Sorry, I couldn't hear that voice note — could you type your question?"
    handoff_reply: str = "Thanks — a person from our team will reply here shortly."
    opt_out_reply: str = "You won't get more messages from us. Write START to opt back in."
    min_retrieval_score: float = Field(default=0.0, ge=0, description="Below this the fallback message is used")
    grounding_guard: bool = Field(
        default=True, description="A generated reply stating a fact (price, time, number...) the sources lack is not sent"
    )
    opt_in_reply: str = "Welcome back! Ask me anything."
    typing_seconds_per_char: float = Field(
        default=0.01, ge=0, le=1, description="Typing indicator shown before each part, by its length"
    )
    max_typing_seconds: float = Field(default=3.0, ge=0, le=30, description="Cap of the typing pause per part")


_NOT_WORD = re.compile(r"[^\w#@+\s]")


def _normalise(text: str) -> str:
    return " ".join(_NOT_WORD.sub(" ", text.casefold()).split())


def is_exact_command(text: str, words: list[str]) -> bool:
    """The whole message is one of `words` ("STOP", "stop!"), so "don't stop" is not an opt-out."""
    message = _normalise(text)
    return bool(message) and any(message == _normalise(word) for word in words if word.strip())


def mentions_any(text: str, words: list[str]) -> bool:
    """One of `words` (or phrases) appears as whole words anywhere in the message."""
    message = f" {_normalise(text)} "
    return any(f" {_normalise(word)} " in message for word in words if _normalise(word))


def typing_seconds(policy: ReplyPolicy, text: str) -> float:
    return min(policy.max_typing_seconds, len(text) * policy.typing_seconds_per_char)


def parse_policy(settings: Mapping | str | None) -> ReplyPolicy:
    """The policy of an assistant's stored settings (a dict, or jsonb text). Tolerant: keys written by an
    older or newer version are ignored, and a stored value that is no longer valid falls back to its default."""
    values = json.loads(settings) if isinstance(settings, str) else settings
    if not isinstance(values, Mapping):  # NULL, or something other than an object
        values = {}
    known = {key: value for key, value in values.items() if key in ReplyPolicy.model_fields}
    try:
        return ReplyPolicy(**known)
    except ValidationError as exc:
        bad = {error["loc"][0] for error in exc.errors() if error["loc"]}
        return ReplyPolicy(**{key: value for key, value in known.items() if key not in bad})
