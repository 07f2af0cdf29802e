"""Sentences of the documents: split once at indexing time, embedded with their heading, chosen at question time.

A quoted answer (and the grounding support of a generated one) is made of the few sentences of the retrieved chunks
that are about the question. Each chunk's sentences are embedded when the chunk is stored, as "heading: sentence"
passages so that "Monday: closed" still says it is about opening hours; at question time one SQL query scores them
against the question vector retrieval already computed (`rag.store.scored_sentences`), so no sentence is embedded
while a customer waits.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from databases import Database

from rag import store
from rag.embedders import Embedder
from rag.indexing import embed_texts
from rag.types import Passage

# Sentence ends in the scripts the product serves: Latin/Cyrillic `.!?…`, Devanagari danda `।`/`॥`, Arabic `؟`,
# CJK full stops. Closing quotes and brackets stay with their sentence.
_END = re.compile(r"[.!?…।॥؟。！？]+[\"'”’)\]»]*(?=\s)")
_ALWAYS_ENDS = set("!?…।॥؟。！？")
_LIST_MARKER = re.compile(r"^\s*(?:[-*•‣◦·–]|\d{1,3}[.)])\s+")
_HAS_WORD = re.compile(r"\w")
# A line that ends like this goes on with the next one only if that one starts in lower case (hard-wrapped prose).
_LINE_END = re.compile(r"[.!?…।॥؟:;。！？]\W*$")
# Words a full stop follows without ending a sentence, in the languages served (lower case, without their last dot).
ABBREVIATIONS = frozenset(
    "e.g i.e etc vs approx appr ca cf dr mr mrs ms mx prof st no nos nr tel ph fig min max incl excl dept est "
    "sr sra srta dra av avda pág aprox p.ex ej ex tb obs "  # es, pt
    "z.b bzw usw ggf inkl evtl str hr fr u.a d.h s.o "  # de
    "mme mlle env p.ex "  # fr
    "jl no. tlp hlm dll dsb".split()  # id
)
MAX_SENTENCE_CHARS = 1000  # a "sentence" longer than this (a table row run together) is cut at a word


@dataclass(frozen=True)
class Sentence:
    """One sentence of a retrieved chunk, with its cosine similarity to the question (None when not known)."""

    chunk_id: int
    position: int  # its place in the chunk, from 0
    text: str
    score: float | None = None  # what sentences are ranked by: mostly `similarity`, a little of its chunk's
    rank: int = 0  # the rank of its chunk in the retrieval, from 1: ties and reading order
    similarity: float | None = None  # cosine similarity of the sentence (with its heading) to the question
    line: int = -1  # the line (paragraph or list item) of the chunk it is in, from 0; -1: not known
    vector: np.ndarray | None = field(default=None, repr=False, compare=False)  # as stored (with its heading)


@dataclass(frozen=True)
class SentenceVectors:
    """A chunk's sentences (in order) and their vectors (one row each)."""

    texts: list[str]
    vectors: np.ndarray


def split_sentences(text: str) -> list[str]:
    """The sentences of a chunk's text, in order: at sentence ends, line breaks and list items. Abbreviations
    ("approx.", "z.B."), initials, prices (1.80), times (7.30), e-mails and URLs never end a sentence: a full stop
    ends one only before white space and a word that does not start in lower case."""
    return [sentence for line in split_lines(text) for sentence in line]


def split_lines(text: str) -> list[list[str]]:
    """The sentences of a chunk's text, line by line (a paragraph or a list item each); lines without words left out."""
    lines = ([_cut(sentence) for sentence in _split_line(line) if _HAS_WORD.search(sentence)] for line in _lines(text))
    return [line for line in lines if line]


def line_numbers(text: str) -> list[int]:
    """For each sentence of `split_sentences(text)`, the number of its line."""
    return [number for number, line in enumerate(split_lines(text)) for _ in line]


def _lines(text: str) -> list[str]:
    """Lines without their list markers; a hard-wrapped line goes on in the next one."""
    lines: list[str] = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        item = _LIST_MARKER.match(raw)
        line = raw[item.end() :].strip() if item else raw.strip()
        if lines and not item and not _LINE_END.search(lines[-1]) and line[:1].islower():
            lines[-1] = f"{lines[-1]} {line}"
        else:
            lines.append(line)
    return lines


