"""The languages the product serves, in one table, and the detector that tells them apart.

A language is named everywhere by its ISO 639-1 code ("pt"). From the code come its English name (what a prompt
asks for: small models follow "Answer in Portuguese." better than "in the language of the question"), its
PostgreSQL text-search configuration (`simple` where PostgreSQL has no stemmer), and the detector's own name.

Detection uses lingua restricted to these languages (all 75 cost 1.3 GB and 25 s to load; these 12 about 320 MB
and 1.1 s, 0.3 ms a line), built once per process by the `Runtime` and called from a thread. On 40 chat lines
(tests/unit/test_languages.py has the kinds) among the 7 shipped languages: 33 right, 6 left unknown (too short,
romanised Hindi, a close call), 1 wrong ("kak ready stok?", half English, read as English).
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
# Confident: the best language has at least this share of lingua's confidence among the candidates ...
MIN_CONFIDENCE = 0.5
# ... or a clear lead over the second (chat lines in slang, "oi, vcs abrem domingo?": pt 0.48, es 0.16).
MIN_LEAD_CONFIDENCE = 0.4
MIN_LEAD = 2.5
# Punctuation only one language writes: it settles a close call ("¿tienen pan sin gluten?": de 0.42, es 0.41).
_MARKS = {"es": frozenset("¿¡")}
# Letters, with the vowel signs of Indic scripts (not \w): "मुझे केक चाहिए" has 13, not 7.
_LETTER = re.compile(r"[^\W\d_]|[\u0900-\u0dff]")


class LanguageDetector:
    """lingua over `codes` (high accuracy: the low-accuracy mode saves memory but was confidently wrong on short
    chat lines), loaded on first use or by `load()` at start-up, and safe across threads (lingua releases no state)."""

    def __init__(self, codes: tuple[str, ...] = tuple(LANGUAGES)) -> None:
        self.codes = codes
        self._detector = None
        self._names: dict = {}
        self._lock = threading.Lock()

    def load(self) -> None:
        """Build the detector (about a second and 320 MB for the 12 languages); blocking, once."""
        with self._lock:
            if self._detector is None:
                from lingua import Language as LinguaLanguage
                from lingua import LanguageDetectorBuilder

                members = [getattr(LinguaLanguage, LANGUAGES[code].lingua) for code in self.codes]
                self._names = dict(zip(members, self.codes, strict=True))
                self._detector = LanguageDetectorBuilder.from_languages(*members).with_preloaded_language_models().build()

    def detect(self, text: str, among: tuple[str, ...] | None = None) -> Detection | None:
        """The language of `text` among `among` (default: all of the detector's), or None when the text is too
        short to judge ("ok", "👍", "sim") or no language is clearly ahead."""
        if len(_LETTER.findall(text)) < MIN_LETTERS:
            return None
        self.load()
        values = self._detector.compute_language_confidence_values(text[:2000])
        ranked = [(self._names[value.language], value.value) for value in values]
        if among:
            ranked = [(code, value) for code, value in ranked if code in among]
        total = sum(value for _, value in ranked)
        if total <= 0:
            return None
        ranked = sorted(((code, value / total) for code, value in ranked), key=lambda pair: -pair[1])
        (code, confidence), second = ranked[0], ranked[1][1] if len(ranked) > 1 else 0.0
        marked = [mark for mark, signs in _MARKS.items() if signs.intersection(text) and mark in dict(ranked[:2])]
        if len(marked) == 1:
            code, confidence = marked[0], dict(ranked)[marked[0]]
        elif not (confidence >= MIN_CONFIDENCE or (confidence >= MIN_LEAD_CONFIDENCE and confidence >= MIN_LEAD * second)):
            return None
        return Detection(code, round(confidence, 4))
