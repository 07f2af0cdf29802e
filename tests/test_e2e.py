"""The whole story, the way a new user meets it, over real HTTP between separate processes.

`python -m backend` is started as the README starts it (no DATABASE_URL: the embedded PostgreSQL
under DATA_DIR, a fresh temp folder); the operator drives it through the console's own API client;
WhatsApp is the fake WAHA and the model is the fake Ollama, both on loopback in this process.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from console.api import Api
from tests.conftest import ADMIN
from tests.e2e_support import BackendProcess, eventually, stop_embedded_postgres
from tests.fakes.ollama import fake_ollama  # noqa: F401 - fixture
from tests.fakes.waha import running_fake_waha
from tests.servers import free_port

WAHA_KEY = "e2e-waha-api-key"
SHOP_NUMBER = "+15550100001"
CUSTOMER = "+15550109999"
FAQ = b"""# Corner Bakery: frequently asked questions

## Opening hours

On weekdays we open at 7 am and close at 6 pm. On Saturdays the bakery opens at 8 am and closes at 2 pm.
On Sundays we are closed.

## Orders

Birthday cakes must be ordered two days in advance by phone.
"""
PASSAGE = "On Saturdays the bakery opens at 8 am and closes at 2 pm"
MODEL_REPLY = "On Saturdays we open at 8 am and close at 2 pm [1]."


@pytest.fixture
async def backend_process(tmp_path, fake_ollama):  # noqa: F811
    """`python -m backend` on a fresh embedded PostgreSQL, wired to the fake WAHA and fake Ollama."""
    fake_ollama.set_models(["llama3.2"])
    fake_ollama.reply = MODEL_REPLY
    async with running_fake_waha(WAHA_KEY) as waha:
        port = free_port()
        data_dir = tmp_path / "data"
        env = {
            "DATABASE_URL": "",  # unset: the embedded server, as on a first run
            "DATA_DIR": str(data_dir),
            "ADMIN_EMAIL": ADMIN["email"],
            "ADMIN_PASSWORD": ADMIN["password"],
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "GATEWAY_PROVIDER": "waha",
            "WAHA_URL": waha.url,
            "WAHA_API_KEY": WAHA_KEY,
            "OLLAMA_HOST": fake_ollama.url,
            "HF_HUB_OFFLINE": "1",
            "LOG_FORMAT": "json",
        }
        process = BackendProcess(env=env, log_path=tmp_path / "backend.log", port=port)
        process.start()
        try:
            await process.wait_ready(within=180)
            yield process, waha, fake_ollama
        finally:
            await asyncio.to_thread(process.stop)
            await asyncio.to_thread(stop_embedded_postgres, data_dir / "postgres")


async def call(function, *args, **kwargs):
    """The console's client is synchronous; run it off the loop that serves the fakes."""
    return await asyncio.to_thread(function, *args, **kwargs)


async def test_operator_connects_whatsapp_and_a_customer_gets_one_sourced_answer(backend_process):
    process, waha, ollama = backend_process
    token = (await call(Api(process.url).login, ADMIN["email"], ADMIN["password"])).token
    console = Api(process.url, token)
    try:
        # An assistant with its knowledge.
        assistant = await call(
            console.create_assistant,
            {
                "name": "Corner Bakery",
                "instructions": "Answer from the sources, briefly.",
                "policies": {"burst_window_seconds": 0, "typing_seconds_per_char": 0},
            },
        )
        uploaded = await call(console.upload_documents, assistant.id, [("bakery-faq.md", FAQ, "text/markdown")])
        assert [d.filename for d in uploaded] == ["bakery-faq.md"]

        async def document_ready() -> bool:
            documents = (await call(console.documents, assistant.id)).items
            assert documents[0].status != "failed", documents[0]
            return documents[0].status == "ready" and documents[0].chunk_count > 0

        await eventually(document_ready, within=120, interval=0.5, what="the document to be indexed")

        # Connect WhatsApp: a QR to scan, then ready with the shop's number.
        channel = await call(console.connect, assistant.id, "waha")
        assert channel.status == "pending_qr"
        await waha.idle()
        session = waha.session()
        assert channel.qr and channel.qr == session["qr"]
        assert await waha.scan(SHOP_NUMBER) == [200]
        ready = await call(console.channel, channel.id)
        assert ready.status == "ready" and ready.phone_number == SHOP_NUMBER and ready.qr is None

        # A customer asks; the answer comes back through WhatsApp exactly once.
        assert await waha.deliver_message(CUSTOMER, "What time do you open on Saturday?") == [200]
        await eventually(lambda: _sent(waha), within=60, what="the reply's sendText")
        await asyncio.sleep(1.5)  # a duplicate would arrive by now
        assert len(waha.sent) == 1, waha.sent
        sent = waha.sent[0]
        assert sent["session"] == session["name"] and sent["chatId"] == f"{CUSTOMER.lstrip('+')}@c.us"
        assert "8 am" in sent["text"]

        # The model was asked with the document's passage as a source.
        prompts = [json.dumps(r.body) for r in ollama.requests_to("/api/chat")]
        assert len(prompts) == 1 and PASSAGE in prompts[0] and "What time do you open on Saturday?" in prompts[0]

        # The operator sees the thread in the console.
        contacts = await call(console.contacts, assistant_id=assistant.id)
        assert [c.phone_number for c in contacts] == [CUSTOMER]
        thread = await call(console.thread, contacts[0].id)
        question, answer = thread.items
        assert (question.direction, question.author, question.status) == ("in", "customer", "answered")
        assert (answer.direction, answer.author, answer.status) == ("out", "bot", "sent")
        assert answer.text == sent["text"] and answer.degraded is False
        source = answer.sources[0]
        assert source["filename"] == "bakery-faq.md" and source["heading"].endswith("Opening hours"), answer.sources
    finally:
        console.close()


async def _sent(waha) -> bool:
    return bool(waha.sent)
