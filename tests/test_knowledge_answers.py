"""Answers: /generate, the `answer_question` contract, degraded answers, and indexing across a restart."""

from __future__ import annotations

import uuid

import pytest

from backend.app import create_app
from backend.database import fetchval
from backend.services.answers import answer_question
from backend.services.assistants import get_assistant
from tests.conftest import login, make_settings
from tests.fakes.ollama import fake_ollama_server  # noqa: F401
from tests.servers import serve_app
from tests.test_knowledge_api import new_assistant, upload, wait_indexed

KNOWLEDGE = [
    ("hours.md", b"# Opening hours\n\nThe shop opens at nine in the morning and closes at six in the evening."),
    ("kettle.txt", b"XK-4471 is a blue stainless steel kettle. It costs 20 euros."),
]


@pytest.fixture
async def running(database_url, tmp_path, fake_ollama):
    settings = make_settings(database_url, tmp_path / "data", ollama_host=fake_ollama.url)
    app = create_app(settings, name=f"ans_{uuid.uuid4().hex[:8]}")
    async with serve_app(app) as backend:
        yield backend


@pytest.fixture
async def shop(running):
    """(client, assistant id) with the shop's documents indexed."""
    async with running.client(await login(running)) as client:
        assistant = await new_assistant(client, fallback_message="Sorry, I don't know. A colleague will reply.")
        await upload(client, assistant, *KNOWLEDGE)
        await wait_indexed(client, assistant)
        yield client, assistant


