"""Every text the product sends on its own, per language: shipped wording, and the operator's per-assistant overrides.

Looked up by (assistant, key, language): the operator's text for that language, else the shipped one, else the
assistant's first language's, else English — so no customer who wrote in another language gets an English sentence
while a translation exists.
"""

from __future__ import annotations

from collections.abc import Mapping

# key → language code → text
SHIPPED: dict[str, dict[str, str]] = {
    "fallback": {"en": "Sorry, I don't know that yet. A person from our team will follow up."},
    "handoff": {"en": "Thanks — a person from our team will reply here shortly."},
    "opt_out": {"en": "You won't get more messages from us. Write START to opt back in."},
    "opt_in": {"en": "Welcome back! Ask me anything."},
    "media": {"en": "Thanks! I can't look at pictures or files yet — could you write your question?"},
    "voice_unclear": {"en": "Sorry, I couldn't hear that voice note — could you type your question?"},
    # Above the quoted sentences of the documents (the safe answer).
    "quote_intro": {"en": "Here is what our documents say about that:"},
}
KEYS = tuple(SHIPPED)


def text_for(overrides: Mapping[str, Mapping[str, str]], key: str, language: str, fallback_language: str = "en") -> str:
    """The text `key` in `language`: `overrides` (language → key → text, the assistant's own) first, then the shipped one,
    then the same in `fallback_language`, then English."""
    for code in (language, fallback_language, "en"):
        own = overrides.get(code, {}).get(key)
        if own:
            return own
        shipped = SHIPPED[key].get(code)
        if shipped:
            return shipped
    return SHIPPED[key]["en"]
