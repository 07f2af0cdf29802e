"""Which language a contact is spoken to in: the contact's language (detected, or set by an operator), the languages an
assistant serves, and the one rule that picks the reply's language from them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog

from backend.services.policies import LEGACY_TEXTS
from backend.services.texts import SHIPPED, SHIPPED_LANGUAGES, overrides_of, text_for
from backend.store import contacts as contacts_store
from rag.languages import DEFAULT, LANGUAGES, code_of_text_search

if TYPE_CHECKING:
    from backend.runtime import Runtime
    from backend.services.assistants import Assistant
    from backend.store.contacts import ContactRow

log = structlog.get_logger(__name__)


def served_languages(configured: Sequence[str], document_languages: Sequence[str], text_search: str) -> list[str]:
    """The languages an assistant answers in, its main one first: the operator's list, or when that is empty its
    documents' languages (codes, most passages first), then the language of its full-text setting, then English."""
    if configured:
        return list(dict.fromkeys(configured))
    found = [*document_languages, code_of_text_search(text_search)]
    return list(dict.fromkeys([*(code for code in found if code), DEFAULT]))


def reply_language(contact_language: str | None, served: Sequence[str], said_in: Sequence[str] = ()) -> str:
    """The language to write to a contact in: theirs when the assistant serves it, else the assistant's first.
    `said_in`: the languages of a command word the customer just wrote ("PARAR": pt) — its confirmation goes out in
    that language even when the contact's language is unknown or not served (the contact's own when the word is
    theirs too, then the assistant's languages in order; "" stands for the assistant's main language)."""
    main = served[0] if served else DEFAULT
    if said_in:
        said = [main if code == "" else code for code in said_in]
        for code in (contact_language, *served):
            if code in said:
                return code
        return said[0]
    return contact_language if contact_language in served else main


def fixed_text(assistant: Assistant, key: str, language: str) -> str:
    """The assistant's text `key` in `language` (see backend.services.texts): the operator's, else the shipped one,
    else the assistant's main language's."""
    main = assistant.served_languages[0]
    legacy = {LEGACY_TEXTS[name]: getattr(assistant.policies, name) for name in LEGACY_TEXTS}
    legacy["fallback"] = assistant.fallback_message if assistant.fallback_message != SHIPPED["fallback"][DEFAULT] else None
    return text_for(overrides_of(assistant.policies.texts, legacy, main), key, language, main)


def detection_candidates(assistant: Assistant) -> tuple[str, ...]:
    """The languages a customer's message is told apart among: those with shipped texts and those the assistant serves.
    Not only the served ones: a Spanish customer of a Portuguese-only shop is Spanish, not "the closest of pt and en"."""
    return tuple(dict.fromkeys([*SHIPPED_LANGUAGES, *(code for code in assistant.served_languages if code in LANGUAGES)]))


async def settle_contact_language(rt: Runtime, contact: ContactRow, assistant: Assistant, text: str) -> str | None:
    """The contact's language after reading `text` (a burst, transcripts included): a confident detection of a message
    long enough to judge becomes the contact's language unless an operator set it. Detection runs off the event loop."""
    if contact.language_source == "operator" or not text.strip():
        return contact.language
    detection = await asyncio.to_thread(rt.language_detector.detect, text, detection_candidates(assistant))
    if detection is None or detection.code == contact.language:
        return contact.language
    language = await contacts_store.set_detected_language(rt.db, contact.id, detection.code)
    log.info("contact.language_detected", contact=contact.id, language=language, confidence=detection.confidence)
    return language  # an operator's, should one have set it meanwhile
