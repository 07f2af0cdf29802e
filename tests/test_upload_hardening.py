"""Hostile uploads get a clear 4xx; nothing lands outside the data folder or half-written in the database."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import docx
import pytest

from backend.database import fetchval
from tests.conftest import make_settings
from tests.e2e_support import assert_error_shape, eventually
from tests.fakes.ollama import fake_ollama  # noqa: F401 - fixture
from tests.test_webhook_limits import timed_post

MAX_UPLOAD_MB = 1
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.fixture
def settings(database_url, tmp_path, fake_ollama):  # noqa: F811
    return make_settings(database_url, tmp_path / "data", max_upload_mb=MAX_UPLOAD_MB, **fake_ollama.backend_settings())


def word_document(text: str = "The shop opens at nine.") -> bytes:
    document = docx.Document()
    document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def docx_bomb(inflated_mb: int, filler: bytes = b" ") -> bytes:
    """A real .docx whose document.xml inflates to `inflated_mb` MB (it compresses ~1000:1)."""
    source = zipfile.ZipFile(io.BytesIO(word_document()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bomb:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "word/document.xml":
                data = data.replace(b"The shop", filler * (inflated_mb * 1024 * 1024) + b"The shop", 1)
            bomb.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return out.getvalue()


def pdf_with_pages(pages: int) -> bytes:
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    page = canvas.Canvas(out)
    for number in range(pages):
        page.drawString(72, 720, f"Page {number}: the shop opens at nine.")
        page.showPage()
    page.save()
    return out.getvalue()


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89" + b"\x00" * 64
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 120


async def assistant_id(api) -> int:
    response = await api.post("/api/assistants", json={"name": "Uploads"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def nothing_stored(api, backend, assistant: int) -> None:
    listing = (await api.get(f"/api/assistants/{assistant}/documents")).json()
    assert listing["total"] == 0, listing
    db = backend.app.ctx.db
    assert await fetchval(db, "SELECT count(*) FROM documents") == 0
    assert await fetchval(db, "SELECT count(*) FROM chunks") == 0
    assert await fetchval(db, "SELECT count(*) FROM jobs WHERE kind = 'index_document'") == 0


def files_under(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


REFUSED = [
    pytest.param("empty.txt", b"", "text/plain", 400, id="empty file"),
    pytest.param("blank.txt", b" \n\t \n", "text/plain", 400, id="only whitespace"),
    pytest.param("photo.txt", PNG, "text/plain", 415, id="a PNG named .txt"),
    pytest.param("notes.md", ELF, "text/markdown", 415, id="an executable named .md"),
    pytest.param("tool.exe", b"MZ\x90\x00\x03" + b"\x00" * 200, "application/octet-stream", 415, id="a Windows program"),
    pytest.param("data.csv", b"a,b\n1,2\n", "text/csv", 415, id="unsupported extension"),
    pytest.param("report.pdf", b"%PDF-1.7\nthis is not really a pdf", "application/pdf", 400, id="broken PDF"),
    pytest.param("letter.docx", b"PK\x03\x04 not a zip at all", DOCX_TYPE, 400, id="broken docx"),
    pytest.param("letter.docx", b"just some text", DOCX_TYPE, 400, id="text named .docx"),
    pytest.param("big.txt", b"a" * (MAX_UPLOAD_MB * 1024 * 1024 + 10), "text/plain", 413, id="over MAX_UPLOAD_MB"),
]


@pytest.mark.parametrize(("filename", "content", "content_type", "status"), REFUSED)
async def test_bad_files_are_refused_with_a_clear_error_and_nothing_is_stored(
    api, backend, filename, content, content_type, status
):
    assistant = await assistant_id(api)
    response = await api.post(f"/api/assistants/{assistant}/documents", files={"files": (filename, content, content_type)})
    assert response.status_code == status, response.text
    error = assert_error_shape(response)
    assert filename in error["message"] or filename in str(error["details"]), error
    await nothing_stored(api, backend, assistant)


async def test_one_file_in_the_field_curl_uses_is_accepted(api):
    """`curl -F file=@hours.txt`: the singular field name works as `files` does."""
    assistant = await assistant_id(api)
    response = await api.post(
        f"/api/assistants/{assistant}/documents", files={"file": ("hours.txt", b"nine to five", "text/plain")}
    )
    assert response.status_code == 201, response.text
    assert [item["filename"] for item in response.json()["items"]] == ["hours.txt"]


@pytest.mark.parametrize("filler", [b" ", b"\x00"], ids=["spaces", "nul bytes"])
async def test_a_zip_bomb_disguised_as_a_word_document_is_refused(api, backend, filler):
    assistant = await assistant_id(api)
    bomb = docx_bomb(40, filler)
    assert len(bomb) < MAX_UPLOAD_MB * 1024 * 1024  # small on the wire, 40 MB once inflated
    response = await api.post(f"/api/assistants/{assistant}/documents", files={"files": ("cv.docx", bomb, DOCX_TYPE)})
    assert response.status_code in (400, 413, 415), response.text
    assert_error_shape(response)
    await nothing_stored(api, backend, assistant)


async def test_a_pdf_with_thousands_of_pages_is_refused(api, backend):
    """Under the byte limit but ~2,000 pages: parsing it would hold a core for seconds per MB, twice
    (at upload and in the index job), so a page cap refuses it up front."""
    assistant = await assistant_id(api)
    pdf = pdf_with_pages(1900)
    assert len(pdf) < MAX_UPLOAD_MB * 1024 * 1024
    response = await api.post(
        f"/api/assistants/{assistant}/documents", files={"files": ("catalogue.pdf", pdf, "application/pdf")}, timeout=60
    )
    if response.status_code < 300:  # accepted: stop the index job before failing
        await api.delete(f"/api/assistants/{assistant}/documents/{response.json()['items'][0]['id']}")
    assert response.status_code in (400, 413), response.text
    assert "page" in assert_error_shape(response)["message"].lower()
    await nothing_stored(api, backend, assistant)


async def test_a_body_far_over_the_limit_is_cut_off_with_413(api, backend):
    assistant = await assistant_id(api)
    path = f"/api/assistants/{assistant}/documents"
    headers = {"Authorization": api.headers["authorization"]}
    # Refused on its declared length, before any of it is sent (as curl waits with Expect: 100-continue).
    status, _, body = await timed_post(backend.url, path, headers, length=MAX_UPLOAD_MB * 1024 * 1024 * 3)
    assert status == 413 and body["error"]["code"] == "too_large" and "MAX_UPLOAD_MB" in body["error"]["message"]
    # Without a length (chunked), cut off once it passes the limit.
    status, _, body = await timed_post(
        backend.url, path, headers, sent=b" " * ((MAX_UPLOAD_MB + 1) * 1024 * 1024 + 1), chunked=True
    )
    assert status == 413
    await nothing_stored(api, backend, assistant)


async def test_one_bad_file_among_good_ones_stores_none_of_them(api, backend):
    assistant = await assistant_id(api)
    files = [
        ("files", ("hours.txt", b"We open at nine.", "text/plain")),
        ("files", ("faq.docx", word_document(), DOCX_TYPE)),
        ("files", ("empty.txt", b"", "text/plain")),
    ]
    response = await api.post(f"/api/assistants/{assistant}/documents", files=files)
    assert response.status_code == 400, response.text
    assert "empty.txt" in assert_error_shape(response)["message"]
    await nothing_stored(api, backend, assistant)


@pytest.mark.parametrize(
    "filename",
    ["../../etc/passwd", "..\\..\\windows\\system32\\drivers\\etc\\hosts", "/etc/cron.d/evil", "a/../../b/../../c.txt"],
)
async def test_path_separators_in_file_names_go_nowhere(api, backend, settings, tmp_path, filename):
    assistant = await assistant_id(api)
    before = files_under(tmp_path)
    cwd_before = set(os.listdir(Path.cwd()))
    response = await api.post(
        f"/api/assistants/{assistant}/documents", files={"files": (filename, b"Opening hours: nine to five.", "text/plain")}
    )
    assert response.status_code == 201, response.text
    stored = response.json()["items"][0]["filename"]
    assert "/" not in stored and "\\" not in stored and ".." not in stored.replace("...", ""), stored
    new_files = files_under(tmp_path) - before
    outside = [name for name in new_files if not (tmp_path / name).resolve().is_relative_to(settings.data_dir.resolve())]
    assert not outside, outside
    assert set(os.listdir(Path.cwd())) - cwd_before <= {"data"} - cwd_before
    for path in ("/etc/cron.d/evil", "/c.txt"):
        assert not os.path.exists(path) or os.path.getsize(path) != len(b"Opening hours: nine to five.")  # noqa: ASYNC240


@pytest.mark.parametrize("filename", ["", "   ", "nul\x00byte.txt", "x" * 1000 + ".txt", "emoji-😀.md"])
async def test_odd_file_names_are_stored_cleanly_or_refused(api, backend, filename):
    assistant = await assistant_id(api)
    response = await api.post(
        f"/api/assistants/{assistant}/documents", files={"files": (filename, b"# Hours\n\nNine to five.", "text/plain")}
    )
    assert response.status_code in (201, 400, 415), response.text
    if response.status_code >= 400:
        assert_error_shape(response)
        await nothing_stored(api, backend, assistant)
        return
    stored = response.json()["items"][0]["filename"]
    assert stored.strip() and "\x00" not in stored and len(stored) <= 255


async def test_a_request_without_multipart_files_is_a_clear_400(api, backend):
    assistant = await assistant_id(api)
    as_json = await api.post(f"/api/assistants/{assistant}/documents", json={"files": ["hours.txt"]})
    wrong_field = await api.post(
        f"/api/assistants/{assistant}/documents", files={"document": ("hours.txt", b"nine to five", "text/plain")}
    )
    raw = await api.post(
        f"/api/assistants/{assistant}/documents", content=b"nine to five", headers={"Content-Type": "text/plain"}
    )
    for response in (as_json, wrong_field, raw):
        assert response.status_code == 400, response.text
        assert_error_shape(response)
    await nothing_stored(api, backend, assistant)


async def test_a_good_word_document_is_indexed(api, backend):
    """The control: the same path accepts a real document and makes it searchable."""
    assistant = await assistant_id(api)
    response = await api.post(f"/api/assistants/{assistant}/documents", files={"files": ("faq.docx", word_document(), DOCX_TYPE)})
    assert response.status_code == 201, response.text
    document = response.json()["items"][0]

    async def ready() -> bool:
        found = (await api.get(f"/api/assistants/{assistant}/documents/{document['id']}")).json()
        assert found["status"] != "failed", found
        return found["status"] == "ready"

    await eventually(ready, within=30, what="the document to be indexed")
