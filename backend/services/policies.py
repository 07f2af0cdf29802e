"""Per-assistant reply policies, stored in `assistants.settings` (defaults fit most teams)."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from backend.services.texts import SHIPPED_WORDS, TextKey, WordKind
from rag.languages import LANGUAGES

LanguageCode = Literal[tuple(LANGUAGES)]  # type: ignore[valid-type] - the codes of rag.languages.LANGUAGES

# What versions before per-language texts stored in every assistant's settings (a full dump of the defaults):
# read as "not customised", so the shipped words and texts of each language apply instead.
_OLD_DEFAULTS = {
    "handoff_words": ["human", "agent", "operator", "person"],
    "opt_out_words": ["stop", "unsubscribe"],
    "opt_in_words": ["start"],
    "media_reply": "Thanks! I can't look at pictures or files yet — could you write your question?",
    "voice_unclear_reply": "Sorry, I couldn't hear that voice note — could you type your question?",
    "handoff_reply": "Thanks — a person from our team will reply here shortly.",
    "opt_out_reply": "You won't get more messages from us. Write START to opt back in.",
    "opt_in_reply": "Welcome back! Ask me anything.",
}
# The older API's one text per key: kept as the operator's text in the assistant's main language.
LEGACY_TEXTS: dict[str, TextKey] = {
    "media_reply": "media",
    "voice_unclear_reply": "voice_unclear",
    "handoff_reply": "handoff",
    "opt_out_reply": "opt_out",
    "opt_in_reply": "opt_in",
}
_TEXT = Field(default=None, max_length=4000, description="Older API: this text in the assistant's main language (see `texts`)")
_WORDS = "Older API: words that work in every language, on top of each language's own (see `words`)"


class ReplyPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ignore_groups: bool = True
    ignore_broadcasts: bool = True
    burst_window_seconds: float = Field(default=2.0, ge=0, le=60, description="Messages this close are answered together")
    history_turns: int = Field(default=6, ge=0, le=50, description="Recent turns sent to the model as memory")
    memory_idle_minutes: int = Field(default=120, ge=1, description="After this much silence the conversation starts afresh")
    texts: dict[LanguageCode, dict[TextKey, str]] = Field(
        default_factory=dict,
        description="The operator's fixed texts: language → key → text (a missing one is the shipped text of that language)",
    )
    words: dict[LanguageCode, dict[WordKind, list[str]]] = Field(
        default_factory=dict,
        description="The operator's command words: language → handoff/opt_out/opt_in → words, replacing that language's "
        "shipped ones. Handoff words count anywhere in a message; opt-out and opt-in words only as the whole message.",
    )
    handoff_words: list[str] = Field(default_factory=list, description=_WORDS)
    resume_words: list[str] = Field(default_factory=lambda: ["#bot"])
    pause_minutes: int = Field(default=60, ge=1, description="Human takeover lasts this long unless resumed")
    opt_out_words: list[str] = Field(default_factory=list, description=_WORDS)
    opt_in_words: list[str] = Field(default_factory=list, description=_WORDS)
    max_replies_per_contact_per_minute: int = Field(default=6, ge=1)
    max_replies_per_channel_per_minute: int = Field(default=60, ge=1)
    media_reply: str | None = _TEXT
    voice_unclear_reply: str | None = _TEXT
    handoff_reply: str | None = _TEXT
    opt_out_reply: str | None = _TEXT
    min_retrieval_score: float = Field(default=0.0, ge=0, description="Below this the fallback message is used")
    grounding_guard: bool = Field(
        default=True, description="A generated reply stating a fact (price, time, number...) the sources lack is not sent"
    )
    answer_mode: Literal["generate", "quote", "auto"] = Field(
        default="auto",
        description="generate = the model writes the reply; quote = the documents' sentences that answer, verbatim; "
        "auto = quote with the bundled demo model or when a generated reply fails a check, else generate",
    )
    opt_in_reply: str | None = _TEXT
    typing_seconds_per_char: float = Field(
        default=0.01, ge=0, le=1, description="Typing indicator shown before each part, by its length"
    )
    max_typing_seconds: float = Field(default=3.0, ge=0, le=30, description="Cap of the typing pause per part")

    @field_validator("texts")
    @classmethod
    def _texts_fit(cls, texts: dict) -> dict:
        for by_key in texts.values():
            for key, text in by_key.items():
                if len(text) > 4000:
                    raise ValueError(f"the {key} text is longer than 4000 characters")
        # An empty text is no override: the shipped one applies.
        return {code: {key: text for key, text in by_key.items() if text.strip()} for code, by_key in texts.items()}

    @field_validator("words")
    @classmethod
    def _words_are_words(cls, words: dict) -> dict:
        for by_kind in words.values():
            for kind, listed in by_kind.items():
                if len(listed) > 50 or any(len(word) > 100 for word in listed):
                    raise ValueError(f"at most 50 {kind} words of at most 100 characters")
        return {
            code: {kind: [w.strip() for w in listed if _normalise(w)] for kind, listed in by_kind.items()}
            for code, by_kind in words.items()
        }

    @cached_property
    def command_words(self) -> dict[WordKind, dict[str, tuple[str, ...]]]:
        """kind → language → its words (the operator's for that language, else the shipped ones), normalised;
        the older API's words under "" (every language). Cached: policies are shared per stored settings."""
        codes = dict.fromkeys([*(code for by_code in SHIPPED_WORDS.values() for code in by_code), *self.words])
        table: dict[WordKind, dict[str, tuple[str, ...]]] = {}
        for kind, shipped in SHIPPED_WORDS.items():
            by_code = {code: self.words.get(code, {}).get(kind, shipped.get(code, [])) for code in codes}
            by_code[""] = getattr(self, f"{kind}_words")
            table[kind] = {code: tuple(filter(None, map(_normalise, words))) for code, words in by_code.items()}
        return table

    @cached_property
    def _every_language_words(self) -> dict[WordKind, frozenset[str]]:
        return {
            kind: frozenset(word for words in by_code.values() for word in words) for kind, by_code in self.command_words.items()
        }

    def says(self, kind: WordKind, text: str) -> bool:
        """Whether `text` is a `kind` command in any language: the whole message is an opt-out or opt-in word, or a
        handoff word or phrase appears in it as whole words."""
        return _says(kind, _normalise(text), self._every_language_words[kind])

    def languages_of_command(self, kind: WordKind, text: str) -> tuple[str, ...]:
        """The languages whose `kind` words `text` says ("" for the older API's words of every language)."""
        message = _normalise(text)
        return tuple(code for code, words in self.command_words[kind].items() if _says(kind, message, words))


def _says(kind: WordKind, message: str, words: frozenset[str] | tuple[str, ...]) -> bool:
    if kind != "handoff":
        return bool(message) and message in words
    padded = f" {message} "
    return any(f" {word} " in padded for word in words)


_ACCENT = re.compile(r"[\u0300-\u036f]")  # Latin accents: "arrêter" and "arreter" are one command
# Not a letter or digit: \w lacks the vowel signs of Indic scripts, which are kept (U+0900..U+0DFF).
_NOT_WORD = re.compile(r"[^\w\u0900-\u0dff#@+\s]")


def _normalise(text: str) -> str:
    text = _ACCENT.sub("", unicodedata.normalize("NFKD", text.casefold()))
    return " ".join(_NOT_WORD.sub(" ", text).split())


def is_exact_command(text: str, words: tuple[str, ...] | list[str]) -> bool:
    """The whole message is one of `words` ("STOP", "stop!"), so "don't stop" is not an opt-out."""
    message = _normalise(text)
    return bool(message) and any(message == _normalise(word) for word in words if word.strip())


def typing_seconds(policy: ReplyPolicy, text: str) -> float:
    return min(policy.max_typing_seconds, len(text) * policy.typing_seconds_per_char)


def parse_policy(settings: Mapping | str | None) -> ReplyPolicy:
    """The policy of an assistant's stored settings (a dict, or jsonb text). Tolerant: keys written by an
    older or newer version are ignored, and a stored value that is no longer valid falls back to its default."""
    values = json.loads(settings) if isinstance(settings, str) else settings
    if not isinstance(values, Mapping):  # NULL, or something other than an object
        values = {}
    known = {
        key: value for key, value in values.items() if key in ReplyPolicy.model_fields and value != _OLD_DEFAULTS.get(key, ...)
    }
    try:
        return ReplyPolicy(**known)
    except ValidationError as exc:
        bad = {error["loc"][0] for error in exc.errors() if error["loc"]}
        return ReplyPolicy(**{key: value for key, value in known.items() if key not in bad})
