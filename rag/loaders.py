"""Loading documents: detect the type from the bytes, extract text as headed blocks.

Supported: plain text, Markdown, HTML (main content only), PDF (pypdf), DOCX (python-docx).
Everything else, and anything that does not parse, is refused with a `DocumentError`.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

import filetype

from rag.errors import CorruptDocument, DocumentTooLarge, EmptyDocument, UnsupportedDocument
from rag.text import normalise, unwrap

TXT, MD, HTML, PDF, DOCX = (
    "text/plain",
    "text/markdown",
    "text/html",
    "application/pdf",
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
)
SUPPORTED = {TXT: "plain text", MD: "Markdown", HTML: "HTML", PDF: "PDF", DOCX: "Word (.docx)"}
EXTENSIONS = {
    ".txt": TXT, ".text": TXT, ".md": MD, ".markdown": MD, ".html": HTML, ".htm": HTML, ".pdf": PDF, ".docx": DOCX,
}  # fmt: skip


@dataclass(frozen=True)
class Block:
    """A heading (level 1-6) or a paragraph (level 0) of a document."""

    text: str
    level: int = 0

    @property
    def is_heading(self) -> bool:
        return self.level > 0


@dataclass(frozen=True)
class LoadedDocument:
    content_type: str
    blocks: list[Block]

    @property
    def text(self) -> str:
        return "\n\n".join(b.text for b in self.blocks)


def detect_type(filename: str, data: bytes) -> str:
    """The content type, from the bytes first; the name only tells Markdown from text."""
    ext = PurePosixPath(filename.lower()).suffix
    kind = filetype.guess(data[:8192])
    if kind is not None:
        if kind.mime == PDF:
            return PDF
        if kind.mime == DOCX or (kind.mime == "application/zip" and ext == ".docx"):
            return DOCX
        raise UnsupportedDocument(f"'{filename}' is of type {kind.mime}; supported types are {', '.join(SUPPORTED.values())}.")
    if data.lstrip()[:5] == b"%PDF-" or ext == ".pdf":
        raise CorruptDocument(f"'{filename}' is named like a PDF but is not a readable PDF.")
    if ext == ".docx":
        raise CorruptDocument(f"'{filename}' is named like a Word document but is not a readable .docx.")
    text = decode_text(filename, data)
    head = text[:2048].lower()
    if ext in (".html", ".htm") or re.search(r"<!doctype html|<html[\s>]|<body[\s>]", head):
        return HTML
    if ext in (".md", ".markdown"):
        return MD
    if ext and ext not in EXTENSIONS:
        raise UnsupportedDocument(
            f"'{filename}': '{ext}' files are not supported; supported types are {', '.join(SUPPORTED.values())}."
        )
    return MD if re.search(r"^#{1,6}\s+\S", text[:4096], re.MULTILINE) else TXT


def decode_text(filename: str, data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if b"\x00" in data[:8192]:
        raise UnsupportedDocument(f"'{filename}' is a binary file of a type we cannot read.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise UnsupportedDocument(f"'{filename}' is neither UTF-8 nor Windows-1252 text.") from exc


def load_document(filename: str, data: bytes, *, max_bytes: int) -> LoadedDocument:
    """Detect, extract and normalise; raises a `DocumentError` with a message for the operator."""
    if len(data) > max_bytes:
        raise DocumentTooLarge(f"'{filename}' is {len(data) / 1048576:.1f} MB; the limit is {max_bytes / 1048576:.0f} MB.")
    if not data.strip():
        raise EmptyDocument(f"'{filename}' is empty.")
    content_type = detect_type(filename, data)
    reader = {TXT: _plain, MD: _markdown, HTML: _html, PDF: _pdf, DOCX: _docx}[content_type]
    blocks = [b for b in (Block(normalise(b.text), b.level) for b in reader(filename, data)) if b.text]
    if not any(not b.is_heading for b in blocks):
        raise EmptyDocument(f"'{filename}' has no text we could extract (a scanned PDF needs OCR first).")
    return LoadedDocument(content_type=content_type, blocks=blocks)


def _paragraphs(text: str) -> list[Block]:
    return [Block(p) for p in re.split(r"\n\s*\n", text) if p.strip()]


def _plain(filename: str, data: bytes) -> list[Block]:
    return _paragraphs(unwrap(normalise(decode_text(filename, data))))


_MD_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_MD_INLINE = [
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),
    (re.compile(r"(\*\*|__)(.+?)\1"), r"\2"),
    (re.compile(r"`([^`]+)`"), r"\1"),
]


def _markdown(filename: str, data: bytes) -> list[Block]:
    blocks: list[Block] = []
    paragraph: list[str] = []
    in_fence = False

    def flush() -> None:
        if paragraph:
            text = "\n".join(paragraph)
            for pattern, repl in _MD_INLINE:
                text = pattern.sub(repl, text)
            blocks.append(Block(text))
            paragraph.clear()

    for line in decode_text(filename, data).replace("\r\n", "\n").split("\n"):
        if line.strip().startswith("```"):
            in_fence = not in_fence
            continue
        heading = None if in_fence else _MD_HEADING.match(line)
        if heading:
            flush()
            blocks.append(Block(heading.group(2), level=len(heading.group(1))))
        elif not line.strip() and not in_fence:
            flush()
        else:
            paragraph.append(line)
    flush()
    return blocks


_HTML_DROP = ["script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form", "svg", "iframe"]
_HTML_BLOCKS = ["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "blockquote", "td", "th", "dt", "dd", "figcaption"]


def _html(filename: str, data: bytes) -> list[Block]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_text(filename, data), "html.parser")
    for tag in soup(_HTML_DROP):
        tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.find(attrs={"role": "main"}) or soup.body or soup
    blocks: list[Block] = []
    for element in root.find_all(_HTML_BLOCKS):
        if element.find_parent(_HTML_BLOCKS) is not None:
            continue  # its text is part of the enclosing block
        text = re.sub(r"\s+([.,;:!?])", r"\1", element.get_text(" ", strip=True))
        level = int(element.name[1]) if element.name in _HTML_BLOCKS[:6] else 0
        blocks.append(Block(text, level))
    if not blocks:
        blocks = _paragraphs(root.get_text("\n\n", strip=True))
    return blocks


def _pdf(filename: str, data: bytes) -> list[Block]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnsupportedDocument(f"'{filename}' is a password-protected PDF.")
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, TypeError, AssertionError, IndexError, OSError) as exc:
        raise CorruptDocument(f"'{filename}' is not a readable PDF ({type(exc).__name__}).") from exc
    blocks: list[Block] = []
    for page in pages:
        blocks.extend(_paragraphs(unwrap(normalise(page))))
    return blocks


def _docx(filename: str, data: bytes) -> list[Block]:
    import zipfile

    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise CorruptDocument(f"'{filename}' is not a readable Word document ({type(exc).__name__}).") from exc
    blocks: list[Block] = []
    for paragraph in document.paragraphs:
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        match = re.match(r"Heading (\d)", style)
        level = int(match.group(1)) if match else (1 if style == "Title" else 0)
        blocks.append(Block(paragraph.text, level))
    for table in document.tables:
        for row in table.rows:
            blocks.append(Block(" | ".join(cell.text.strip() for cell in row.cells)))
    return blocks