def _split_line(line: str) -> list[str]:
    pieces: list[str] = []
    start = 0
    for match in _END.finditer(line):
        end = match.end()
        if not _ends_sentence(line, match.start(), match.group(), end):
            continue
        pieces.append(line[start:end].strip())
        start = end
    pieces.append(line[start:].strip())
    return [piece for piece in pieces if piece]


def _ends_sentence(line: str, at: int, mark: str, end: int) -> bool:
    if set(mark) & _ALWAYS_ENDS:
        return True
    following = line[end:].lstrip()[:1]
    if following.islower():
        return False
    word = line[:at].rsplit(None, 1)[-1] if line[:at].strip() else ""
    word = word.lstrip("(\"'“‘«")
    if not word:
        return False
    if len(word) == 1 and word.isupper():  # an initial: "J. Smith"
        return False
    return word.casefold() not in ABBREVIATIONS


def _cut(sentence: str) -> str:
    if len(sentence) <= MAX_SENTENCE_CHARS:
        return sentence
    return sentence[:MAX_SENTENCE_CHARS].rsplit(" ", 1)[0] + " …"


def embedding_text(heading: str, sentence: str) -> str:
    """What is embedded for a sentence: its chunk's heading gives it context ("Opening hours: Monday: closed")."""
    heading = heading.rsplit(" > ", 1)[-1].strip() if heading else ""
    return f"{heading}: {sentence}" if heading else sentence


async def embed_sentences(
    embedder: Embedder,
    chunks: Sequence[tuple[str, str]],
    *,
    batch_size: int | None = None,
    on_progress: Callable[[float], Awaitable[None]] | None = None,
) -> list[SentenceVectors]:
    """The sentences of each chunk, given as (heading, text), and their vectors as passages, in the chunks' order.
    Embedded as `rag.indexing.embed_texts` does (similar lengths together, progress between batches).
    Store them with `store_document_sentences` (a document just indexed) or `rag.store.replace_sentences`."""
    per_chunk = [split_sentences(text) for _, text in chunks]
    texts = [
        embedding_text(heading, sentence)
        for (heading, _), sentences in zip(chunks, per_chunk, strict=True)
        for sentence in sentences
    ]
    vectors = await embed_texts(texts, embedder, batch_size=batch_size, on_progress=on_progress)
    result: list[SentenceVectors] = []
    offset = 0
    for sentences in per_chunk:
        result.append(SentenceVectors(sentences, vectors[offset : offset + len(sentences)]))
        offset += len(sentences)
    return result


async def store_document_sentences(
    db: Database, document_id: int, sentences: Sequence[SentenceVectors], embedding_model: str
) -> None:
    """Store the sentences of a document's chunks, given in the chunks' position order (inside the transaction that
    stored the chunks)."""
    chunk_ids = await store.chunk_ids_of(db, document_id)
    await store.replace_sentences(db, list(zip(chunk_ids, sentences, strict=True)), embedding_model)


# Sentences within this much of the best one's similarity answer the question as well as it does (quoted with it);
# within RELEVANT_MARGIN they are about the question (what a generated reply's facts may come from).
QUOTE_MARGIN = 0.025
RELEVANT_MARGIN = 0.06
MOST_QUOTED = 3
WHOLE_LINE_CHARS = 300  # a line this short is about one thing: quoted whole
MOST_RELEVANT = 8


def ranked(sentences: Sequence[Sentence]) -> list[Sentence]:
    """Best first: by similarity, then the better-ranked chunk, then reading order; a sentence repeated in two
    chunks (their overlap) only once."""
    seen: set[str] = set()
    out: list[Sentence] = []
    for sentence in sorted(
        sentences, key=lambda s: (-(s.score if s.score is not None else -1.0), s.rank, s.chunk_id, s.position)
    ):
        key = " ".join(sentence.text.split()).casefold()
        if key not in seen:
            seen.add(key)
            out.append(sentence)
    return out


def _near_best(sentences: Sequence[Sentence], margin: float, most: int) -> list[Sentence]:
    best = ranked(sentences)
    if not best:
        return []
    top = best[0].score
    if top is None:
        return best[:1]
    return [s for s in best if s.score is not None and s.score >= top - margin][:most]


