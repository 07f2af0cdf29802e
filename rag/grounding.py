"""Grounding checks: does every fact-like token of a reply appear in the texts the reply may draw on?

A small model answering from numbered passages can invent prices, times, dates, phone numbers, e-mail addresses and
links. `check_grounding` extracts such facts from the reply and from every support text (the passages, the assistant's
instructions, the customer's own messages) with one extractor, normalises them, and lists the reply facts no support
fact backs. In brief: numbers compare by value (`1.80` = `1,80` = `1.8`; `1,800` may be 1800 or 1.8 and both are kept;
`12 000`, `12,000.50`; ordinals are numbers, number words are not facts). Money needs the same value AS MONEY: the same
currency (`$` matches any dollar or peso), or a bare number that stands where prices stand — written with two decimals
(`Croissant ..... 1.80`: price lists omit the currency), or in a paragraph that states or names money ("Prices", "€",
"preço"; a heading-only paragraph lends it to the next one) — and then only in a currency that support text writes,
when it writes any. So "about 20 minutes" never backs "20 euros", nor "Mühlgasse 7" "7 euros". A percentage needs the
value as a percentage or as a bare number. A quantity keeps its unit: a number followed by a unit word in English,
Portuguese, Spanish, German, French, Indonesian or Hindi (minutes, hours, days, weeks, months, years, nights, m/km,
miles, g/kg, ml/l, people: "2 anos", "3 a 5 días", "2 Jahre", "6 mois", "5 hari", "2 साल"; a number word 1-12 counts in
front of a unit: "two years") is backed only by the same amount of the same dimension ("24 months" = "2 years", "5000
m" = "5 km"; days are not converted to months, nor km to miles), never by "2 days" or a bare "2"; a range gives each
end the unit ("3-5 days"). Times compare as minutes since midnight (`2 pm` = `14:00` = `14h` = `14.00 Uhr`, noon =
12:00, midnight = 0:00; `2:00` without am/pm may be 2:00 or 14:00); a bare number equal to the hour also backs a time,
because documents write "Mon-Fri 8-18". Which sentences may back a reply (those about the question) is the caller's
choice of support texts; give a passage's heading as the first line of its text so "## Prices" lends its bare numbers
money. Dates compare by month and day, and by year when both give one (`05/06` may be 5 June or 6 May; a German
`24.12.` reads as the number 24.12, which backs 24 December). Phone numbers (7 to 15 digits) compare by digits, a
national form matching the international one by suffix. E-mails compare case-insensitively. A URL (or bare domain) is
backed by an equal URL or a longer one it is a prefix of, never by a shorter one. Citation markers, list enumerators,
`24/7` and digits inside words (`SmolLM2`, `mp3`, `B2B`) are not facts. Every pattern runs in linear time, and only the
first 20,000 characters of a text are read.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

MAX_CHARS = 20_000

# Per kind: number/money/percent → Decimal; time → minutes since midnight; date → (month, day, year | None);
# phone → the digits as written; email and url → the normalised string; quantity → (dimension, amount in its base unit).
Value = Decimal | int | str | tuple[int, int, int | None] | tuple[str, Decimal]


@dataclass(frozen=True)
class Fact:
    """One fact-like token of a text, with every normalised value it may stand for."""

    kind: str
    text: str
    values: frozenset[Value] = frozenset()
    currency: str | None = None
    start: int = 0
    unit: str | None = None  # a quantity's unit as written in English: "month", "km", "person"


@dataclass(frozen=True)
class Grounding:
    """The facts of a reply and those no support text backs."""

    facts: list[Fact]
    unsupported: list[Fact]

    @property
    def ok(self) -> bool:
        """True when every fact of the reply is backed by a support text."""
        return not self.unsupported


_Found = tuple[int, int, str, frozenset[Value], str | None]

# Length-preserving, so spans found in the folded text cut the original text.
_FOLD = str.maketrans(
    {
        **dict.fromkeys("\t\u00a0\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f", " "),
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
        "\u2019": "'",
        **{chr(0xFF10 + i): str(i) for i in range(10)},
    }
)
_MASK = "\x00"

_BRACKET = r"\[[ \t]*+[0-9]{1,4}(?:[ \t]*+[,;][ \t]*+[0-9]{1,4})*+[ \t]*+\]"
_NOT_FACTS = re.compile(
    r"\[[ \t]*+[0-9]{1,4}(?:[ \t]*+[,;-][ \t]*+[0-9]{1,4})*+[ \t]*+\]"  # citation markers, also [1-3]
    r"|^[ \t]*+(?:[*_]{1,2})?[0-9]{1,3}(?:[.)]|\ufe0f?\u20e3)(?:[*_]{1,2})?(?=[ \t])"  # list enumerators, 1️⃣ too
    r"|(?<![\w/])24/7(?![\w/])",
    re.ASCII | re.MULTILINE,
)

_URL_CHAR = r"[^\s<>\"'()\[\]{}|\\^`*\x00]"
# Only top-level domains that are not English words, so "for it.It's" or "e.g." never reads as a domain.
_TLDS = (
    "com|org|net|edu|gov|info|biz|io|co|uk|de|fr|es|nl|ch|eu|br|pt|pl|se|dk|fi|ie|ca|au|nz|jp|app|dev|ai|shop|store|online|site"
)
_URL = re.compile(
    rf"(?<![\w@./-])(?i:https?://|www\.){_URL_CHAR}++"
    rf"|(?<![\w@./:-])(?:[A-Za-z0-9-]++\.(?=[A-Za-z0-9]))++(?:{_TLDS})(?![A-Za-z0-9-])(?:[/?#]{_URL_CHAR}*+)?",
    re.ASCII,
)
_URL_TRAILING = ".,;:!?"
_SCHEME = re.compile(r"https?://", re.IGNORECASE)
_PATH_START = re.compile(r"[/?#]")

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]++@[A-Za-z0-9-]++(?:\.[A-Za-z0-9-]++)++", re.ASCII)

_PHONE = re.compile(
    r"(?<![\w+.,/:-])(?:\+[ ]?|\(\+?)?[0-9]++(?:(?:\)[ ]?|[ ]\(|\(|[ ]?/[ ]?|[-.]|[ ])[0-9]++)*+\)?",
    re.ASCII,
)
_DIGITS = re.compile(r"[0-9]+")
_NON_DIGITS = re.compile(r"[^0-9]+")
_NUMERIC_DATE = re.compile(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}|[0-9]{1,2}([./-])[0-9]{1,2}\1(?:[0-9]{4}|[0-9]{2})")

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_MONTHS = {
    name: i + 1 for i, name in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))
}
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_ORDINAL = r"(?:st|nd|rd|th)"
_DATE = re.compile(
    rf"(?<![\w.,])(?P<d1>[0-9]{{1,2}}){_ORDINAL}?\.?[ ](?:of[ ])?(?P<m1>{_MONTH})(?!\w)\.?(?:,?[ ](?P<y1>[0-9]{{4}})(?![0-9]))?"
    rf"|(?<!\w)(?P<m2>{_MONTH})(?!\w)\.?[ ](?:the[ ])?(?P<d2>[0-9]{{1,2}}){_ORDINAL}?(?!\w)(?:,?[ ](?P<y2>[0-9]{{4}})(?![0-9]))?"
    r"|(?<![\w.,/-])(?P<iy>[0-9]{4})-(?P<im>[0-9]{1,2})-(?P<id>[0-9]{1,2})(?![0-9])"
    r"|(?<![\w.,/-])(?P<a>[0-9]{1,2})(?P<s>[./-])(?P<b>[0-9]{1,2})(?P=s)(?P<y3>[0-9]{4}|[0-9]{2})(?![0-9])"
    r"|(?<![\w.,/-])(?P<a2>[0-9]{1,2})/(?P<b2>[0-9]{1,2})(?![0-9/])",
    re.ASCII | re.IGNORECASE,
)

_TIME = re.compile(
    r"(?<![\w.,:])(?P<h>[0-9]{1,2})(?:(?P<sep>[:.h])(?P<m>[0-9]{2}))?(?![0-9])"
    r"(?:[ ]?(?P<suf>[ap](?:\.m\.?|m)|uhr|h|o'clock)(?!\w))?"
    r"|(?<!\w)(?P<word>noon|midday|midnight)(?!\w)",
    re.ASCII | re.IGNORECASE,
)

_CURRENCIES = {
    **dict.fromkeys(("€", "eur", "euro", "euros"), "EUR"),
    # "$" alone is written for US, Mexican, Canadian and Australian money alike: it matches any of them.
    "$": "$",
    **dict.fromkeys(("us$", "usd", "dollar", "dollars"), "USD"),
    **dict.fromkeys(("mx$", "mxn", "peso", "pesos"), "MXN"),
    **dict.fromkeys(("rp", "idr", "rupiah"), "IDR"),
    # "pounds" may be a weight; reading it as money only makes the check stricter.
    **dict.fromkeys(("£", "gbp", "pound", "pounds"), "GBP"),
    **dict.fromkeys(("r$", "brl", "real", "reais", "reals"), "BRL"),
    **dict.fromkeys(("chf", "franc", "francs"), "CHF"),
    **dict.fromkeys(("¥", "jpy", "yen"), "JPY"),
    **dict.fromkeys(("₹", "inr", "rupee", "rupees"), "INR"),
    **dict.fromkeys(("c$", "cad"), "CAD"),
    **dict.fromkeys(("a$", "aud"), "AUD"),
    **{code.lower(): code for code in ("SEK", "NOK", "DKK", "PLN", "CZK")},
    **dict.fromkeys(("kr", "krona", "krone", "kronor", "kroner"), "KR"),
    # Cents are their own unit: "180 cents" does not back "1.80 euros". Converting would need the currency of the
    # cents, which the text rarely states, so the stricter reading is kept.
    **dict.fromkeys(("¢", "cent", "cents"), "CENT"),
}
_CODES = "EUR|USD|GBP|CHF|BRL|JPY|INR|CAD|AUD|SEK|NOK|DKK|PLN|CZK|MXN|IDR"
_CURRENCY_BEFORE = rf"US\$|R\$|C\$|A\$|MX\$|[€$£¥₹]|(?:{_CODES})(?![A-Za-z])|(?i:kr)\.?(?![A-Za-z])|Rp\.?(?![A-Za-z])"
_CURRENCY_AFTER = (
    rf"[€$£¥₹¢](?![0-9])|(?:{_CODES})(?![A-Za-z0-9])"
    r"|(?i:euros?|dollars?|pounds?|cents?|reais|reals?|francs?|yen|rupees?|pesos?|rupiah|kronor|kroner|krona|krone|kr)(?![A-Za-z])"
)
# Money compatible with another: "$" is any dollar or peso; everything else only itself.
_DOLLAR_SIGN_CURRENCIES = frozenset({"$", "USD", "MXN", "CAD", "AUD"})
_AMOUNT = re.compile(
    rf"(?:(?<!\w)(?P<pre>{_CURRENCY_BEFORE})[ ]?|(?<![\w.,])(?<![A-Za-z]-))"
    r"(?P<num>[0-9]{1,3}(?:[ ][0-9]{3}(?![0-9]))++(?:[.,][0-9]++)?|[0-9]++(?:[.,][0-9]++)*+)"
    r"(?:(?P<ord>(?i:st|nd|rd|th))(?!\w)|[ ]?(?P<pct>%|(?i:percent|per[ ]cent)(?![A-Za-z]))"
    rf"|(?(pre)(?!)|[ ]?(?P<suf>{_CURRENCY_AFTER})))?",  # no currency after the number when one came before
    re.ASCII,
)
# Quantities keep their unit: "2 years" is backed by "2 years" (or "24 months", "two years", "2 anos"), never by "2 days"
# or a bare "2". Each unit word (English, Portuguese, Spanish, German, French, Indonesian, Hindi) → its English name;
# each English name → (dimension, size in the dimension's base unit). Months and years are not converted to days.
_UNIT_SIZES: dict[str, tuple[str, Decimal]] = {
    "second": ("time", Decimal(1)),
    "minute": ("time", Decimal(60)),
    "hour": ("time", Decimal(3600)),
    "day": ("time", Decimal(86400)),
    "week": ("time", Decimal(604800)),
    "month": ("calendar", Decimal(1)),
    "year": ("calendar", Decimal(12)),
    "night": ("nights", Decimal(1)),
    "m": ("length", Decimal(1)),
    "km": ("length", Decimal(1000)),
    "mile": ("miles", Decimal(1)),
    "g": ("mass", Decimal(1)),
    "kg": ("mass", Decimal(1000)),
    "ml": ("volume", Decimal(1)),
    "l": ("volume", Decimal(1000)),
    "person": ("people", Decimal(1)),
}
_UNIT_WORDS: dict[str, tuple[str, ...]] = {
    "second": ("s", "sec", "secs", "second", "seconds", "segundo", "segundos", "sekunde", "sekunden", "seconde",
               "secondes", "detik", "सेकंड"),
    "minute": ("min", "mins", "minute", "minutes", "minuto", "minutos", "minuten", "menit", "मिनट"),
    "hour": ("h", "hr", "hrs", "hour", "hours", "hora", "horas", "stunde", "stunden", "std", "heure", "heures", "jam",
             "घंटा", "घंटे"),
    "day": ("day", "days", "dia", "dias", "día", "días", "tag", "tage", "tagen", "werktag", "werktage", "werktagen",
            "arbeitstag", "arbeitstage", "jour", "jours", "hari", "दिन"),
    "week": ("wk", "wks", "week", "weeks", "semana", "semanas", "woche", "wochen", "semaine", "semaines", "minggu",
             "सप्ताह", "हफ्ते", "हफ़्ते", "हफ्ता"),
    "month": ("mo", "mos", "month", "months", "mês", "mes", "meses", "monat", "monate", "monaten", "mois", "bulan",
              "महीना", "महीने"),
    "year": ("yr", "yrs", "year", "years", "ano", "anos", "año", "años", "jahr", "jahre", "jahren", "an", "ans",
             "année", "années", "tahun", "साल", "वर्ष"),
    "night": ("night", "nights", "noite", "noites", "noche", "noches", "nacht", "nächte", "nuit", "nuits", "malam", "रात"),
    "m": ("m", "metre", "metres", "meter", "meters", "metro", "metros", "mètre", "mètres", "मीटर"),
    "km": ("km", "kms", "kilometre", "kilometres", "kilometer", "kilometers", "quilômetro", "quilômetros",
           "quilómetro", "quilómetros", "kilómetro", "kilómetros", "kilomètre", "kilomètres", "किमी", "किलोमीटर"),
    "mile": ("mi", "mile", "miles", "milha", "milhas", "milla", "millas", "meile", "meilen"),
    "g": ("g", "gram", "grams", "gramme", "grammes", "grama", "gramas", "gramo", "gramos", "gramm"),
    "kg": ("kg", "kilo", "kilos", "kilogram", "kilograms", "kilogramme", "quilo", "quilos", "kilogramm"),
    "ml": ("ml",),
    "l": ("l", "litre", "litres", "liter", "liters", "litro", "litros"),
    "person": ("people", "person", "persons", "guest", "guests", "pessoa", "pessoas", "persona", "personas", "personen",
               "personne", "personnes", "orang", "pax", "लोग", "व्यक्ति"),
}  # fmt: skip
_UNIT_OF = {word: unit for unit, words in _UNIT_WORDS.items() for word in words}
# Number words 1-12 count only in front of a unit ("two years"); alone they stay words, as before.
_NUMBER_WORDS = {
    word: Decimal(value)
    for value, words in enumerate(
        (
            (),
            ("one", "um", "uma", "uno", "una", "ein", "eine", "einen", "einem", "un", "une", "satu", "एक"),
            ("two", "dois", "duas", "dos", "zwei", "deux", "dua", "दो"),
            ("three", "três", "tres", "drei", "trois", "tiga", "तीन"),
            ("four", "quatro", "cuatro", "vier", "quatre", "empat", "चार"),
            ("five", "cinco", "fünf", "cinq", "lima", "पांच", "पाँच"),
            ("six", "seis", "sechs", "enam", "छह"),
            ("seven", "sete", "siete", "sieben", "sept", "tujuh", "सात"),
            ("eight", "oito", "ocho", "acht", "huit", "delapan", "आठ"),
            ("nine", "nove", "nueve", "neun", "neuf", "sembilan", "नौ"),
            ("ten", "dez", "diez", "zehn", "dix", "sepuluh", "दस"),
            ("eleven", "onze", "elf"),
            ("twelve", "doze", "doce", "zwölf", "douze", "बारह"),
        )
    )
    for word in words
}
_NUM = r"[0-9]{1,3}(?:[ ][0-9]{3}(?![0-9]))++(?:[.,][0-9]++)?|[0-9]++(?:[.,][0-9]++)?"
_NUMBER_WORD = "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True))
_QUANTITY_NUMBER = rf"(?:(?<![\w.,])(?<![A-Za-z]-)(?:{_NUM})|(?<!\w)(?:{_NUMBER_WORD})(?!\w))"
_RANGE = r"(?:[ ]?-[ ]?|[ ](?:to|or|and|a|até|e|ou|o|y|bis|oder|und|à|au|et|hingga|sampai|atau|से)[ ])"
_UNIT_WORD = "|".join(sorted(map(re.escape, _UNIT_OF), key=len, reverse=True))
_QUANTITY = re.compile(
    rf"(?P<first>{_QUANTITY_NUMBER})(?:{_RANGE}(?P<second>{_QUANTITY_NUMBER}))?"
    r"[ -]?(?:(?:working|business|calendar|full|whole)[ ])?"  # "6-month warranty" too
    rf"(?P<unit>{_UNIT_WORD})(?![\w\u0900-\u097f])",  # Devanagari vowel signs are not \w
    re.IGNORECASE,
)
_CURRENCY_JUST_BEFORE = re.compile(rf"(?:{_CURRENCY_BEFORE})[ ]?$")

_WORD_CHAR = re.compile(r"\w", re.ASCII)
# Units written against the number ("10km", "1,5kg"); lowercase only, so model names like "360M" stay words.
_GLUED_UNIT = re.compile(r"(?:km|kg|mg|g|cm|mm|m|ml|l|h|hrs?|min|mins|s|x|kb|mb|gb|tb|k)(?!\w)", re.ASCII)


def extract_facts(text: str) -> list[Fact]:
    """Every fact-like token of `text` (its first 20,000 characters), in order of appearance."""
    original = text[:MAX_CHARS]
    work = original.translate(_FOLD)
    work = _mask(work, [match.span() for match in _NOT_FACTS.finditer(work)])
    facts: list[Fact] = []
    for stage in (_urls, _emails, _phones, _dates, _times, _quantities, _amounts):
        found = list(stage(work))
        facts.extend(
            Fact(kind, original[start:end], values, qualifier if kind == "money" else None, start,
                 qualifier if kind == "quantity" else None)
            for start, end, kind, values, qualifier in found
        )  # fmt: skip
        work = _mask(work, [(start, end) for start, end, *_ in found])
    facts.sort(key=lambda fact: fact.start)
    return facts


def check_grounding(reply: str, support: Iterable[str]) -> Grounding:
    """The facts of `reply`, and those that no fact of any support text backs."""
    facts = extract_facts(reply)
    index = _Support()
    if facts:
        for text in support:
            index.add_text(text)
    return Grounding(facts=facts, unsupported=[fact for fact in facts if not index.backs(fact)])


_WORDS = re.compile(r"\w+")


def states_fact(text: str, fact: str) -> bool:
    """Does `text` state `fact`? A fact-like one (price, time, date, phone, e-mail, URL, number) compares by
    value as `check_grounding` does (`1.80` = `1,80`); other words must appear in order as whole words,
    ignoring case, spacing and punctuation ("gluten-free" = "Gluten free"; "closed" is not in "unclosed")."""
    facts = extract_facts(fact)
    if facts:
        return check_grounding(fact, [text]).ok
    words = _WORDS.findall(fact.translate(_FOLD).casefold())
    if not words:
        return False
    phrase = r"\W+".join(re.escape(word) for word in words)
    return re.search(rf"(?<!\w){phrase}(?!\w)", text[:MAX_CHARS].translate(_FOLD).casefold()) is not None


_CITATION_RUN = re.compile(rf"(?<![ \t])(?P<lead>[ \t]*+)(?P<run>{_BRACKET}(?:[ \t]*+{_BRACKET})*+)", re.ASCII)
_BRACKETS = re.compile(_BRACKET, re.ASCII)
_CLOSES_GAP = " \t\n.,;:!?)]}…"


def strip_unknown_citations(text: str, sources: int) -> str:
    """Remove citation markers [n] (also [n, m], [n][m]) whose n is not in 1..sources; keep valid ones.

    The spaces left behind are tidied: no "word  ." and no double spaces.
    """
    pieces: list[str] = []
    pos = 0
    last = ""  # the last character written so far
    for match in _CITATION_RUN.finditer(text):
        if match.start() < pos:
            continue
        before = text[pos : match.start()]
        pos = match.end()
        brackets = [_DIGITS.findall(bracket) for bracket in _BRACKETS.findall(match["run"])]
        kept = [[n for n in numbers if 1 <= int(n) <= sources] for numbers in brackets]
        if kept == brackets:
            after = match.group(0)
        elif any(kept):
            after = match["lead"] + "".join(f"[{', '.join(numbers)}]" for numbers in kept if numbers)
        else:
            after = ""
            following = text[pos] if pos < len(text) else None
            if (before[-1:] or last) in ("", "\n"):
                while pos < len(text) and text[pos] in " \t":
                    pos += 1  # nothing left before it on the line: drop the space after it too
            elif following is not None and following not in _CLOSES_GAP:
                after = " "
        pieces += (before, after)
        last = after[-1:] or before[-1:] or last
    pieces.append(text[pos:])
    return "".join(pieces)


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    if not spans:
        return text
    pieces: list[str] = []
    pos = 0
    for start, end in spans:
        pieces.append(text[pos:start])
        pieces.append(_MASK * (end - start))
        pos = end
    pieces.append(text[pos:])
    return "".join(pieces)


def _urls(work: str) -> Iterator[_Found]:
    for match in _URL.finditer(work):
        raw = match.group(0).rstrip(_URL_TRAILING)
        key = _url_key(raw)
        if key:
            yield match.start(), match.start() + len(raw), "url", frozenset({key}), None


def _url_key(raw: str) -> str:
    scheme = _SCHEME.match(raw)
    rest = raw[scheme.end() :] if scheme else raw
    cut = _PATH_START.search(rest)
    host, path = (rest[: cut.start()], rest[cut.start() :]) if cut else (rest, "")
    host = host.lower()
    if host.startswith("www."):
        host = host[4:]
    return (host + path).rstrip("/" + _URL_TRAILING) if host else ""


def _emails(work: str) -> Iterator[_Found]:
    for match in _EMAIL.finditer(work):
        yield match.start(), match.end(), "email", frozenset({match.group(0).lower()}), None


def _phones(work: str) -> Iterator[_Found]:
    for match in _PHONE.finditer(work):
        digits = _phone_digits(match.group(0))
        if digits:
            yield match.start(), match.end(), "phone", frozenset({digits}), None


def _phone_digits(raw: str) -> str | None:
    groups = _DIGITS.findall(raw.replace("(0)", "") if raw.startswith("+") else raw)
    digits = "".join(groups)
    if not 7 <= len(digits) <= 15 or _NUMERIC_DATE.fullmatch(raw):
        return None
    marked = raw.startswith(("+", "(")) or (digits[0] == "0" and len(groups[0]) >= 2)
    if not marked:
        # Without a + or a trunk 0, digit groups are more often amounts, lists or year ranges than a phone number.
        if len(groups) == 1 or len(set(_NON_DIGITS.findall(raw))) > 1 or max(map(len, groups)) < 3:
            return None
        if len(groups[0]) <= 3 and all(len(group) == 3 for group in groups[1:]):
            return None
        if len(groups) == 2 and all(len(group) == 4 and group[:2] in ("19", "20") for group in groups):
            return None
    return digits


def _dates(work: str) -> Iterator[_Found]:
    for match in _DATE.finditer(work):
        groups = match.groupdict()
        if groups["m1"] or groups["m2"]:
            month = _MONTHS[(groups["m1"] or groups["m2"])[:3].lower()]
            day, year = int(groups["d1"] or groups["d2"]), groups["y1"] or groups["y2"]
            pairs = [(month, day)]
        elif groups["iy"]:
            pairs, year = [(int(groups["im"]), int(groups["id"]))], groups["iy"]
        else:
            first, second = int(groups["a"] or groups["a2"]), int(groups["b"] or groups["b2"])
            pairs, year = [(second, first), (first, second)], groups["y3"]
        full_year = None if year is None else int(year) + (2000 if len(year) == 2 else 0)
        values = frozenset(
            (month, day, full_year) for month, day in pairs if 1 <= month <= 12 and 1 <= day <= _DAYS_IN_MONTH[month - 1]
        )
        end = match.end() - (work[match.end() - 1] == ".")  # a full stop, or an abbreviation's point: not needed
        if values:
            yield match.start(), end, "date", values, None


def _times(work: str) -> Iterator[_Found]:
    for match in _TIME.finditer(work):
        minutes = _time_minutes(match)
        if minutes:
            yield match.start(), match.end(), "time", minutes, None


def _time_minutes(match: re.Match[str]) -> frozenset[Value]:
    word = (match["word"] or "").lower()
    if word:
        return frozenset({0 if word == "midnight" else 720})
    hour, minute, separator = int(match["h"]), int(match["m"] or 0), (match["sep"] or "").lower()
    suffix = (match["suf"] or "").lower().replace(".", "")
    if minute > 59:
        return frozenset()
    if suffix in ("am", "pm"):
        if 1 <= hour <= 12:
            return frozenset({(hour % 12 + (12 if suffix == "pm" else 0)) * 60 + minute})
        return frozenset({hour * 60 + minute}) if 13 <= hour <= 23 else frozenset()
    if not suffix and separator not in (":", "h"):
        return frozenset()  # "14.00" alone is a decimal, "14" alone a number
    if hour == 24 and minute == 0 and separator:
        hour = 0  # "24:00"; a bare "24h" is a duration
    if hour > 23:
        return frozenset()
    if 1 <= hour <= 12:
        return frozenset({hour * 60 + minute, (hour + 12) % 24 * 60 + minute})
    return frozenset({hour * 60 + minute})


def _quantities(work: str) -> Iterator[_Found]:
    for match in _QUANTITY.finditer(work):
        written = match["unit"]
        if len(written) == 1 and written.isupper():
            continue  # "360M", "5 M": a model size or millions, not metres
        if _CURRENCY_JUST_BEFORE.search(work, max(0, match.start() - 4), match.start()):
            continue  # "€5 m": money, left to the amounts
        unit = _UNIT_OF[written.lower()]
        dimension, size = _UNIT_SIZES[unit]
        numbers = [("first", match.end() if match["second"] is None else match.end("first"))]
        if match["second"] is not None:
            numbers.append(("second", match.end()))
        for group, end in numbers:
            raw = match[group]
            word = _NUMBER_WORDS.get(raw.lower())
            amounts = frozenset({word}) if word is not None else _number_values(raw)
            if amounts:
                yield match.start(group), end, "quantity", frozenset((dimension, amount * size) for amount in amounts), unit


def _amounts(work: str) -> Iterator[_Found]:
    for match in _AMOUNT.finditer(work):
        values = _number_values(match["num"])
        end = match.end()
        if not values:
            continue
        if end < len(work) and _WORD_CHAR.match(work, end):
            bare = not (match["ord"] or match["pct"] or match["suf"])
            if not (bare and _GLUED_UNIT.match(work, end)):
                continue  # digits inside a word: "2B", "360M"
        currency = match["pre"] or match["suf"]
        if match["pct"]:
            yield match.start(), end, "percent", values, None
        elif currency:
            yield match.start(), end, "money", values, _CURRENCIES[currency.rstrip(".").lower()]
        else:
            yield match.start(), end, "number", values, None


def _number_values(raw: str) -> frozenset[Value]:
    text = raw.replace(" ", "")
    if "." in text and "," in text:
        point = max(".,", key=text.rfind)  # the later separator is the decimal point
        whole, fraction = text.rsplit(point, 1)
        thousands = "," if point == "." else "."
        if point in whole or not _grouped(whole.split(thousands)):
            return frozenset()
        return frozenset({Decimal(f"{whole.replace(thousands, '')}.{fraction}")})
    separator = "." if "." in text else "," if "," in text else ""
    if not separator:
        return frozenset({Decimal(text)})
    parts = text.split(separator)
    if len(parts) > 2:
        return frozenset({Decimal("".join(parts))}) if _grouped(parts) else frozenset()  # "1.2.3" is a version
    values: set[Value] = {Decimal(f"{parts[0]}.{parts[1]}")}
    if _grouped(parts):
        values.add(Decimal("".join(parts)))  # "1,800": thousands or decimal, both kept
    return frozenset(values)


def _grouped(groups: list[str]) -> bool:
    return 1 <= len(groups[0]) <= 3 and groups[0] != "0" and all(len(group) == 3 for group in groups[1:])


def _clock_numbers(minutes: int) -> set[Decimal]:
    """The bare numbers a document may write for a time: 18:30 → 18.3 and 6.3, 14:00 → 14 and 2."""
    hour, minute = divmod(minutes, 60)
    fraction = Decimal(minute) / 100
    return {Decimal(hour) + fraction, Decimal(hour % 12 or 12) + fraction}


def _day_month_numbers(day: int, month: int) -> set[Decimal]:
    """How "24.12." (German, no year) reads as a number: 24.12, and "1.5." 1.5; such a number and the date back each other."""
    return {Decimal(f"{day}.{month}"), Decimal(f"{day}.{month:02d}")}


def _phone_key(digits: str) -> str:
    return digits.lstrip("0")  # trunk prefix "0" and international "00"


@dataclass
class _Support:
    plain: set[Value] = field(default_factory=set)  # values written as bare numbers
    numeric: set[Value] = field(default_factory=set)  # every number any fact shows
    money: set[tuple[Value, str]] = field(default_factory=set)
    percent: set[Value] = field(default_factory=set)
    minutes: set[Value] = field(default_factory=set)
    dates: dict[tuple[int, int], set[int | None]] = field(default_factory=dict)
    phones: dict[str, set[str]] = field(default_factory=dict)  # by their last seven digits
    emails: set[Value] = field(default_factory=set)
    urls: set[str] = field(default_factory=set)
    quantities: set[Value] = field(default_factory=set)  # (dimension, amount in the base unit)
    # Bare numbers that stand where prices stand, with the currencies their text writes (empty: it writes none).
    priced: set[tuple[Value, frozenset[str]]] = field(default_factory=set)

    def add_text(self, text: str) -> None:
        """Every fact of a support text; a bare number is also a price when it stands among prices (`_priced`)."""
        facts = extract_facts(text)
        currencies = frozenset(fact.currency or "" for fact in facts if fact.kind == "money")
        for fact, priced in zip(facts, _priced(text, facts), strict=True):
            self.add(fact)
            if priced:
                self.priced |= {(value, currencies) for value in fact.values}

    def add(self, fact: Fact) -> None:
        if fact.kind == "quantity":
            self.quantities |= fact.values
            size = _UNIT_SIZES[fact.unit or ""][1]
            self.numeric |= {amount / size for _, amount in fact.values}  # type: ignore[misc]
        elif fact.kind in ("number", "money", "percent"):
            self.numeric |= fact.values
            if fact.kind == "number":
                self.plain |= fact.values
            elif fact.kind == "percent":
                self.percent |= fact.values
            else:
                self.money |= {(value, fact.currency or "") for value in fact.values}
        elif fact.kind == "time":
            self.minutes |= fact.values
            for minutes in fact.values:
                self.numeric |= _clock_numbers(int(minutes))
        elif fact.kind == "date":
            for month, day, year in fact.values:
                self.dates.setdefault((month, day), set()).add(year)
                self.numeric |= _day_month_numbers(day, month) | {Decimal(day)} | ({Decimal(year)} if year else set())
        elif fact.kind == "phone":
            for digits in fact.values:
                key = _phone_key(str(digits))
                self.phones.setdefault(key[-7:], set()).add(key)
                self.numeric.add(Decimal(str(digits)))
        elif fact.kind == "email":
            self.emails |= fact.values
        elif fact.kind == "url":
            self.urls |= {str(value) for value in fact.values}

    def backs(self, fact: Fact) -> bool:
        if fact.kind == "number":
            return bool(fact.values & self.numeric) or any(
                self._phone(format(v, "f")) for v in fact.values if _is_long_integer(v)
            )
        if fact.kind == "money":
            return any(self._money(value, fact.currency or "") for value in fact.values)
        if fact.kind == "quantity":
            return bool(fact.values & self.quantities)
        if fact.kind == "percent":
            return bool(fact.values & (self.percent | self.plain))
        if fact.kind == "time":
            # A bare number equal to the hour backs a time: opening hours are often written "Mon-Fri 8-18".
            return bool(fact.values & self.minutes) or any(_clock_numbers(int(t)) & self.plain for t in fact.values)
        if fact.kind == "date":
            return any(self._date(*value) or _day_month_numbers(value[1], value[0]) & self.plain for value in fact.values)
        if fact.kind == "phone":
            return any(Decimal(str(digits)) in self.plain or self._phone(str(digits)) for digits in fact.values)
        if fact.kind == "email":
            return bool(fact.values & self.emails)
        if fact.kind == "url":
            return any(self._url(str(value)) for value in fact.values)
        return False

    def _money(self, value: Value, currency: str) -> bool:
        if any(value == other and _same_currency(currency, written) for other, written in self.money):
            return True
        # A price written without its currency backs the reply's currency unless its text writes other money only.
        return any(
            value == other and (not written or any(_same_currency(currency, c) for c in written))
            for other, written in self.priced
        )

    def _date(self, month: int, day: int, year: int | None) -> bool:
        years = self.dates.get((month, day))
        return years is not None and (year is None or None in years or year in years)

    def _phone(self, digits: str) -> bool:
        key = _phone_key(digits)
        for other in self.phones.get(key[-7:], ()):
            shorter, longer = sorted((key, other), key=len)
            if longer.endswith(shorter) and (len(shorter) >= 7 or shorter == longer):
                return True
        return False

    def _url(self, url: str) -> bool:
        # The reply may shorten a document's URL to a prefix ending at a path boundary, never lengthen it.
        return url in self.urls or any(
            other.startswith(url) and other[len(url)] in "/?#" for other in self.urls if len(other) > len(url)
        )


def _same_currency(one: str, other: str) -> bool:
    return one == other or (one in _DOLLAR_SIGN_CURRENCIES and other in _DOLLAR_SIGN_CURRENCIES and "$" in (one, other))


_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*+\n")
# A paragraph that names money without an amount ("Prices (€)", "in euros", "Preise") makes its bare numbers prices.
_MONEY_WORDS = re.compile(
    r"[€$£¥₹]|(?<!\w)(?:eur|euros?|usd|dollars?|reais|pesos?|mxn|rupiah|rp|gbp|pounds?|rupees?"
    r"|prices?|priced|costs?|fees?|charges?|tariffs?|preços?|valor|valores|custa|custam|custo|taxa|precios?|cuesta|cuestan"
    r"|coste|costo|tarifas?|preis|preise|kostet|kosten|gebühr|gebühren|prix|coûte|coûtent|tarifs?|harga|biaya|कीमत|दाम|शुल्क"
    r")(?!\w)",
    re.IGNORECASE,
)


def _priced(text: str, facts: list[Fact]) -> list[bool]:
    """Per fact: is it a bare number that stands where prices stand? Yes when it is written with two decimals
    ("Croissant ..... 1.80", how price lists omit the currency), or when its paragraph (the text between blank lines)
    states money or names it ("Prices", "€", "preço"). Numbers with a unit ("about 20 minutes", "8 people") never are."""
    work = text[:MAX_CHARS].translate(_FOLD)
    ends = [match.start() for match in _PARAGRAPH_BREAK.finditer(work)] + [len(work)]
    money_paragraphs: set[int] = set()
    start = previous = 0
    for index, end in enumerate(ends):
        if index - 1 in money_paragraphs and _HEADING.fullmatch(work, previous, start):
            money_paragraphs.add(index)  # under a heading that names money ("## Prices")
        if _MONEY_WORDS.search(work, start, end):
            money_paragraphs.add(index)
        previous, start = start, end
    money_paragraphs |= {bisect_right(ends, fact.start) for fact in facts if fact.kind == "money"}
    return [
        fact.kind == "number" and (bool(_TWO_DECIMALS.search(fact.text)) or bisect_right(ends, fact.start) in money_paragraphs)
        for fact in facts
    ]


_TWO_DECIMALS = re.compile(r"[.,][0-9]{2}$")
_HEADING = re.compile(r"\s*+(?:#[^\n]*+|[^\n.!?]{1,60})\s*+")  # one line: "## Prices", "Preços (R$)"


def _is_long_integer(value: Value) -> bool:
    return isinstance(value, Decimal) and value == value.to_integral_value() and value >= 1_000_000
