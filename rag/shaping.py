"""Markdown from the model → WhatsApp markup (*bold*, _italic_, ~strike~, lists), ≤4096-char parts."""

from __future__ import annotations

import re

WHATSAPP_MAX_CHARS = 4096

_FENCE = re.compile(r"```.*?```", re.DOTALL)
# Each pattern reads a stretch of text once, so a long hostile line costs time in proportion to its
# length: a span's text never holds its mark as a pair (**a **b** is "**a " then bold "b"), brackets
# do not nest in a link's label or target, and the target's parts cannot trade characters.
_BOLD = re.compile(r"\*\*(?=\S)((?:[^*\n]|\*(?!\*(?!\*)))+?)(?<=\S)\*\*|__(?=\S)((?:[^_\n]|_(?!_(?!_)))+?)(?<=\S)__")
_ITALIC_STAR = re.compile(r"(?<![\*\w])\*(?=[^\s*])([^*\n]+?)(?<=\S)\*(?![\*\w])")
_STRIKE = re.compile(r"~~(?=\S)((?:[^~\n]|~(?!~(?!~)))+?)(?<=\S)~~")
_IMAGE = re.compile(r"!\[([^\[\]]*)\]\(([^)\s\]]++)[^)\]]*+\)")
_LINK = re.compile(r"\[([^\[\]]+)\]\(([^)\s\]]++)[^)\]]*+\)")
# The closing hashes of a heading are cut with string operations (`_heading_text`): as a regex, the
# optional spaces and hashes around the title backtrack without end on a long run of spaces.
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+(.+)$", re.MULTILINE)
_BULLET = re.compile(r"^([ \t]*)[*+•][ \t]+", re.MULTILINE)
_RULE = re.compile(r"^[ \t]*([-*_])([ \t]*\1){2,}[ \t]*$", re.MULTILINE)
_SENTENCE_END = re.compile(r"(?<=[.!?…。！？])\s+")
BOLD_MARK = "\x00B\x00"


def markdown_to_whatsapp(text: str) -> str:
    blocks: list[str] = []

    def keep_block(match: re.Match) -> str:
        blocks.append(match.group(0))
        return f"\x00F{len(blocks) - 1}\x00"

    # NUL marks our placeholders (fenced blocks, bold): one in the text itself would be read as one.
    out = _FENCE.sub(keep_block, text.replace("\x00", "").replace("\r\n", "\n"))
    out = _RULE.sub("", out)
    out = _HEADING.sub(lambda m: f"{BOLD_MARK}{_strip_marks(_heading_text(m.group(1)))}{BOLD_MARK}", out)
    out = _BULLET.sub(r"\1- ", out)
    out = _BOLD.sub(lambda m: f"{BOLD_MARK}{m.group(1) or m.group(2)}{BOLD_MARK}", out)
    out = _ITALIC_STAR.sub(r"_\1_", out)
    out = _STRIKE.sub(r"~\1~", out)
    out = _IMAGE.sub(lambda m: f"{m.group(1)} ({m.group(2)})" if m.group(1) else m.group(2), out)
    out = _LINK.sub(lambda m: m.group(2) if m.group(1) == m.group(2) else f"{m.group(1)} ({m.group(2)})", out)
    out = out.replace(BOLD_MARK, "*")
    out = re.sub(r"\x00F(\d+)\x00", lambda m: blocks[int(m.group(1))], out)
    out = re.sub(r"\n{3,}", "\n\n", out)
    return out.strip()


def _heading_text(rest: str) -> str:
    """A heading's title from what follows its opening hashes: without closing hashes and the spaces
    around them, and never empty (a title of only hashes keeps its first)."""
    return rest.rstrip(" \t").rstrip("#").rstrip(" \t") or rest[:1]


def _strip_marks(text: str) -> str:
    return re.sub(r"(\*\*|__|\*)", "", text)


def split_message(text: str, limit: int = WHATSAPP_MAX_CHARS) -> list[str]:
    """Parts of at most `limit` characters, cut between paragraphs, then sentences, then words."""
    text = text.strip()
    if len(text) <= limit:
        return [text] if text else []
    parts: list[str] = []
    current = ""
    for piece in _pieces(text, limit):
        joiner = "" if not current else ("\n\n" if piece.startswith("\x00P") else " ")
        piece = piece.removeprefix("\x00P")
        if len(current) + len(joiner) + len(piece) <= limit:
            current += joiner + piece
        else:
            if current:
                parts.append(current)
            current = piece
    if current:
        parts.append(current)
    return parts


def _pieces(text: str, limit: int) -> list[str]:
    """Units that each fit: sentences (a paragraph's first marked with \\x00P), long ones cut at words."""
    pieces: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        first = True
        for sentence in _SENTENCE_END.split(paragraph.strip()):
            if not sentence:
                continue
            for unit in _cut(sentence, limit):
                pieces.append(("\x00P" if first else "") + unit)
                first = False
    return pieces


def _cut(sentence: str, limit: int) -> list[str]:
    if len(sentence) <= limit:
        return [sentence]
    out, current = [], ""
    for word in sentence.split(" "):
        while len(word) > limit:  # a single "word" longer than a message (e.g. a URL)
            if current:
                out.append(current)
                current = ""
            out.append(word[:limit])
            word = word[limit:]
        candidate = f"{current} {word}" if current else word
        if len(candidate) <= limit:
            current = candidate
        else:
            out.append(current)
            current = word
    if current:
        out.append(current)
    return out


def shape_for_whatsapp(markdown: str) -> tuple[str, list[str]]:
    text = markdown_to_whatsapp(markdown)
    return text, split_message(text)
