"""Talking to Ollama through the official client: against the fake server, and with nothing listening."""

from __future__ import annotations

import dataclasses

import numpy as np
import ollama
import pytest

from rag.answer import AnswerConfig, generate_answer
from rag.embedders.ollama import OllamaEmbedder
from rag.errors import LLMUnavailable
from rag.llm import EngineChoice
from rag.llm.ollama import OllamaLLM
from rag.types import Passage
from tests.fakes.ollama import fake_ollama_server  # noqa: F401
from tests.servers import free_port

PASSAGE = Passage(7, 3, "prices.md", 0, "Kettles", "The blue kettle XK-4471 costs 20 euros.", 0.03, dense_score=0.71)
CONFIG = AnswerConfig(instructions="You are the shop's assistant.", fallback_message="Sorry, no idea.")


async def test_the_fake_speaks_ollama_to_the_official_client(fake_ollama):
    client = ollama.AsyncClient(host=fake_ollama.url)
    fake_ollama.reply = "Hello there friend"
    streamed = [
        part.message.content async for part in await client.chat("llama3.2", [{"role": "user", "content": "hi"}], stream=True)
    ]
    assert "".join(streamed).split() == ["Hello", "there", "friend"]
    single = await client.chat("llama3.2", [{"role": "user", "content": "hi"}])
    assert single.message.content == "Hello there friend" and single.done and single.prompt_eval_count > 0
    assert [m.model for m in (await client.list()).models] == ["deepseek-r1:latest", "llama3.2:latest"]
    assert (await client.show("llama3.2")).modelinfo["llama.context_length"] == 8192
    assert len((await client.embed("llama3.2", ["a", "b"])).embeddings[1]) == 384
    with pytest.raises(ollama.ResponseError) as missing:
        await client.chat("mistral", [{"role": "user", "content": "hi"}])
    assert missing.value.status_code == 404 and missing.value.error == "model 'mistral' not found"
    with pytest.raises(ollama.ResponseError) as missing_show:
        await client.show("mistral")
    assert missing_show.value.error == "model 'mistral:latest' not found"
    root = await client._client.get("/")
    assert root.text == "Ollama is running"
    await client.close()


async def test_answer_cites_sources_and_sizes_num_ctx_from_the_prompt(fake_ollama):
    fake_ollama.reply = "The **blue kettle** costs 20 euros [1]."
    llm = OllamaLLM(fake_ollama.url, timeout=5)
    answer = await generate_answer(
        [EngineChoice(llm, "llama3.2")], CONFIG, "How much is XK-4471?", [{"role": "user", "content": "Hi"}], [PASSAGE]
    )
    await llm.close()

    assert answer.text == "The *blue kettle* costs 20 euros [1]." and answer.parts == [answer.text]
    assert not answer.degraded and not answer.used_fallback
    assert answer.sources[0]["filename"] == "prices.md" and answer.sources[0]["document_id"] == 3
    sent = fake_ollama.requests_to("/api/chat")[0].body
    assert sent["stream"] is False and sent["model"] == "llama3.2"
    assert sent["options"]["num_ctx"] == answer.trace["num_ctx"] >= 2048
    # Numbered under its heading, never its file's name (a model would repeat it to customers); asked in English.
    assert "[1] (Kettles)" in sent["messages"][0]["content"] and "prices.md" not in sent["messages"][0]["content"]
    assert "Answer in English" in sent["messages"][0]["content"]
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "user"]
    trace = answer.trace
    assert trace["truncated"] is False and trace["prompt_tokens"] > 0 and trace["model"] == "llama3.2"
    assert trace["engine"] == "ollama" and trace["eval_count"] > 0 and trace["grounding"] == "on" and not answer.ungrounded
    assert trace["passages"][0]["dense_score"] == 0.71 and {"generation", "total"} <= trace["timings_ms"].keys()