def quoted(sentences: Sequence[Sentence], *, most: int = MOST_QUOTED, margin: float = QUOTE_MARGIN) -> list[Sentence]:
    """The one to `most` sentences that answer the question: the best and those almost as similar, in reading
    order (the better chunk first). A chosen sentence of a short line comes with the rest of its line, while there is
    room: "It costs 20 euros." says nothing without "XK-4471 is a blue stainless steel kettle." before it."""
    lines: dict[tuple[int, int], list[Sentence]] = {}
    for sentence in ranked(sentences):
        if sentence.line >= 0:
            lines.setdefault((sentence.chunk_id, sentence.line), []).append(sentence)
    chosen: list[Sentence] = []
    for best in _near_best(sentences, margin, most):
        line = in_reading_order(lines.get((best.chunk_id, best.line), [best]))
        short = len(line) <= most and sum(len(s.text) for s in line) <= WHOLE_LINE_CHARS
        fresh = [s for s in (line if short else [best]) if s not in chosen]
        if len(chosen) + len(fresh) > most:
            fresh = [best] if best not in chosen else []
        chosen.extend(fresh[: most - len(chosen)])
    return in_reading_order(chosen)


def relevant(sentences: Sequence[Sentence], *, most: int = MOST_RELEVANT, margin: float = RELEVANT_MARGIN) -> list[Sentence]:
    """The sentences about the question: a generated reply's facts must come from these."""
    return _near_best(sentences, margin, most)


def in_reading_order(sentences: Sequence[Sentence]) -> list[Sentence]:
    return sorted(sentences, key=lambda s: (s.rank, s.chunk_id, s.position))


_WORD = re.compile(r"\w+")


def by_shared_words(question: str, sentences: Sequence[Sentence]) -> list[Sentence]:
    """Sentences scored by the share of the question's words they contain: the choice when no vectors are known
    (the embedder is down, or a document was indexed before sentences had vectors)."""
    asked = {word.casefold() for word in _WORD.findall(question) if len(word) > 2}
    scored = []
    for sentence in sentences:
        words = {word.casefold() for word in _WORD.findall(sentence.text)}
        share = len(asked & words) / len(asked) if asked else 0.0
        scored.append(replace(sentence, score=round(share, 4)))
    return scored


# A sentence's rank score is its own similarity, with this share of its chunk's: a short line ("Phone: ...") of the
# chunk that answers then beats a similar-sounding line elsewhere. 0.3 chose the right sentence for 47 of the 48
# covered questions of tests/fixtures/businesses (46 with the sentence alone).
CHUNK_WEIGHT = 0.3


def split_passages(passages: Sequence[Passage]) -> list[Sentence]:
    """The sentences of ranked passages, unscored: their place, line and chunk rank known."""
    return [
        Sentence(p.chunk_id, position, text, rank=rank, line=line)
        for rank, p in enumerate(passages, start=1)
        for position, (text, line) in enumerate(zip(split_sentences(p.text), line_numbers(p.text), strict=True))
    ]


async def sentences_of(
    db: Database, question: str, passages: Sequence[Passage], vector: np.ndarray | None, embedding_model: str | None
) -> list[Sentence]:
    """The sentences of the retrieved `passages`, scored against the question's `vector` (one query over the
    sentences stored at indexing). Without a vector, or for a chunk whose sentences have no vectors of this model
    (indexed before they existed), they are split from the passages and scored by the question's words."""
    if not passages:
        return []
    by_chunk = {p.chunk_id: (rank, p) for rank, p in enumerate(passages, start=1)}
    rows = await store.scored_sentences(db, list(by_chunk), vector, embedding_model) if vector is not None else []
    if vector is None or {row["chunk_id"] for row in rows} != set(by_chunk):
        return by_shared_words(question, split_passages(passages))
    lines = {p.chunk_id: line_numbers(p.text) for p in passages}
    sentences = []
    for row in rows:
        rank, passage = by_chunk[row["chunk_id"]]
        similarity = float(row["score"])
        of_chunk = passage.dense_score
        score = similarity if of_chunk is None else (1 - CHUNK_WEIGHT) * similarity + CHUNK_WEIGHT * of_chunk
        numbers = lines[row["chunk_id"]]
        line = numbers[row["position"]] if row["position"] < len(numbers) else -1  # split otherwise when indexed
        sentences.append(
            Sentence(
                row["chunk_id"],
                row["position"],
                row["text"],
                round(score, 4),
                rank,
                round(similarity, 4),
                line,
                np.asarray(row["embedding"].to_numpy(), dtype=np.float32),
            )
        )
    return sentences
