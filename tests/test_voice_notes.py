"""Voice notes and other media through the sandbox, the real way: speech made with espeak-ng, sent as an
ogg/opus voice note, transcribed by the packaged multilingual Whisper base in the contact's language,
answered as the customer's words."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import pytest

from backend.database import execute
from backend.store.media import forget_old_files
from tests.conftest import login, make_settings
from tests.fakes.evolution import running_fake_evolution
from tests.fakes.ollama import fake_ollama  # noqa: F401 - fixture
from tests.fakes.waha import backend_with_gateway, running_fake_waha
from tests.sandbox_chat import make_sandbox, outbox
from tests.speech_support import speak, to_ogg_opus

SENDER = "+15550003"


@pytest.fixture(scope="module")
def joined_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DATA_DIR/models of every backend of this module: Whisper base is joined from its packages once."""
    return tmp_path_factory.mktemp("models")


def sharing_models(data_dir: Path, models: Path) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "models").symlink_to(models, target_is_directory=True)
    return data_dir


@pytest.fixture
def settings(database_url, tmp_path, fake_ollama, joined_models):  # noqa: F811
    return make_settings(database_url, sharing_models(tmp_path / "data", joined_models), **fake_ollama.backend_settings())


async def send(api, channel_id: int, *, text: str = "", media: bytes | None = None, mimetype: str | None = None) -> str:
    body: dict = {"from": SENDER, "text": text}
    if media is not None:
        body |= {"media_base64": base64.b64encode(media).decode(), "mimetype": mimetype}
    response = await api.post(f"/api/channels/{channel_id}/sandbox/messages", json=body)
    assert response.status_code == 200, response.text
    return response.json()["outcome"]


async def replies(api, channel_id: int, count: int, timeout: float = 60.0) -> list[dict]:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while len(items := await outbox(api, channel_id)) < count:
        assert time.monotonic() < deadline, f"{len(items)} of {count} replies"
        await asyncio.sleep(0.1)
    return items


async def thread(api) -> list[dict]:
    [contact] = (await api.get("/api/contacts")).json()["items"]
    return (await api.get(f"/api/contacts/{contact['id']}/messages")).json()["items"]


async def test_a_voice_note_is_heard_answered_and_shown_with_its_transcript_and_file(api):
    _, channel_id = await make_sandbox(api)
    note = to_ogg_opus(speak("What time do you open on Saturday?"))
    assert await send(api, channel_id, media=note, mimetype="audio/ogg; codecs=opus") == "stored"
    [reply] = await replies(api, channel_id, 1)
    question, answer = await thread(api)
    words = question["text"].lower()
    assert "open" in words and "saturday" in words
    assert question["media"]["kind"] == "voice" and question["media"]["transcript_model"] == "base"
    assert question["media"]["audio_seconds"] > 1 and question["media"]["error"] is None
    assert answer["text"] == reply["text"] and "saturday" in answer["trace"]["question"].lower()
    assert question["media"]["transcribe_seconds"] > 0
    found = (await api.get("/api/contacts", params={"q": "saturday"})).json()["items"]
    assert len(found) == 1  # what a customer said is searchable like what they wrote
    played = await api.get(question["media"]["url"])
    assert played.status_code == 200 and played.content == note and played.headers["content-type"].startswith("audio/ogg")


BAKERY_PT = """# Padaria Pão Quente

## Preços

O pão de queijo custa 4 reais a unidade. O bolo de cenoura custa 30 reais.

## Horário

Abrimos de segunda a sábado, das 7 às 19 horas. Aos domingos abrimos das 8 às 12 horas.
"""


@pytest.fixture
async def multilingual_api(database_url, tmp_path, fake_ollama, joined_models):  # noqa: F811
    """A backend with the default, real embedder (multilingual) and the fake Ollama as its chat model."""
    fake_ollama.set_models(["llama3.2"])
    async with backend_with_gateway(
        database_url, sharing_models(tmp_path / "data", joined_models), ollama_host=fake_ollama.url
    ) as backend, backend.client(await login(backend)) as api:  # fmt: skip
        yield api


