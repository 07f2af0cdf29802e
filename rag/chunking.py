"""Structure-aware chunking, sized in the embedding model's tokens.

A chunk never crosses a heading; inside a section, paragraphs are packed together up to the
size, long paragraphs are cut at sentences (then words), and consecutive chunks of the same
section share `overlap` tokens of trailing sentences so an answer cut in two is found whole.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from rag.loaders import Block

_SENTENCE_END = re.compile(r"(?<=[.!?…。！？])\s+")


@dataclass(frozen=True)
class Chunk:
    position: int
    heading: str  # heading path, e.g. "Returns > Refunds"
    text: str
    token_count: int

    @property
    def embedding_text(self) -> str:
        """What gets embedded: the heading path gives a short paragraph its context."""
        return f"{self.heading}\n{self.text}" if self.heading else self.text


def chunk_blocks(
    blocks: list[Block], count_tokens: Callable[[str], int], *, max_tokens: int = 200, overlap: int = 40
) -> list[Chunk]:
    overlap = min(overlap, max_tokens // 2)
    chunks: list[Chunk] = []
    path: list[tuple[int, str]] = []
    section: list[str] = []

    def flush_section() -> None:
        heading = " > ".join(text for _, text in path)
        budget = max(max_tokens - (count_tokens(heading) if heading else 0), max_tokens // 2)
        for text, tokens in _pack(section, count_tokens, budget, overlap):
            chunks.append(Chunk(len(chunks), heading, text, tokens))
        section.clear()

    for block in blocks:
        if block.is_heading:
            flush_section()
            path[:] = [(level, text) for level, text in path if level < block.level]
            path.append((block.level, block.text))
        else:
            section.append(block.text)
    flush_section()
    return chunks


def _units(paragraphs: list[str], count_tokens: Callable[[str], int], limit: int) -> list[tuple[str, int, bool]]:
    """(text, tokens, starts_paragraph) units each within `limit`: whole paragraphs when they fit,
    otherwise their sentences, and words for a sentence that alone is too long."""
    units: list[tuple[str, int, bool]] = []
    for paragraph in paragraphs:
        tokens = count_tokens(paragraph)
        if tokens <= limit:
            units.append((paragraph, tokens, True))
            continue
        first = True
        for sentence in _SENTENCE_END.split(paragraph):
            if not sentence.strip():
                continue
            for piece in _split_words(sentence, count_tokens, limit):
                units.append((piece, count_tokens(piece), first))
                first = False
    return units


def _split_words(sentence: str, count_tokens: Callable[[str], int], limit: int) -> list[str]:
    if count_tokens(sentence) <= limit:
        return [sentence]
    words = sentence.split()
    pieces: list[str] = []
    current: list[str] = []
    for word in words:
        if current and count_tokens(" ".join([*current, word])) > limit:
            pieces.append(" ".join(current))
            current = []
        current.append(word)
    if current:
        pieces.append(" ".join(current))
    return pieces


def _pack(paragraphs: list[str], count_tokens: Callable[[str], int], limit: int, overlap: int) -> list[tuple[str, int]]:
    units = _units(paragraphs, count_tokens, limit)
    out: list[tuple[str, int]] = []
    current: list[tuple[str, int, bool]] = []
    size = 0
    fresh = 0  # units in `current` not already emitted in the previous chunk

    def text_of(items: list[tuple[str, int, bool]]) -> str:
        parts: list[str] = []
        for i, (text, _, starts) in enumerate(items):
            parts.append(("\n\n" if starts and i else (" " if i else "")) + text)
        return "".join(parts)

    for unit in units:
        if current and size + unit[1] > limit:
            out.append((text_of(current), size))
            # carry trailing units (sentences) worth up to `overlap` tokens into the next chunk
            carried: list[tuple[str, int, bool]] = []
            carried_size = 0
            for item in reversed(current):
                if carried_size + item[1] > overlap or carried_size + item[1] + unit[1] > limit:
                    break
                carried.insert(0, item)
                carried_size += item[1]
            current, size, fresh = carried, carried_size, 0
        current.append(unit)
        size += unit[1]
        fresh += 1
    if current and fresh:
        out.append((text_of(current), size))
    return out