async def test_generate_answers_with_sources_and_timings(shop, fake_ollama):
    client, assistant = shop
    fake_ollama.reply = "We open at **nine** [1]."
    history = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi! How can I help?"}]
    response = await client.post(
        f"/api/assistants/{assistant}/generate", json={"question": "When do you open?", "history": history}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answer"] == "We open at *nine* [1]." and body["parts"] == [body["answer"]]
    assert body["degraded"] is False and body["degraded_reason"] is None and body["used_fallback"] is False
    assert body["sources"][0]["filename"] == "hours.md" and body["sources"][0]["document_id"] and body["sources"][0]["chunk_id"]
    assert {"retrieval", "generation", "total"} <= body["timings_ms"].keys()
    sent = fake_ollama.requests_to("/api/chat")[-1].body
    assert [m["content"] for m in sent["messages"][1:]] == ["Hello", "Hi! How can I help?", "When do you open?"]
    assert sent["options"]["num_ctx"] == body["trace"]["num_ctx"]


async def test_answer_question_contract_and_trace(running, shop, fake_ollama):
    _, assistant_id = shop
    rt = running.app.ctx.runtime
    assistant = await get_assistant(rt.db, assistant_id)
    answer = await answer_question(rt, assistant, "How much is the XK-4471 kettle?", [{"role": "user", "content": "hi"}])
    trace = answer.trace
    for key in (
        "used_fallback",
        "top_score",
        "degraded",
        "passages",
        "prompt_tokens",
        "num_ctx",
        "truncated",
        "model",
        "timings_ms",
    ):
        assert key in trace, key
    assert trace["model"] == "llama3.2" and trace["top_score"] == answer.top_score > 0.25
    assert trace["passages"][0]["filename"] == "kettle.txt" and trace["passages"][0]["score"] > 0
    assert answer.sources[0]["filename"] == "kettle.txt"


async def test_an_unrelated_question_gets_the_fallback_message(shop, fake_ollama):
    client, assistant = shop
    body = (await client.post(f"/api/assistants/{assistant}/generate", json={"question": "Who painted the Mona Lisa?"})).json()
    assert body["answer"] == "Sorry, I don't know. A colleague will reply." and body["used_fallback"] is True
    assert body["sources"] == [] and not fake_ollama.requests_to("/api/chat")


async def test_a_model_that_is_not_pulled_gives_a_degraded_answer(shop, fake_ollama):
    client, assistant = shop
    await client.patch(f"/api/assistants/{assistant}", json={"model": "mistral"})
    body = (
        await client.post(f"/api/assistants/{assistant}/generate", json={"question": "How much is the XK-4471 kettle?"})
    ).json()
    assert body["degraded"] is True and body["degraded_reason"] == "model_not_found"
    assert body["answer"].startswith("Here is what our documents say") and "20 euros" in body["answer"]
    assert body["sources"][0]["filename"] == "kettle.txt"


async def test_ollama_down_gives_a_degraded_answer(database_url, tmp_path):
    settings = make_settings(database_url, tmp_path / "data")  # OLLAMA_HOST points at a closed port
    app = create_app(settings, name=f"down_{uuid.uuid4().hex[:8]}")
    async with serve_app(app) as backend, backend.client(await login(backend)) as client:
        assistant = await new_assistant(client)
        await upload(client, assistant, *KNOWLEDGE)
        await wait_indexed(client, assistant)
        response = await client.post(f"/api/assistants/{assistant}/generate", json={"question": "When does the shop open?"})
    assert response.status_code == 200
    body = response.json()
    assert body["degraded"] is True and body["degraded_reason"] == "ollama_unreachable"
    assert "opens at nine" in body["answer"] and body["trace"]["degraded"] is True


async def test_bad_generate_requests_are_refused(shop):
    client, assistant = shop
    for body in ({}, {"question": ""}, {"question": "x", "history": [{"role": "system", "content": "x"}]}):
        response = await client.post(f"/api/assistants/{assistant}/generate", json=body)
        assert response.status_code == 400, body
    assert (await client.post("/api/assistants/9999/generate", json={"question": "x"})).status_code == 404


async def test_indexing_waits_in_the_queue_across_a_restart(database_url, tmp_path, fake_ollama):
    quiet = make_settings(database_url, tmp_path / "a", ollama_host=fake_ollama.url, run_workers=False)
    app = create_app(quiet, name=f"quiet_{uuid.uuid4().hex[:8]}")
    async with serve_app(app) as backend, backend.client(await login(backend)) as client:
        assistant = await new_assistant(client)
        await upload(client, assistant, KNOWLEDGE[0])
        [document] = (await client.get(f"/api/assistants/{assistant}/documents")).json()["items"]
        assert document["status"] == "pending" and document["percent"] == 0

    working = make_settings(database_url, tmp_path / "b", ollama_host=fake_ollama.url)
    app = create_app(working, name=f"work_{uuid.uuid4().hex[:8]}")
    async with serve_app(app) as backend, backend.client(await login(backend)) as client:
        [document] = await wait_indexed(client, assistant)
        assert document["status"] == "ready" and document["percent"] == 100
        progress = await fetchval(app.ctx.db, "SELECT progress FROM jobs WHERE kind = 'index_document'")
        assert progress == 1


async def test_an_ollama_embedder_that_goes_away_still_leaves_answers(database_url, tmp_path, fake_ollama):
    settings = make_settings(database_url, tmp_path / "data", **fake_ollama.backend_settings())
    app = create_app(settings, name=f"emb_{uuid.uuid4().hex[:8]}")
    async with serve_app(app) as backend, backend.client(await login(backend)) as client:
        assistant = await new_assistant(client)
        await upload(client, assistant, *KNOWLEDGE)
        await wait_indexed(client, assistant)
        fake_ollama.set_models(["llama3.2"])  # the embedding model is removed from Ollama

        search = await client.post(f"/api/assistants/{assistant}/search", json={"query": "kettle XK-4471"})
        assert search.status_code == 503 and search.json()["error"]["code"] == "embeddings_unavailable"
        answer = await client.post(f"/api/assistants/{assistant}/generate", json={"question": "How much is the XK-4471 kettle?"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["sources"][0]["filename"] == "kettle.txt" and "not found" in body["trace"]["embedding_error"]
    assert body["degraded"] is True and body["degraded_reason"] == "embeddings_unavailable"
