"""Every customer in their own language, end to end through the sandbox gateway: the contact's language (detected by the
real lingua detector, or set by an operator) and every fixed text of every shipped language reaching the customer."""

from __future__ import annotations

import asyncio
import base64
import time

import pytest

from backend.services.texts import SHIPPED
from tests.conftest import make_settings
from tests.fakes.ollama import fake_ollama  # noqa: F401 - fixture
from tests.sandbox_chat import POLICY, outbox

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
BROKEN_VOICE_NOTE = b"OggS" + b"\x00" * 300
SEVEN = ["en", "pt", "es", "de", "fr", "id", "hi"]
# Per language: a first message clear enough to tell its language, then the customer's commands.
CUSTOMERS = {
    "en": ("What time do you open on Sunday?", "STOP", "START", "Can I talk to a person?"),
    "pt": ("oi, vcs abrem domingo?", "PARAR", "VOLTAR", "quero falar com uma pessoa"),
    "es": ("hola, ¿cuánto cuesta el envío?", "BAJA", "ALTA", "quiero hablar con una persona"),
    "de": ("Wann habt ihr am Sonntag offen?", "STOPP", "START", "Ich möchte mit einem Menschen sprechen"),
    "fr": ("C'est combien la livraison ?", "ARRÊT", "START", "Je voudrais parler à quelqu'un"),
    "id": ("brp harga roti tawar kak", "BERHENTI", "MULAI", "kak, mau bicara dengan admin"),
    "hi": ("क्या आप रविवार को खुले हैं?", "बंद करें", "शुरू", "मुझे किसी इंसान से बात करनी है"),
}


@pytest.fixture
def settings(database_url, tmp_path, fake_ollama):  # noqa: F811
    return make_settings(database_url, tmp_path / "data", **fake_ollama.backend_settings())


async def open_shop(api, languages: list[str], **policies) -> int:
    """An assistant serving `languages` (none: automatic) with a ready sandbox channel; its channel id."""
    created = await api.post(
        "/api/assistants", json={"name": "Padaria", "languages": languages, "policies": {**POLICY, **policies}}
    )
    assert created.status_code == 201, created.text
    channel = await api.post("/api/channels", json={"assistant_id": created.json()["id"], "provider": "sandbox"})
    channel_id = channel.json()["id"]
    scanned = await api.post(f"/api/channels/{channel_id}/sandbox/scan", json={})
    assert scanned.json()["status"] == "ready", scanned.text
    return channel_id


async def say(api, channel_id: int, sender: str, text: str = "", media: bytes | None = None, mimetype: str | None = None) -> str:
    body: dict = {"from": sender, "text": text}
    if media is not None:
        body |= {"media_base64": base64.b64encode(media).decode(), "mimetype": mimetype}
    response = await api.post(f"/api/channels/{channel_id}/sandbox/messages", json=body)
    assert response.status_code == 200, response.text
    return response.json()["outcome"]


async def replies_to(api, channel_id: int, sender: str, count: int, timeout: float = 60.0) -> list[str]:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while True:
        texts = [item["text"] for item in await outbox(api, channel_id) if item["chat_id"] == sender]
        if len(texts) >= count:
            return texts
        assert time.monotonic() < deadline, f"{len(texts)} of {count} replies to {sender}: {texts}"
        await asyncio.sleep(0.05)


async def exchange(api, channel_id: int, sender: str, count: int, **message) -> str:
    """Write, and return the reply that is the contact's `count`-th."""
    assert await say(api, channel_id, sender, **message) == "stored"
    return (await replies_to(api, channel_id, sender, count))[count - 1]


async def contact_of(api, channel_id: int, sender: str) -> dict:
    items = (await api.get("/api/contacts", params={"channel_id": channel_id, "q": sender.lstrip("+")})).json()["items"]
    assert len(items) == 1, items
    return items[0]