async def test_server_side_truncation_is_flagged(fake_ollama):
    fake_ollama.chars_per_token = 0.05  # the model's tokenizer is far denser than our estimate
    fake_ollama.context_length = 2048
    llm = OllamaLLM(fake_ollama.url, timeout=5)
    answer = await generate_answer([EngineChoice(llm, "llama3.2")], CONFIG, "How much?", [], [PASSAGE])
    await llm.close()
    assert answer.trace["truncated"] is True and answer.trace["prompt_eval_count"] == answer.trace["num_ctx"] == 2048


async def test_a_missing_model_gives_the_quote_marked_as_such(fake_ollama):
    fake_ollama.set_models(["mistral"])
    llm = OllamaLLM(fake_ollama.url, timeout=5)
    answer = await generate_answer([EngineChoice(llm, "llama3.2")], CONFIG, "How much is XK-4471?", [], [PASSAGE])
    await llm.close()
    assert answer.degraded and answer.degraded_reason == "model_not_found"
    assert answer.text.startswith("Here is what our documents say") and "XK-4471 costs 20 euros" in answer.text
    assert "_(Kettles)_" in answer.text and "prices.md" not in answer.text and answer.sources[0]["chunk_id"] == 7
    assert answer.quoted and answer.trace["quote_reason"] == "degraded"
    assert "not available" in answer.trace["degraded_detail"]


async def test_ollama_down_gives_a_degraded_answer_quickly():
    llm = OllamaLLM(f"http://127.0.0.1:{free_port()}", timeout=2, retries=1)
    answer = await generate_answer([EngineChoice(llm, "llama3.2")], CONFIG, "How much is XK-4471?", [], [PASSAGE])
    assert answer.degraded and answer.degraded_reason == "ollama_unreachable" and "XK-4471" in answer.text
    with pytest.raises(LLMUnavailable) as caught:
        await llm.list_models()
    assert caught.value.code == "ollama_unreachable"
    await llm.close()


async def test_nothing_relevant_gives_the_fallback_without_calling_the_model(fake_ollama):
    weak = Passage(1, 1, "a.md", 0, "", "Unrelated text.", 0.01, dense_score=0.05)
    llm = OllamaLLM(fake_ollama.url, timeout=5)
    answer = await generate_answer([EngineChoice(llm, "llama3.2")], CONFIG, "Who won the match?", [], [weak])
    await llm.close()
    assert answer.text == "Sorry, no idea." and answer.used_fallback and not answer.degraded
    assert answer.top_score == 0.05 and answer.trace["used_fallback"] and not fake_ollama.requests_to("/api/chat")


async def test_a_busy_server_is_retried_then_degrades(fake_ollama):
    fake_ollama.fail_status = 503
    llm = OllamaLLM(fake_ollama.url, timeout=5, retries=2)
    answer = await generate_answer([EngineChoice(llm, "llama3.2")], CONFIG, "How much is XK-4471?", [], [PASSAGE])
    await llm.close()
    assert answer.degraded and answer.degraded_reason == "ollama_error"
    assert len(fake_ollama.requests_to("/api/chat")) == 3


async def test_a_slow_model_times_out_into_a_degraded_answer(fake_ollama):
    fake_ollama.chat_delay = 2
    llm = OllamaLLM(fake_ollama.url, timeout=0.5, retries=0)
    answer = await generate_answer([EngineChoice(llm, "llama3.2")], CONFIG, "How much is XK-4471?", [], [PASSAGE])
    await llm.close()
    assert answer.degraded and answer.degraded_reason == "timeout"


async def test_pull_reports_progress_until_success(fake_ollama):
    fake_ollama.set_models([])
    llm = OllamaLLM(fake_ollama.url, timeout=5)
    steps = [step async for step in llm.pull("llama3.2")]
    assert steps[0]["status"] == "pulling manifest" and steps[-1]["status"] == "success"
    assert [s["completed"] for s in steps if s["total"]] == sorted(s["completed"] for s in steps if s["total"])
    assert [m["name"] for m in await llm.list_models()] == ["llama3.2:latest"]
    fake_ollama.unpullable = {"nonexistent"}
    with pytest.raises(LLMUnavailable):
        _ = [step async for step in llm.pull("nonexistent")]
    await llm.close()


