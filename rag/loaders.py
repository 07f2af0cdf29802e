"""Loading documents: detect the type from the bytes, extract text as headed blocks.

Supported: plain text, Markdown, HTML (main content only), PDF (pypdf), DOCX (python-docx).
Everything else, and anything that does not parse, is refused with a `DocumentError`.
"""

from __future__ import annotations

import codecs
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

import filetype

from rag.errors import CorruptDocument, DocumentError, DocumentTooLarge, EmptyDocument, UnsupportedDocument
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

DEFAULT_MAX_PAGES = 1000  # a PDF costs ~2 ms of CPU per page to read
DOCX_MAX_INFLATION = 20  # a .docx may unzip to this many times the byte limit (Word XML packs ~5-30x)
DOCX_MIN_INFLATED_LIMIT = 16 * 1024 * 1024  # ...but at least this much: Word's own styles unpack to ~1 MB
DOCX_MAX_RATIO = 100  # a part over DOCX_RATIO_MIN_SIZE compressed more than this is a bomb
DOCX_RATIO_MIN_SIZE = 1024 * 1024


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
        # Most signatures are two to five printable bytes ("BM", "ID3", "MZ", "GIF89", "%!PS"): text
        # that happens to start with them ("BMI and obesity") is still text.
        if not _is_clean_text(data):
            raise UnsupportedDocument(
                f"'{filename}' is of type {kind.mime}; supported types are {', '.join(SUPPORTED.values())}."
            )
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


# C0 control characters and DEL, except tab, newline, vertical tab, form feed and carriage return.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def _is_clean_text(data: bytes) -> bool:
    """True when the start of `data` decodes as text without any control character: real binary
    formats carry NULs, length fields and other control bytes right after their signature."""
    head = data[:8192]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = head.decode("utf-16", errors="replace")
    else:
        try:  # incremental: a character cut at the 8 KB boundary is not an error
            text = codecs.getincrementaldecoder("utf-8-sig")().decode(head)
        except UnicodeDecodeError:
            try:
                text = head.decode("cp1252")
            except UnicodeDecodeError:
                return False
    return _CONTROL.search(text) is None


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


def load_document(filename: str, data: bytes, *, max_bytes: int, max_pages: int = DEFAULT_MAX_PAGES) -> LoadedDocument:
    """Detect, extract and normalise; raises a `DocumentError` with a message for the operator.
    `max_bytes` bounds the file (and, times `DOCX_MAX_INFLATION`, a .docx once unzipped);
    `max_pages` bounds a PDF, whose parsing costs CPU per page."""
    if len(data) > max_bytes:
        raise DocumentTooLarge(f"'{filename}' is {len(data) / 1048576:.1f} MB; the limit is {max_bytes / 1048576:.0f} MB.")
    if not data.strip():
        raise EmptyDocument(f"'{filename}' is empty.")
    content_type = detect_type(filename, data)
    if content_type == PDF:
        raw = _pdf(filename, data, max_pages=max_pages)
    elif content_type == DOCX:
        raw = _docx(filename, data, max_inflated=max(DOCX_MAX_INFLATION * max_bytes, DOCX_MIN_INFLATED_LIMIT))
    else:
        raw = {TXT: _plain, MD: _markdown, HTML: _html}[content_type](filename, data)
    blocks = [b for b in (Block(normalise(b.text), b.level) for b in raw) if b.text]
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


def _pdf(filename: str, data: bytes, *, max_pages: int) -> list[Block]:
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnsupportedDocument(f"'{filename}' is a password-protected PDF.")
        count = len(reader.pages)
        if count > max_pages:
            raise DocumentTooLarge(f"'{filename}' has {count:,} pages; the limit is {max_pages:,} pages.")
        pages = [page.extract_text() or "" for page in reader.pages]
    except DocumentError:
        raise
    except LimitReachedError as exc:  # pypdf's own guard against streams that inflate without end
        raise DocumentTooLarge(f"'{filename}' holds more compressed data than a PDF may unpack to.") from exc
    except Exception as exc:  # noqa: BLE001 - pypdf raises many types (PdfReadError, KeyError, RecursionError...) on bad input
        raise CorruptDocument(f"'{filename}' is not a readable PDF ({type(exc).__name__}).") from exc
    blocks: list[Block] = []
    for page in pages:
        blocks.extend(_paragraphs(unwrap(normalise(page))))
    return blocks


def _check_inflation(filename: str, data: bytes, max_inflated: int) -> None:
    """Refuse a zip bomb from its directory, before anything is decompressed. The declared sizes
    can be trusted as a bound: zipfile never inflates a member past its declared size."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
        raise CorruptDocument(f"'{filename}' is not a readable Word document ({type(exc).__name__}).") from exc
    inflated = sum(m.file_size for m in members)
    if inflated > max_inflated:
        raise DocumentTooLarge(
            f"'{filename}' unpacks to {inflated / 1048576:,.0f} MB; the limit is {max_inflated / 1048576:,.0f} MB."
        )
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > DOCX_RATIO_MIN_SIZE and ratio > DOCX_MAX_RATIO:
            raise DocumentTooLarge(
                f"'{filename}' looks like a zip bomb: its part {member.filename} is compressed {ratio:,.0f} to 1."
            )


def _docx(filename: str, data: bytes, *, max_inflated: int) -> list[Block]:
    import docx

    _check_inflation(filename, data, max_inflated)
    try:
        document = docx.Document(io.BytesIO(data))
        blocks: list[Block] = []
        for paragraph in document.paragraphs:
            style = (paragraph.style.name if paragraph.style is not None else "") or ""
            match = re.match(r"Heading (\d)", style)
            level = int(match.group(1)) if match else (1 if style == "Title" else 0)
            blocks.append(Block(paragraph.text, level))
        for table in document.tables:
            for row in table.rows:
                blocks.append(Block(" | ".join(cell.text.strip() for cell in row.cells)))
    except DocumentError:
        raise
    except Exception as exc:  # noqa: BLE001 - python-docx/lxml raise many types (XMLSyntaxError, KeyError...) on bad input
        raise CorruptDocument(f"'{filename}' is not a readable Word document ({type(exc).__name__}).") from exc
    return blocks
