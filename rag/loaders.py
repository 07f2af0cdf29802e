"""Loading documents: detect the type from the bytes, extract text as headed blocks.

Supported: plain text, Markdown, HTML (main content only), PDF (pypdf), DOCX (python-docx).
Everything else, and anything that does not parse, is refused with a `DocumentError`.
"""

from __future__ import annotations

import codecs
import io
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

import filetype

from rag.errors import CorruptDocument, DocumentError, DocumentTooComplex, DocumentTooLarge, EmptyDocument, UnsupportedDocument
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

# What reading one document may cost; the backend takes each from its settings.
DEFAULT_MAX_PAGES = 1000  # a PDF costs ~2 ms of CPU per page to read
DEFAULT_MAX_CHARS = 5_000_000  # ~2,500 pages of text
DEFAULT_MAX_HTML_DEPTH = 1000  # html.parser nests unclosed <p>/<li>, so sloppy pages run deep
DEFAULT_MAX_DOCX_PARAGRAPHS = 50_000
DEFAULT_MAX_PDF_CONTENT_BYTES = 32 * 1024 * 1024  # text extraction costs CPU per drawing instruction
DOCX_MAX_INFLATION = 20  # a .docx may unzip to this many times the byte limit (Word XML packs ~5-30x)
DOCX_MIN_INFLATED_LIMIT = 16 * 1024 * 1024  # ...but at least this much: Word's own styles unpack to ~1 MB
DOCX_MAX_RATIO = 100  # a part over DOCX_RATIO_MIN_SIZE compressed more than this is a bomb
DOCX_RATIO_MIN_SIZE = 1024 * 1024
# Pages that share one stream make a small PDF read like a large one: its page content (each page
# counted) may be this many times the file, or this much whatever the file's size.
PDF_MAX_CONTENT_INFLATION = 100
PDF_MIN_CONTENT_LIMIT = 1024 * 1024


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


def load_document(
    filename: str,
    data: bytes,
    *,
    max_bytes: int,
    max_pages: int = DEFAULT_MAX_PAGES,
    max_chars: int = DEFAULT_MAX_CHARS,
    max_html_depth: int = DEFAULT_MAX_HTML_DEPTH,
    max_docx_paragraphs: int = DEFAULT_MAX_DOCX_PARAGRAPHS,
    max_pdf_content_bytes: int = DEFAULT_MAX_PDF_CONTENT_BYTES,
) -> LoadedDocument:
    """Detect, extract and normalise; raises a `DocumentError` with a message for the operator.
    `max_bytes` bounds the file (and, times `DOCX_MAX_INFLATION`, a .docx once unzipped); the other
    limits bound what parsing costs: PDF pages and page-drawing data, HTML nesting, Word paragraphs,
    and the characters of text extracted."""
    if len(data) > max_bytes:
        raise DocumentTooLarge(f"'{filename}' is {len(data) / 1048576:.1f} MB; the limit is {max_bytes / 1048576:.0f} MB.")
    if not data.strip():
        raise EmptyDocument(f"'{filename}' is empty.")
    content_type = detect_type(filename, data)
    chars = _Characters(filename, max_chars)
    if content_type == PDF:
        raw = _pdf(filename, data, chars, max_pages=max_pages, max_content_bytes=max_pdf_content_bytes)
    elif content_type == DOCX:
        max_inflated = max(DOCX_MAX_INFLATION * max_bytes, DOCX_MIN_INFLATED_LIMIT)
        raw = _docx(filename, data, chars, max_inflated=max_inflated, max_paragraphs=max_docx_paragraphs)
    elif content_type == HTML:
        raw = _html(filename, data, chars, max_depth=max_html_depth)
    else:
        raw = (_markdown if content_type == MD else _plain)(chars.add(decode_text(filename, data)))
    blocks = [b for b in (Block(normalise(b.text), b.level) for b in raw) if b.text]
    _Characters(filename, max_chars).add_all(b.text for b in blocks)  # NFKC may lengthen text
    if not any(not b.is_heading for b in blocks):
        raise EmptyDocument(f"'{filename}' has no text we could extract (a scanned PDF needs OCR first).")
    return LoadedDocument(content_type=content_type, blocks=blocks)


