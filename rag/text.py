"""Text normalisation shared by every loader."""

from __future__ import annotations

import re
import unicodedata

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\u200c\u200d\ufeff]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_HYPHEN_BREAK = re.compile(r"(\w)-\n(\w)")


def normalise(text: str) -> str:
    """NFKC, unified line ends, no control characters or runs of spaces, at most one blank line."""
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def unwrap(text: str) -> str:
    """Join lines hard-wrapped inside a paragraph (PDF text), mending words hyphenated at a break."""
    text = _HYPHEN_BREAK.sub(r"\1\2", text)
    return re.sub(r"(?<!\n)\n(?!\n)", " ", text)