async def test_ollama_embedder_gives_unit_vectors_and_reports_a_missing_model(fake_ollama):
    fake_ollama.set_models(["all-minilm"])
    embedder = OllamaEmbedder("all-minilm", fake_ollama.url)
    vectors = await embedder.embed_passages(["one", "two", "one"])
    assert vectors.shape == (3, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert np.allclose(vectors[0], vectors[2]) and embedder.name == "ollama:all-minilm"
    fake_ollama.set_models([])
    with pytest.raises(LLMUnavailable) as caught:
        await embedder.embed_passages(["one"])
    assert caught.value.code == "model_not_found"
    await embedder.close()


async def test_a_model_saying_the_sources_lack_the_answer_gets_the_fallback(fake_ollama):
    fake_ollama.reply = "NOT_IN_SOURCES"
    llm = OllamaLLM(fake_ollama.url, timeout=5)
    answer = await generate_answer([EngineChoice(llm, "llama3.2")], CONFIG, "Do you sell teapots?", [], [PASSAGE])
    await llm.close()
    assert answer.text == "Sorry, no idea." and answer.used_fallback and not answer.degraded
    assert answer.trace["fallback_reason"] == "model_not_in_sources" and answer.sources == []


async def test_an_invented_price_is_replaced_by_the_passage_and_bad_citations_dropped(fake_ollama):
    fake_ollama.reply = "The blue kettle costs 25 euros [1] [3]."
    llm = OllamaLLM(fake_ollama.url, timeout=5)
    answer = await generate_answer([EngineChoice(llm, "llama3.2")], CONFIG, "How much is XK-4471?", [], [PASSAGE])
    await llm.close()
    assert answer.ungrounded and not answer.degraded and "25" not in answer.text
    assert answer.text.startswith("Here is what our documents say") and "costs 20 euros" in answer.text
    assert answer.trace["ungrounded_facts"] == ["25 euros"] and answer.trace["generated_text"].startswith("The blue kettle")

    fake_ollama.reply = "The blue kettle costs 20 euros [1] [3]."
    llm = OllamaLLM(fake_ollama.url, timeout=5)
    kept = await generate_answer([EngineChoice(llm, "llama3.2")], CONFIG, "How much is XK-4471?", [], [PASSAGE])
    await llm.close()
    assert kept.text == "The blue kettle costs 20 euros [1]." and not kept.ungrounded


async def test_with_the_guard_off_the_model_s_words_are_sent(fake_ollama):
    fake_ollama.reply = "The blue kettle costs 25 euros."
    llm = OllamaLLM(fake_ollama.url, timeout=5)
    unguarded = dataclasses.replace(CONFIG, grounding_guard=False)
    answer = await generate_answer([EngineChoice(llm, "llama3.2")], unguarded, "How much is XK-4471?", [], [PASSAGE])
    await llm.close()
    assert answer.text == "The blue kettle costs 25 euros." and answer.trace["grounding"] == "off"


async def test_the_next_engine_answers_when_the_first_is_down(fake_ollama):
    down = OllamaLLM(f"http://127.0.0.1:{free_port()}", timeout=2, retries=0)
    up = OllamaLLM(fake_ollama.url, timeout=5)
    fake_ollama.reply = "It costs 20 euros [1]."
    answer = await generate_answer(
        [EngineChoice(down, "llama3.2"), EngineChoice(up, "llama3.2")], CONFIG, "Price?", [], [PASSAGE]
    )
    await down.close()
    await up.close()
    assert not answer.degraded and answer.text == "It costs 20 euros [1]."
    assert [a["error"] for a in answer.trace["engine_attempts"]] == ["ollama_unreachable", None]
