"""No input can freeze the backend: text is scanned in linear time, and documents are read in a
limited child process, so a small hostile file is refused quickly with a reason (issue 13, 1 and 6)."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import time
import uuid
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from copy import deepcopy

import docx
import pytest

from backend.app import create_app
from backend.database import fetchrow
from backend.store import documents as document_store
from rag.loaders import load_document
from rag.shaping import markdown_to_whatsapp
from tests.conftest import login, make_settings
from tests.e2e_support import assert_error_shape, eventually
from tests.fakes.ollama import fake_ollama  # noqa: F401 - fixture
from tests.servers import serve_app
from tests.test_upload_hardening import assistant_id, nothing_stored

MB = 1024 * 1024
# Generous for two busy cores; before these fixes each case took from 10 seconds to hours.
QUICK = 5.0
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def nested_html(depth: int = 2500) -> bytes:
    """Paragraphs in ever deeper <div>s (~47 KB)."""
    return ("<html><body>" + "<div><p>x</p>" * depth + "</div>" * depth + "</body></html>").encode()


@functools.cache
def word_document_of(paragraphs: int) -> bytes:
    """A real .docx with this many short paragraphs, each with its own text (~280 KB for 100,000)."""
    document = docx.Document()
    template = document.add_paragraph("0")._p
    body = template.getparent()
    for number in range(1, paragraphs):
        paragraph = deepcopy(template)
        paragraph.xpath(".//w:t")[0].text = str(number)
        body.append(paragraph)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def shared_stream_pdf(pages: int = 50, shows: int = 30_000) -> bytes:
    """A PDF (~10 KB) whose pages all draw one compressed stream of `shows` text-showing instructions."""
    content = zlib.compress(b"BT /F1 12 Tf 72 720 Td " + b"(a) Tj " * shows + b"ET", 9)
    font = 4 + pages
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % (4 + i) for i in range(pages)), pages),
        3: b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(content), content),
        font: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    for i in range(pages):
        objects[4 + i] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R /Resources << /Font << /F1 %d 0 R >> >> >>"
            % font
        )
    out = bytearray(b"%PDF-1.7\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (number, objects[number])
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offsets[number] for number in sorted(objects))
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


REDOS_HEADING = "# a" + " " * 2000 + "b"


# -- 1. text scanned in linear time --------------------------------------------------------------

LONG = 100_000
HOSTILE_MARKDOWN = [
    pytest.param("# a" + " " * LONG + "b", "a b", id="heading with a long run of spaces"),
    pytest.param("## a" + " " * LONG + "#" + " " * LONG + "!", "a # !", id="heading with hashes between spaces"),
    pytest.param("![" * (LONG // 2), "![" * (LONG // 2), id="image openings without end"),
    pytest.param("[" * LONG + "x", "[" * LONG + "x", id="link openings without end"),
    pytest.param("[a](b " * (LONG // 2), "[a](b " * (LONG // 2), id="link targets without end"),
]


@pytest.mark.parametrize(("markdown", "text"), HOSTILE_MARKDOWN)
def test_hostile_markdown_is_read_quickly(markdown, text):
    started = time.perf_counter()
    loaded = load_document("notes.md", (markdown + "\n\nThe shop opens at nine.").encode(), max_bytes=MB)
    assert time.perf_counter() - started < QUICK
    assert loaded.blocks[0].text == text.strip()
    assert loaded.blocks[-1].text == "The shop opens at nine."


def test_a_paragraph_with_a_long_run_of_spaces_in_html_is_read_quickly():
    page = b"<html><body><p>We open" + b" " * LONG + b"at nine" + b" " * LONG + b".</p></body></html>"
    started = time.perf_counter()
    loaded = load_document("hours.html", page, max_bytes=MB)
    assert time.perf_counter() - started < QUICK
    assert loaded.text == "We open at nine."


HOSTILE_ANSWERS = [
    pytest.param("# a" + " " * LONG + "b", "*a" + " " * LONG + "b*", id="heading with a long run of spaces"),
    pytest.param("**a " * (LONG // 4), ("**a " * (LONG // 4)).strip(), id="bold openings without end"),
    pytest.param("~~a " * (LONG // 4), ("~~a " * (LONG // 4)).strip(), id="strike openings without end"),
    pytest.param("![" * (LONG // 2), "![" * (LONG // 2), id="image openings without end"),
    pytest.param("![a](b" * (LONG // 6), "![a](b" * (LONG // 6), id="image targets without end"),
    pytest.param("[a](b " * (LONG // 2), ("[a](b " * (LONG // 2)).strip(), id="link targets without end"),
    pytest.param(
        "**Hours:** see [the page](https://x.example/h) ~~today~~",
        "*Hours:* see the page (https://x.example/h) ~today~",
        id="the control: ordinary markup",
    ),  # fmt: skip
]


@pytest.mark.parametrize(("answer", "whatsapp"), HOSTILE_ANSWERS)
def test_a_hostile_model_answer_is_shaped_for_whatsapp_quickly(answer, whatsapp):
    started = time.perf_counter()
    shaped = markdown_to_whatsapp(answer)
    assert time.perf_counter() - started < QUICK
    assert shaped == whatsapp


def test_nul_characters_in_an_answer_are_not_read_as_placeholders():
    assert markdown_to_whatsapp("a\x00F7\x00 b \x00B\x00") == "aF7 b B"


# -- the real backend --------------------------------------------------------------------------


@pytest.fixture
def backend_with(database_url, tmp_path, fake_ollama):  # noqa: F811
    """Start the backend on loopback with these settings: (it, a client logged in as admin)."""

    @asynccontextmanager
    async def start(**overrides) -> AsyncIterator:
        settings = make_settings(database_url, tmp_path / "data", **fake_ollama.backend_settings(), **overrides)
        async with serve_app(create_app(settings, name=f"limits_{uuid.uuid4().hex[:8]}")) as backend:
            async with backend.client(await login(backend), timeout=300) as api:
                yield backend, api

    return start


async def upload(api, assistant: int, name: str, data: bytes, content_type: str):
    started = time.perf_counter()
    response = await api.post(f"/api/assistants/{assistant}/documents", files={"files": (name, data, content_type)})
    return response, time.perf_counter() - started


async def test_the_backend_keeps_answering_while_a_hostile_markdown_file_is_uploaded(backend_with):
    async with backend_with() as (backend, api):
        assistant = await assistant_id(api)
        sent = asyncio.create_task(
            upload(api, assistant, "notes.md", f"{REDOS_HEADING}\n\nWe open at nine.".encode(), "text/markdown")
        )
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        async with backend.client() as anonymous:
            assert (await anonymous.get("/healthz")).status_code == 200
        assert time.perf_counter() - started < QUICK
        response, took = await sent
        assert response.status_code == 201, response.text
        assert took < QUICK


# -- 6. documents read in a limited child, small costly files refused ----------------------------


@pytest.mark.parametrize(
    ("name", "build", "content_type", "status", "reason"),
    [
        pytest.param("deep.html", nested_html, "text/html", 422, "levels deep", id="2,500 nested divs"),
        pytest.param(
            "many.docx", lambda: word_document_of(100_000), DOCX_TYPE, 413, "the limit is 50,000", id="100,000 paragraphs"
        ),
        pytest.param(
            "shared.pdf", shared_stream_pdf, "application/pdf", 422, "takes too long to read", id="50 pages, one stream"
        ),
    ],
)
async def test_a_small_file_that_is_costly_to_read_is_refused_quickly_with_a_reason(
    backend_with, name, build, content_type, status, reason
):
    data = build()
    assert len(data) < 300 * 1024
    async with backend_with() as (backend, api):
        assistant = await assistant_id(api)
        response, took = await upload(api, assistant, name, data, content_type)
        assert response.status_code == status, response.text
        error = assert_error_shape(response)
        assert reason in error["message"] and name in error["message"], error
        assert took < QUICK
        await nothing_stored(api, backend, assistant)


async def test_a_word_document_of_many_short_paragraphs_is_read_quickly(backend_with):
    """50,000 paragraphs (the default limit) read in seconds: a style lookup per paragraph took minutes."""
    data = word_document_of(50_000)
    async with backend_with(run_workers=False) as (_, api):  # only the upload's reading is timed here
        assistant = await assistant_id(api)
        response, took = await upload(api, assistant, "many.docx", data, DOCX_TYPE)
        assert response.status_code == 201, response.text
        assert took < 2 * QUICK


CHILD_LIMITS = [
    pytest.param({"rag_parse_cpu_seconds": 1}, "more than 1 second of CPU time", id="CPU time"),
    pytest.param({"rag_parse_timeout_seconds": 0.5}, "more than 0.5 seconds", id="wall clock"),
]


@pytest.mark.parametrize(("limit", "reason"), CHILD_LIMITS)
async def test_a_document_over_the_readers_time_limits_is_refused_with_422(backend_with, limit, reason):
    data = word_document_of(100_000)  # within the other limits here, ~3 s of CPU to read
    overrides = {"rag_max_docx_paragraphs": 200_000, **limit}
    async with backend_with(**overrides) as (backend, api):
        assistant = await assistant_id(api)
        response, took = await upload(api, assistant, "many.docx", data, DOCX_TYPE)
        assert response.status_code == 422, response.text
        error = assert_error_shape(response)
        assert error["code"] == "document_too_complex" and "This file takes too long to read" in error["message"], error
        assert reason in error["message"], error
        assert took < 2 * QUICK
        await nothing_stored(api, backend, assistant)
        # The reader is not left broken: the next document reads.
        response, _ = await upload(api, assistant, "hours.txt", b"We open at nine.", "text/plain")
        assert response.status_code == 201, response.text


async def test_a_document_over_the_readers_memory_limit_is_refused_with_422(backend_with):
    data = ("caf\u00e9 " * 2_000_000).encode()  # 12 MB of text, read with ~300 MB
    overrides = {"rag_parse_memory_mb": 256, "rag_max_chars": 20_000_000}
    async with backend_with(**overrides) as (backend, api):
        assistant = await assistant_id(api)
        response, took = await upload(api, assistant, "menu.txt", data, "text/plain")
        assert response.status_code == 422, response.text
        assert "needs more than 256 MB of memory" in assert_error_shape(response)["message"]
        assert took < QUICK
        await nothing_stored(api, backend, assistant)


async def test_documents_are_read_a_bounded_number_at_a_time(backend_with):
    """Three heavy uploads at once with RAG_PARSE_CONCURRENCY=1: each is read in turn (each needs a
    full second of CPU before its limit stops it), so together they take three seconds at least."""
    data = word_document_of(100_000)
    overrides = {"rag_max_docx_paragraphs": 200_000, "rag_parse_cpu_seconds": 1, "rag_parse_concurrency": 1}
    async with backend_with(**overrides) as (_, api):
        assistant = await assistant_id(api)
        started = time.perf_counter()
        results = await asyncio.gather(*(upload(api, assistant, f"many-{i}.docx", data, DOCX_TYPE) for i in range(3)))
        took = time.perf_counter() - started
        assert [response.status_code for response, _ in results] == [422, 422, 422]
        assert 3.0 <= took < 3 * QUICK


async def test_a_stored_document_over_a_limit_fails_its_index_job_once_with_the_reason(backend_with):
    """A document stored before the limits (or under looser ones) is re-indexed: the job fails for
    good with the reason the person sees, and is not retried."""
    data = nested_html()
    async with backend_with() as (backend, api):
        assistant = await assistant_id(api)
        inserted = await document_store.insert_document(
            backend.app.ctx.db,
            assistant_id=assistant,
            filename="deep.html",
            content_type="text/html",
            content=data,
            sha256=hashlib.sha256(data).hexdigest(),
        )
        document = inserted.id
        response = await api.post(f"/api/assistants/{assistant}/documents/{document}/reindex")
        assert response.status_code == 202, response.text

        async def failed() -> dict | None:
            found = (await api.get(f"/api/assistants/{assistant}/documents/{document}")).json()
            return found if found["status"] == "failed" else None

        found = await eventually(failed, within=3 * QUICK, what="the index job to fail")
        assert "levels deep" in found["error"], found
        job = await fetchrow(backend.app.ctx.db, "SELECT status, attempts FROM jobs WHERE kind = 'index_document'")
        assert (job["status"], job["attempts"]) == ("failed", 1)
