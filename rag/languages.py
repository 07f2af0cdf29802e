"""The languages the product serves, in one table, and the detector that tells them apart.

A language is named everywhere by its ISO 639-1 code ("pt"). From the code come its English name (what a prompt
asks for: small models follow "Answer in Portuguese." better than "in the language of the question"), its
PostgreSQL text-search configuration (`simple` where PostgreSQL has no stemmer), and the detector's own name.

Detection uses lingua restricted to these languages (all 75 cost 1.3 GB and 25 s to load; these few about
260 MB and a few seconds), built once per process by the `Runtime` and called from a thread.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Language:
    code: str  # ISO 639-1, as stored on contacts and assistants
    name: str  # English name, as a prompt says it
    native: str  # as the console shows it next to the English name
    text_search: str  # PostgreSQL regconfig for its full-text side
    lingua: str  # lingua.Language member


LANGUAGES: dict[str, Language] = {
    language.code: language
    for language in (
        Language("en", "English", "English", "english", "ENGLISH"),
        Language("pt", "Portuguese", "Português", "portuguese", "PORTUGUESE"),
        Language("es", "Spanish", "Español", "spanish", "SPANISH"),
        Language("de", "German", "Deutsch", "german", "GERMAN"),
        Language("fr", "French", "Français", "french", "FRENCH"),
        Language("id", "Indonesian", "Bahasa Indonesia", "indonesian", "INDONESIAN"),
        Language("hi", "Hindi", "हिन्दी", "simple", "HINDI"),  # PostgreSQL has no Hindi stemmer
        Language("it", "Italian", "Italiano", "italian", "ITALIAN"),
        Language("nl", "Dutch", "Nederlands", "dutch", "DUTCH"),
        Language("tr", "Turkish", "Türkçe", "turkish", "TURKISH"),
        Language("ru", "Russian", "Русский", "russian", "RUSSIAN"),
        Language("ar", "Arabic", "العربية", "arabic", "ARABIC"),
    )
}
DEFAULT = "en"
# The text-search configurations PostgreSQL ships that the old `assistants.language` column named.
_BY_TEXT_SEARCH = {language.text_search: language.code for language in LANGUAGES.values() if language.text_search != "simple"}


def language(code: str | None) -> Language:
    """The language of `code`, English when unknown or None."""
    return LANGUAGES.get(code or DEFAULT, LANGUAGES[DEFAULT])


def code_of_text_search(config: str) -> str | None:
    """The code of a PostgreSQL text-search configuration name ("portuguese" → "pt")."""
    return _BY_TEXT_SEARCH.get(config)


def text_search_of(code: str | None) -> str:
    """The PostgreSQL text-search configuration for a language code (`simple` when unknown)."""
    found = LANGUAGES.get(code or "")
    return found.text_search if found else "simple"


@dataclass(frozen=True)
class Detection:
    code: str
    confidence: float  # lingua's relative confidence of the best language, 0..1


# A message shorter than this (letters) says too little to change a contact's language: "ok", "👍", "sim".
MIN_LETTERS = 8
MIN_CONFIDENCE = 0.5
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)


class LanguageDetector:
    """lingua over `LANGUAGES`, loaded on first use (or by `load()` at start-up) and safe across threads."""

    def __init__(self, codes: tuple[str, ...] = tuple(LANGUAGES)) -> None:
        self.codes = codes
        self._detector = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._detector is None:
                from lingua import Language as LinguaLanguage
                from lingua import LanguageDetectorBuilder

                members = [getattr(LinguaLanguage, LANGUAGES[code].lingua) for code in self.codes]
                self._detector = LanguageDetectorBuilder.from_languages(*members).with_preloaded_language_models().build()
                self._names = {getattr(LinguaLanguage, LANGUAGES[code].lingua): code for code in self.codes}

    def detect(self, text: str, among: tuple[str, ...] | None = None) -> Detection | None:
        """The most likely language of `text` (limited to `among` when given), or None when the text is too short
        or no language is confident enough to act on."""
        if len(_LETTER.findall(text)) < MIN_LETTERS:
            return None
        self.load()
        values = self._detector.compute_language_confidence_values(text[:2000])
        ranked = [(self._names[value.language], value.value) for value in values if value.language in self._names]
        if among:
            ranked = [(code, value) for code, value in ranked if code in among]
            total = sum(value for _, value in ranked)
            ranked = [(code, value / total) for code, value in ranked] if total > 0 else []
        if not ranked:
            return None
        code, confidence = max(ranked, key=lambda pair: pair[1])
        return Detection(code, round(confidence, 4)) if confidence >= MIN_CONFIDENCE else None