async def test_a_portuguese_voice_note_is_heard_in_the_contact_language_and_answered(multilingual_api, fake_ollama):  # noqa: F811
    api = multilingual_api
    assistant_id, channel_id = await make_sandbox(api)
    upload = await api.post(
        f"/api/assistants/{assistant_id}/documents", files={"files": ("padaria.md", BAKERY_PT.encode(), "text/markdown")}
    )
    assert upload.status_code == 201, upload.text
    await _document_ready(api, assistant_id)
    fake_ollama.reply = "O pão de queijo custa 4 reais [1]."
    # A first message in Portuguese gives the contact their language...
    assert await send(api, channel_id, text="Olá, bom dia! Vocês fazem entregas no centro da cidade?") == "stored"
    await replies(api, channel_id, 1)
    [contact] = (await api.get("/api/contacts")).json()["items"]
    assert contact["language"] == "pt", contact
    # ...so the voice note is heard in Portuguese: espeak's Portuguese, left to Whisper's own guess, comes back as
    # Italian or English ("Quanto costa o pao di caveo").
    note = to_ogg_opus(speak("Quanto custa o pão de queijo?", voice="pt-br"))
    assert await send(api, channel_id, media=note, mimetype="audio/ogg; codecs=opus") == "stored"
    second = (await replies(api, channel_id, 2))[-1]
    *_, question, answer = await thread(api)
    words = question["text"].lower()
    assert "quanto" in words and "custa" in words and "pão" in words, question["text"]
    assert question["media"]["transcript_model"] == "base" and question["media"]["error"] is None
    assert question["reason"] != "voice_unclear" and "custa" in answer["trace"]["question"].lower()
    assert answer["text"] == second["text"] and "4 reais" in second["text"], second
    assert answer["sources"] and answer["sources"][0]["filename"] == "padaria.md"


async def _document_ready(api, assistant_id: int, timeout: float = 120.0) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while True:
        [document] = (await api.get(f"/api/assistants/{assistant_id}/documents")).json()["items"]
        assert document["status"] != "failed", document
        if document["status"] == "ready":
            return
        assert time.monotonic() < deadline, document
        await asyncio.sleep(0.2)


async def test_old_files_are_deleted_after_the_retention_and_what_was_heard_stays(api, backend):
    _, channel_id = await make_sandbox(api)
    assert await send(api, channel_id, media=to_ogg_opus(speak("Do you sell birthday cakes?")), mimetype="audio/ogg") == "stored"
    await replies(api, channel_id, 1)
    db = backend.app.ctx.db
    assert await forget_old_files(db, 1) == 0  # a new file stays
    await execute(db, "UPDATE message_media SET created_at = now() - interval '2 days'")
    assert await forget_old_files(db, 1) == 1
    [question, _] = await thread(api)
    assert "cake" in question["text"].lower() and question["media"]["transcript_model"] == "base"
    assert (await api.get(question["media"]["url"])).status_code == 404


async def test_a_voice_note_nobody_can_hear_gets_the_polite_reply(api):
    _, channel_id = await make_sandbox(api, voice_unclear_reply="Sorry, could you type that?")
    assert await send(api, channel_id, media=b"OggS" + b"\x00" * 300, mimetype="audio/ogg") == "stored"
    [reply] = await replies(api, channel_id, 1)
    assert reply["text"] == "Sorry, could you type that?"
    [question, _] = await thread(api)
    assert question["reason"] == "voice_unclear" and question["media"]["error"]


async def test_an_image_without_caption_gets_the_media_reply_and_with_one_is_answered(api):
    _, channel_id = await make_sandbox(api, media_reply="I can't see pictures yet.")
    png = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
    assert await send(api, channel_id, media=png, mimetype="image/png") == "stored"
    [first] = await replies(api, channel_id, 1)
    assert first["text"] == "I can't see pictures yet."
    assert await send(api, channel_id, text="Is this bike in stock?", media=png, mimetype="image/png") == "stored"
    second = (await replies(api, channel_id, 2))[-1]
    assert second["text"] != "I can't see pictures yet."
    items = await thread(api)
    assert [m["media"]["kind"] for m in items if m["direction"] == "in"] == ["image", "image"]