async def test_the_contacts_language_is_detected_kept_on_ok_and_set_by_an_operator(api):
    channel_id = await open_shop(api, ["pt", "en"])
    customer = "+5511999990001"
    # No documents yet: the fallback, in the customer's language.
    assert await exchange(api, channel_id, customer, 1, text="oi, vcs abrem domingo?") == SHIPPED["fallback"]["pt"]
    contact = await contact_of(api, channel_id, customer)
    assert (contact["language"], contact["language_name"], contact["language_source"]) == ("pt", "Português", "detected")
    # Too short to judge: nothing changes, and the reply stays Portuguese.
    assert await exchange(api, channel_id, customer, 2, text="ok") == SHIPPED["fallback"]["pt"]
    assert await exchange(api, channel_id, customer, 3, text="👍") == SHIPPED["fallback"]["pt"]
    assert (await contact_of(api, channel_id, customer))["language"] == "pt"
    # A confident message in another language changes it.
    assert await exchange(api, channel_id, customer, 4, text="What time do you open on Sunday?") == SHIPPED["fallback"]["en"]
    assert (await contact_of(api, channel_id, customer))["language"] == "en"

    # An operator sets it; detection leaves it alone from then on.
    changed = await api.patch(f"/api/contacts/{contact['id']}", json={"language": "pt"})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["language"], changed.json()["language_source"]) == ("pt", "operator")
    assert await exchange(api, channel_id, customer, 5, text="Do you deliver on Sundays?") == SHIPPED["fallback"]["pt"]
    thread = (await api.get(f"/api/contacts/{contact['id']}/messages")).json()
    assert thread["contact"]["language"] == "pt" and thread["contact"]["language_source"] == "operator"
    # Given back to detection, the next clear message decides again.
    back = await api.patch(f"/api/contacts/{contact['id']}", json={"language": None})
    assert back.status_code == 200 and back.json()["language"] is None and back.json()["language_source"] is None
    assert await exchange(api, channel_id, customer, 6, text="Do you deliver on Sundays?") == SHIPPED["fallback"]["en"]
    assert (await contact_of(api, channel_id, customer))["language_source"] == "detected"


async def test_a_language_an_operator_cannot_set_is_refused_with_a_clear_error(api):
    channel_id = await open_shop(api, [])
    await say(api, channel_id, "+5511999990002", "hello")
    contact = await contact_of(api, channel_id, "+5511999990002")
    for body in ({"language": "xx"}, {"language": "Portuguese"}, {}, {"language": "pt", "name": "Ana"}):
        refused = await api.patch(f"/api/contacts/{contact['id']}", json=body)
        assert refused.status_code == 400, body
        assert refused.json()["error"]["message"]
    assert (await api.patch("/api/contacts/999999", json={"language": "pt"})).status_code == 404
    assert (await contact_of(api, channel_id, "+5511999990002"))["language_source"] is None


async def test_a_customer_in_a_language_the_assistant_does_not_serve_gets_its_main_language(api):
    channel_id = await open_shop(api, ["pt"])
    customer = "+4915100000003"
    assert await exchange(api, channel_id, customer, 1, text="Wann habt ihr am Sonntag offen?") == SHIPPED["fallback"]["pt"]
    assert (await contact_of(api, channel_id, customer))["language"] == "de"  # the contact's own, kept as data


async def test_an_opt_out_word_is_confirmed_in_its_own_language_before_any_language_is_known(api):
    channel_id = await open_shop(api, [])  # automatic: English only
    assert await exchange(api, channel_id, "+5511999990004", 1, text="PARAR") == SHIPPED["opt_out"]["pt"]
    assert await exchange(api, channel_id, "+5511999990005", 1, text="STOP") == SHIPPED["opt_out"]["en"]
    assert (await contact_of(api, channel_id, "+5511999990004"))["opted_out"] is True


async def test_every_fixed_text_reaches_the_customer_in_every_shipped_language(api):
    channel_id = await open_shop(api, SEVEN)
    for number, (code, (question, opt_out, opt_in, handoff)) in enumerate(CUSTOMERS.items()):
        customer = f"+55119888800{number:02d}"
        got = [
            await exchange(api, channel_id, customer, 1, text=question),
            await exchange(api, channel_id, customer, 2, media=PNG, mimetype="image/png"),
            await exchange(api, channel_id, customer, 3, media=BROKEN_VOICE_NOTE, mimetype="audio/ogg"),
            await exchange(api, channel_id, customer, 4, text=opt_out),
            await exchange(api, channel_id, customer, 5, text=opt_in),
            await exchange(api, channel_id, customer, 6, text=handoff),
        ]
        keys = ["fallback", "media", "voice_unclear", "opt_out", "opt_in", "handoff"]
        assert got == [SHIPPED[key][code] for key in keys], code
        contact = await contact_of(api, channel_id, customer)
        assert contact["language"] == code and contact["owner"] == "human"