class _Characters:
    """The characters extracted so far: a document past the limit is refused as soon as it is reached."""

    def __init__(self, filename: str, limit: int) -> None:
        self.filename, self.limit, self.count = filename, limit, 0

    def add(self, text: str) -> str:
        self.reserve(len(text))
        return text

    def reserve(self, count: int) -> None:
        self.count += count
        if self.count > self.limit:
            raise DocumentTooLarge(
                f"'{self.filename}' holds more than {self.limit:,} characters of text; split it into smaller files."
            )

    def add_all(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.add(text)


def _paragraphs(text: str) -> list[Block]:
    return [Block(p) for p in re.split(r"\n\s*\n", text) if p.strip()]


def _plain(text: str) -> list[Block]:
    return _paragraphs(unwrap(normalise(text)))


# Every pattern here scans a stretch of text once: brackets never nest inside a label or a link
# target, so no match attempt re-reads what an earlier one read ("[a [b](x)" links "b", as in CommonMark).
_MD_INLINE = [
    (re.compile(r"!\[([^\[\]]*)\]\([^)\]]*\)"), r"\1"),
    (re.compile(r"\[([^\[\]]+)\]\([^)\]]*\)"), r"\1"),
    (re.compile(r"(\*\*|__)(.+?)\1"), r"\2"),
    (re.compile(r"`([^`]+)`"), r"\1"),
]


def _markdown(text: str) -> list[Block]:
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

    for line in text.replace("\r\n", "\n").split("\n"):
        if line.strip().startswith("```"):
            in_fence = not in_fence
            continue
        heading = None if in_fence else _markdown_heading(line)
        if heading:
            flush()
            blocks.append(heading)
        elif not line.strip() and not in_fence:
            flush()
        else:
            paragraph.append(line)
    flush()
    return blocks


def _markdown_heading(line: str) -> Block | None:
    """An ATX heading ("## Title ##"): up to 3 spaces, 1-6 hashes, a space, the title, optional closing
    hashes. Read with string operations: as a regex, the optional spaces and hashes around the
    title backtrack without end on a long run of spaces."""
    text = line.lstrip()
    rest = text.lstrip("#")
    level = len(text) - len(rest)
    if len(line) - len(text) > 3 or not 1 <= level <= 6 or not rest[:1].isspace():
        return None
    return Block(rest.strip().rstrip("#").rstrip(), level=level)


_HTML_DROP = ["script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form", "svg", "iframe"]
_HTML_BLOCKS = ["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "blockquote", "td", "th", "dt", "dd", "figcaption"]


def _html(filename: str, data: bytes, chars: _Characters, *, max_depth: int) -> list[Block]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_text(filename, data), "html.parser")
    depth = _html_depth(soup, max_depth)
    if depth > max_depth:
        raise DocumentTooComplex(
            f"'{filename}' nests its HTML elements more than {max_depth:,} levels deep; save the page again "
            "(or as plain text) and upload that."
        )
    for tag in soup(_HTML_DROP):
        tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.find(attrs={"role": "main"}) or soup.body or soup
    blocks: list[Block] = []
    # A block inside another block is part of its text; a root inside a block makes every block nested.
    nested = root.name in _HTML_BLOCKS or root.find_parent(_HTML_BLOCKS) is not None
    for element in [] if nested else _outermost_blocks(root):
        text = _SPACE_BEFORE_PUNCTUATION.sub("", element.get_text(" ", strip=True))
        level = int(element.name[1]) if element.name in _HTML_BLOCKS[:6] else 0
        blocks.append(Block(chars.add(text), level))
    if not blocks:
        blocks = _paragraphs(chars.add(root.get_text("\n\n", strip=True)))
    return blocks


# Only from the first space of a run: starting at each space of a long run would re-read the rest.
_SPACE_BEFORE_PUNCTUATION = re.compile(r"(?<!\s)\s++(?=[.,;:!?])")


def _html_depth(soup, limit: int) -> int:  # bs4.BeautifulSoup
    """How deep elements nest (counting stops past `limit`), walked without recursion."""
    from bs4 import Tag

    deepest = 0
    stack = [(soup, 0)]
    while stack:
        element, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            break
        stack.extend((child, depth + 1) for child in element.contents if isinstance(child, Tag))
    return deepest


def _outermost_blocks(root):  # bs4 Tag in, Tags out
    """The block elements under `root` that no other block encloses, in document order. One walk of
    the tree: asking each block for its enclosing block would climb the tree once per block."""
    from bs4 import Tag

    stack = [child for child in reversed(root.contents) if isinstance(child, Tag)]
    while stack:
        element = stack.pop()
        if element.name in _HTML_BLOCKS:
            yield element
        else:
            stack.extend(child for child in reversed(element.contents) if isinstance(child, Tag))


def _pdf(filename: str, data: bytes, chars: _Characters, *, max_pages: int, max_content_bytes: int) -> list[Block]:
    from pypdf import PdfReader, apply_configuration
    from pypdf.errors import LimitReachedError

    # No stream may inflate past the budget of the whole document (pypdf's own default is 75 MB).
    inflate_limits = dict.fromkeys(_PDF_INFLATE_LIMITS, min(max_content_bytes, 75_000_000))
    try:
        with apply_configuration(**inflate_limits):
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted and not reader.decrypt(""):
                raise UnsupportedDocument(f"'{filename}' is a password-protected PDF.")
            count = len(reader.pages)
            if count > max_pages:
                raise DocumentTooLarge(f"'{filename}' has {count:,} pages; the limit is {max_pages:,} pages.")
            # Extracting text costs CPU per drawing instruction, and pages may share one stream: each page counts.
            limit = min(max_content_bytes, max(PDF_MAX_CONTENT_INFLATION * len(data), PDF_MIN_CONTENT_LIMIT))
            content = 0
            for page in reader.pages:
                content += _pdf_content_bytes(page)
                if content > limit:
                    raise DocumentTooComplex(
                        f"This file takes too long to read: '{filename}' unpacks to more than {limit / 1048576:,.1f} MB "
                        "of page-drawing instructions (the limit for its size). Print it to a new PDF or save it as text."
                    )
            pages = [chars.add(page.extract_text() or "") for page in reader.pages]
    except DocumentError:
        raise
    except LimitReachedError as exc:  # pypdf's own guard against streams that inflate without end
        raise DocumentTooLarge(f"'{filename}' holds more compressed data than a PDF may unpack to.") from exc
    except Exception as exc:  # pypdf raises many types (PdfReadError, KeyError, RecursionError...) on bad input
        raise CorruptDocument(f"'{filename}' is not a readable PDF ({type(exc).__name__}).") from exc
    blocks: list[Block] = []
    for page in pages:
        blocks.extend(_paragraphs(unwrap(normalise(page))))
    return blocks


_PDF_INFLATE_LIMITS = (
    "zlib_maximum_output_length",
    "lzw_maximum_output_length",
    "run_length_maximum_output_length",
    "brotli_maximum_output_length",
    "array_based_stream_maximum_output_length",
)


def _pdf_content_bytes(page) -> int:  # pypdf PageObject
    """The size of a page's content streams, inflated (pypdf keeps what it inflated for the next page)."""
    from pypdf.generic import ArrayObject

    contents = page.get("/Contents")
    if contents is None:
        return 0
    contents = contents.get_object()
    streams = contents if isinstance(contents, ArrayObject) else [contents]
    return sum(len(stream.get_object().get_data()) for stream in streams)


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


def _docx(filename: str, data: bytes, chars: _Characters, *, max_inflated: int, max_paragraphs: int) -> list[Block]:
    import docx

    _check_inflation(filename, data, max_inflated)
    try:
        document = docx.Document(io.BytesIO(data))
        count = len(document.element.body.xpath(".//w:p | .//w:tc"))
        if count > max_paragraphs:
            raise DocumentTooLarge(
                f"'{filename}' has {count:,} paragraphs and table cells; the limit is {max_paragraphs:,}. "
                "Split it into smaller documents."
            )
        blocks: list[Block] = []
        levels: dict[str | None, int] = {}  # style id -> heading level: looking a style up searches all styles
        for paragraph in document.paragraphs:
            style_id = paragraph._p.style
            if style_id not in levels:
                levels[style_id] = _heading_level(paragraph.style.name if paragraph.style is not None else "")
            blocks.append(Block(chars.add(paragraph.text), levels[style_id]))
        for table in document.tables:
            blocks.extend(Block(row) for row in _table_rows(table._tbl, chars))
    except DocumentError:
        raise
    except Exception as exc:  # python-docx/lxml raise many types (XMLSyntaxError, KeyError...) on bad input
        raise CorruptDocument(f"'{filename}' is not a readable Word document ({type(exc).__name__}).") from exc
    return blocks


def _heading_level(style: str | None) -> int:
    match = re.match(r"Heading (\d)", style or "")
    return int(match.group(1)) if match else (1 if style == "Title" else 0)


def _table_rows(table, chars: _Characters) -> list[str]:  # docx.oxml.table.CT_Tbl
    """Each row as "cell | cell", a cell spanning columns repeated once per column it spans and a cell
    merged with the one above reading as that one (as python-docx's `row.cells` gives them). Read
    from the XML in one pass: `row.cells` looks for each merged cell's row again, and repeats a
    cell as many times as its declared span says, however large (here, at most once per column)."""
    columns = max(len(table.xpath("./w:tblGrid/w:gridCol")), 1)
    above: dict[int, str] = {}  # grid column -> the text of the cell there in the previous row
    rows = []
    for tr in table.tr_lst:
        texts: list[str] = []
        here: dict[int, str] = {}
        column = tr.grid_before
        for tc in tr.tc_lst:
            span = max(1, min(tc.grid_span, columns))
            text = above.get(column, "") if tc.vMerge == "continue" else "\n".join(p.text for p in tc.p_lst).strip()
            chars.reserve((len(text) + 3) * span)  # before the repeats are made: a span may be huge
            texts.extend([text] * span)
            here.update(dict.fromkeys(range(column, column + span), text))
            column += span
        above = here
        rows.append(" | ".join(texts))
    return rows