async def test_a_burst_of_text_and_a_voice_note_is_answered_together_in_order(api):
    _, channel_id = await make_sandbox(api, burst_window_seconds=3)
    assert await send(api, channel_id, text="Hello there.") == "stored"
    note = to_ogg_opus(speak("Do you repair electric bikes?"))
    assert await send(api, channel_id, media=note, mimetype="audio/ogg") == "stored"
    [reply] = await replies(api, channel_id, 1)
    *_, answer = await thread(api)
    question = answer["trace"]["question"].lower()
    assert question.index("hello") < question.index("bikes") and len(answer["trace"]["answered_message_ids"]) == 2
    assert reply["text"] == answer["text"]


async def test_a_file_that_is_not_base64_or_has_no_type_is_refused(api):
    _, channel_id = await make_sandbox(api)
    bad = await api.post(
        f"/api/channels/{channel_id}/sandbox/messages", json={"from": SENDER, "media_base64": "%%%", "mimetype": "audio/ogg"}
    )
    untyped = await api.post(f"/api/channels/{channel_id}/sandbox/messages", json={"from": SENDER, "media_base64": "AAAA"})
    empty = await api.post(f"/api/channels/{channel_id}/sandbox/messages", json={"from": SENDER, "text": " "})
    assert bad.status_code == untyped.status_code == empty.status_code == 400


@pytest.fixture
async def waha_stack(database_url, tmp_path, fake_ollama, joined_models):  # noqa: F811
    async with running_fake_waha("test-waha-key") as fake, backend_with_gateway(
        database_url, sharing_models(tmp_path, joined_models),
        gateway_provider="waha", waha_url=fake.url, waha_api_key="test-waha-key",
        **fake_ollama.backend_settings(),
    ) as backend, backend.client(await login(backend)) as api:  # fmt: skip
        yield api, backend, fake


@pytest.fixture
async def evolution_stack(database_url, tmp_path, fake_ollama, joined_models):  # noqa: F811
    async with running_fake_evolution("test-evolution-key") as fake, backend_with_gateway(
        database_url, sharing_models(tmp_path, joined_models),
        gateway_provider="evolution", evolution_url=fake.url, evolution_api_key="test-evolution-key",
        **fake_ollama.backend_settings(),
    ) as backend, backend.client(await login(backend)) as api:  # fmt: skip
        yield api, backend, fake


async def wait_for_sent(fake, count: int, timeout: float = 60.0) -> list[dict]:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while len(fake.sent) < count:
        assert time.monotonic() < deadline, f"{len(fake.sent)} of {count} sends"
        await asyncio.sleep(0.1)
    return fake.sent


async def test_a_waha_voice_note_is_fetched_with_the_api_key_after_a_failed_try_and_answered(waha_stack):
    api, _, fake = waha_stack
    await api.post(
        "/api/channels", json={"assistant_id": (await api.post("/api/assistants", json={"name": "Shop"})).json()["id"]}
    )
    assert await fake.scan("+15550100001") == [200]
    fake.files_fail = 1  # the first download fails: the reply job retries with back-off
    _, statuses = await fake.deliver_media("+15550109999", to_ogg_opus(speak("Do you open on Sunday?")), "audio/ogg; codecs=opus")
    assert statuses == [200]
    [sent] = await wait_for_sent(fake, 1)
    question = (await thread(api))[0]
    assert question["media"]["error"] is None, question
    assert "sunday" in question["text"].lower() and question["media"]["kind"] == "voice" and sent["text"]


async def test_an_evolution_voice_note_comes_inline_and_is_answered(evolution_stack):
    api, _, fake = evolution_stack
    await api.post(
        "/api/channels", json={"assistant_id": (await api.post("/api/assistants", json={"name": "Shop"})).json()["id"]}
    )
    assert await fake.scan("+15550100001") == [200]
    _, statuses = await fake.deliver_media("+15550109999", to_ogg_opus(speak("Can I pay by card?")), "audio/ogg; codecs=opus")
    assert statuses == [200]
    await wait_for_sent(fake, 1)
    question = (await thread(api))[0]
    assert "card" in question["text"].lower() and question["media"]["transcript_model"] == "base"