async def test_the_languages_and_their_shipped_texts_are_listed_and_an_assistants_own_are_kept(api):
    catalog = (await api.get("/api/assistants/languages")).json()
    portuguese = next(item for item in catalog["items"] if item["code"] == "pt")
    assert portuguese["native"] == "Português" and portuguese["texts"]["handoff"] == SHIPPED["handoff"]["pt"]
    assert "atendente" in portuguese["words"]["handoff"] and set(catalog["text_keys"]) == set(SHIPPED)

    channel_id = await open_shop(api, ["pt", "en"], texts={"pt": {"handoff": "Já chamo a Ana, um minutinho!"}})
    assert (
        await exchange(api, channel_id, "+5511999990006", 1, text="quero falar com uma pessoa") == "Já chamo a Ana, um minutinho!"
    )
    bad = await api.post("/api/assistants", json={"name": "X", "languages": ["pt", "xx"]})
    twice = await api.post("/api/assistants", json={"name": "X", "languages": ["pt", "pt"]})
    unknown_key = await api.post("/api/assistants", json={"name": "X", "policies": {"texts": {"pt": {"greeting": "oi"}}}})
    assert bad.status_code == twice.status_code == unknown_key.status_code == 400


async def test_the_lead_in_above_quoted_passages_is_in_each_customers_language(api, fake_ollama):  # noqa: F811
    # One vector for every text: the passage is relevant to every question, whatever its language.
    same = fake_ollama.vector("any text")
    fake_ollama.vector = lambda text: same
    channel_id = await open_shop(api, SEVEN, answer_mode="quote")
    assistant_id = (await api.get(f"/api/channels/{channel_id}")).json()["assistant_id"]
    document = b"# Prices\n\nA croissant costs 1.80 euros. A loaf of sourdough costs 4.50 euros.\n"
    uploaded = await api.post(f"/api/assistants/{assistant_id}/documents", files=[("files", ("prices.md", document))])
    assert uploaded.status_code == 201, uploaded.text
    deadline = time.monotonic() + 60
    while (await api.get(f"/api/assistants/{assistant_id}/documents")).json()["items"][0]["status"] != "ready":
        assert time.monotonic() < deadline, "the document was not indexed"
        await asyncio.sleep(0.2)
    for number, (code, (question, *_)) in enumerate(CUSTOMERS.items()):
        received = await exchange(api, channel_id, f"+55119777700{number:02d}", 1, text=question)
        assert received.startswith(SHIPPED["quote_intro"][code]), (code, received)
        assert "A croissant costs 1.80 euros." in received


async def test_an_automatic_assistant_serves_its_documents_language_first(api, fake_ollama):  # noqa: F811
    """No languages set: a Portuguese document makes Portuguese the assistant's main language, so a customer whose
    language is not known yet ("ok") gets the Portuguese lead-in, not the English one."""
    same = fake_ollama.vector("any text")
    fake_ollama.vector = lambda text: same
    channel_id = await open_shop(api, [], answer_mode="quote")
    assistant_id = (await api.get(f"/api/channels/{channel_id}")).json()["assistant_id"]
    document = "# Entregas\n\nA taxa de entrega é de R$ 5,00, e pedidos acima de R$ 60,00 têm entrega grátis.\n".encode()
    uploaded = await api.post(f"/api/assistants/{assistant_id}/documents", files=[("files", ("entregas.md", document))])
    assert uploaded.status_code == 201, uploaded.text
    deadline = time.monotonic() + 60
    while (await api.get(f"/api/assistants/{assistant_id}/documents")).json()["items"][0]["status"] != "ready":
        assert time.monotonic() < deadline, "the document was not indexed"
        await asyncio.sleep(0.2)
    assistant = (await api.get(f"/api/assistants/{assistant_id}")).json()
    assert assistant["document_languages"] == ["pt"] and assistant["served_languages"][0] == "pt"
    received = await exchange(api, channel_id, "+5511977770099", 1, text="ok")
    assert received.startswith(SHIPPED["quote_intro"]["pt"]), received
