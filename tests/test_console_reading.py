"""The console in a person's words: reasons on replies, answered gaps, errors without internals, zoned times.

Runs the console through Streamlit's AppTest against the real backend on loopback, with the fixtures
of `test_console_pages` (one backend and fake Ollama for this module).
"""

from __future__ import annotations

import re

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from console.api import Api, ApiError
from tests import test_console_pages as pages
from tests.fakes.console_stack import admin_token, backend_on_new_database, wait_for
from tests.test_console_pages import APP, new_assistant, ready_channel, rendered, rerun_until, select_assistant, shown

# The pages' fixtures, for this module's own backend and fake Ollama.
ollama, stack, api, console = pages.ollama, pages.stack, pages.api, pages.console

TIME_IN_UTC = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC")


def indexed(client: httpx.Client, assistant_id: int, filename: str, text: bytes) -> None:
    files = [("files", (filename, text, "text/plain"))]
    assert client.post(f"/api/assistants/{assistant_id}/documents", files=files).status_code == 201
    wait_for(
        lambda: all(d["status"] == "ready" for d in client.get(f"/api/assistants/{assistant_id}/documents").json()["items"]),
        timeout=60,
        what="the document indexed",
    )


def bubble_words(bubble) -> str:  # AppTest's ChatMessage
    return "\n".join([t.value for t in bubble.text] + [c.value for c in bubble.caption] + [e.value for e in bubble.error])


def test_a_saved_gap_answer_leaves_the_list_as_an_faq_named_after_its_question(console, api):
    assistant = new_assistant(api, "Gap filler", model="llama3.2", policies={"burst_window_seconds": 0})
    channel = ready_channel(api, assistant["id"], "+15550008801")
    sent = api.post(
        f"/api/channels/{channel['id']}/sandbox/messages", json={"from": "+15557778801", "text": "What are your opening hours?"}
    )
    assert sent.status_code == 200, sent.text
    at = select_assistant(console("gaps"), assistant)
    rerun_until(at, lambda page: "“What are your opening hours?”" in shown(page), what="the question as a gap")

    faq = next(f for f in at.form if f.key == "faq-0")
    faq.text_area[0].set_value("Monday to Friday, 9 am to 5 pm.")
    faq.button[0].click()
    at.run()
    assert not at.exception
    page = shown(at)
    assert "Saved as faq-what-are-your-opening-hours.md" in page and "marked answered" in page
    assert "“What are your opening hours?”" not in page and "No gaps" in page
    assert not at.text_area  # no empty form left behind
    documents = api.get(f"/api/assistants/{assistant['id']}/documents").json()["items"]
    assert [(d["filename"], d["status"]) for d in documents] == [("faq-what-are-your-opening-hours.md", "ready")]

    # The reply it got was the fallback: Conversations says so, and why, next to it.
    at.switch_page("views/conversations.py").run()
    at.selectbox(key="conversations_assistant").select(assistant["id"]).run()
    next(b for b in at.button if "15557778801" in b.label).click().run()
    reply = at.chat_message[1]
    assert "No passage in the documents was good enough, so the fallback message was sent." in bubble_words(reply)


def test_a_degraded_reply_says_why_in_the_sandbox_chat_and_in_conversations(console, api):
    # Ollama does not have this model: the documents' sentences that answer are quoted instead.
    assistant = new_assistant(api, "Degraded", model="not-pulled-model", policies={"burst_window_seconds": 0})
    indexed(api, assistant["id"], "hours.txt", b"Opening hours. The shop opens at 10 am on weekdays.")
    channel = ready_channel(api, assistant["id"], "+15550008802")
    at = select_assistant(console("whatsapp"), assistant)
    chat = next(f for f in at.form if f.key == f"chat-{channel['id']}")
    chat.text_input[0].set_value("+15557778802")
    chat.text_input[1].set_value("When does the shop open?")
    chat.button[0].click()
    at.run()
    rerun_until(at, lambda page: len(page.chat_message) == 2, what="the reply in the sandbox chat")
    reason = "The model is not available on its engine, so the documents' sentences that answer were quoted instead."
    reply = at.chat_message[1]
    assert reason in bubble_words(reply)
    assert TIME_IN_UTC.search(reply.caption[0].value), reply.caption[0].value

    at.switch_page("views/conversations.py").run()
    at.selectbox(key="conversations_assistant").select(assistant["id"]).run()
    next(b for b in at.button if "15557778802" in b.label).click().run()
    assert not at.exception
    reply = at.chat_message[1]
    assert reason in bubble_words(reply)
    page = shown(at)
    # The trace: tables with titles; no generation time, since no model wrote the reply.
    assert "Passages found for the question, best first" in page and "Sources the answer used" in page
    assert "No model wrote this reply" in page
    timings = next(c.value for c in at.caption if c.value.startswith("Timings:"))
    assert "finding passages" in timings and "writing the answer" not in timings

    # Leaving the page and coming back keeps the customer number of the sandbox chat.
    at.switch_page("views/whatsapp.py").run()
    chat = next(f for f in at.form if f.key == f"chat-{channel['id']}")
    assert chat.text_input[0].value == "+15557778802"


def test_the_search_tester_says_how_well_each_passage_matches_in_words(console, api):
    assistant = new_assistant(api, "Searcher")
    indexed(api, assistant["id"], "hours.txt", b"Opening hours. The shop opens at 10 am on weekdays.")
    at = select_assistant(console("knowledge"), assistant)
    search = next(f for f in at.form if f.key == "search")
    search.text_input[0].set_value("when does the shop open")
    search.button[0].click()
    at.run()
    assert not at.exception
    page = shown(at)
    assert re.search(r"(Strong|Fair|Weak) match: ", page), page
    assert "score 0." not in page and "similarity 0." in page  # the figure stays, explained: "of 1"


def test_a_message_answered_by_a_person_no_longer_says_paused(console, api):
    assistant = new_assistant(api, "Handover", policies={"burst_window_seconds": 0})
    channel = ready_channel(api, assistant["id"], "+15550008803")
    path = f"/api/channels/{channel['id']}/sandbox/messages"
    assert api.post(path, json={"from": "+15557778803", "text": "Hello"}).status_code == 200
    contact = wait_for(
        lambda: next(iter(api.get("/api/contacts", params={"assistant_id": assistant["id"]}).json()["items"]), None),
        timeout=20,
        what="the contact",
    )
    assert api.post(f"/api/contacts/{contact['id']}/pause", json={}).status_code == 200
    assert api.post(path, json={"from": "+15557778803", "text": "Is anyone there?"}).status_code == 200
    at = console("conversations")
    at.selectbox(key="conversations_assistant").select(assistant["id"]).run()
    next(b for b in at.button if "15557778803" in b.label).click().run()
    waiting = next(b for b in at.chat_message if b.text[0].value == "Is anyone there?")
    assert "not answered by the assistant: a person is handling this chat" in bubble_words(waiting)

    assert api.post(f"/api/contacts/{contact['id']}/reply", json={"text": "Yes, Sam here."}).status_code in (200, 201)
    at.run()
    waiting = next(b for b in at.chat_message if b.text[0].value == "Is anyone there?")
    assert "answered by a person" in bubble_words(waiting) and "paused" not in bubble_words(waiting)


def show_error_page(code: str, message: str, details: object) -> None:
    from console import ui
    from console.api import ApiError

    ui.show_error(ApiError(message, status=415, code=code, details=details))


def show_bubble_page(error: str) -> None:
    from console import ui
    from console.api import Message

    ui.chat_bubble(Message(id=1, direction="out", author="bot", text="We open at 10.", status="failed", error=error))


def test_refusals_and_failures_read_as_a_persons_words_with_the_detail_folded_away(stack, api):
    program = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(range(256)) * 4
    assistant = new_assistant(api, "Refusals")
    with Api(stack.url, api.headers["Authorization"].removeprefix("Bearer ")) as client:
        with pytest.raises(ApiError) as refused:
            client.upload_documents(assistant["id"], [("setup.exe.txt", program, "text/plain")])
    at = AppTest.from_function(show_error_page, args=(refused.value.code, refused.value.message, refused.value.details))
    at.run()
    assert not at.exception
    [error] = [rendered(e.value)[0] for e in at.error]
    assert error.startswith("setup.exe.txt is not a kind of file the assistant can read.")
    assert "application/" not in error
    assert at.expander[0].label == "Technical detail" and refused.value.message in at.code[0].value

    at = AppTest.from_function(show_bubble_page, args=("RetryLater: Ollama is unreachable (ConnectError)",))
    at.run()
    assert not at.exception
    [error] = at.error
    assert error.value == "Not sent: Ollama could not be reached."
    assert "RetryLater" in at.code[0].value  # the detail, folded away


@pytest.mark.parametrize(
    ("stored", "shown_as"),
    [
        # What the workers store: a reason code, then a sentence; the code is worded here.
        ("engine_unreachable: The answer engine could not be reached; retrying.",
         "Not sent: the model engine could not be reached; another attempt follows."),
        ("channel_busy: The channel reached its replies-per-minute limit.",
         "Not sent: the number reached its replies-per-minute limit."),
        ("worker_lost: The worker doing this stopped before it finished.",
         "Not sent: the worker doing this stopped before it finished."),
        # A code this console does not know yet: the backend's sentence, written for a person.
        ("quota_reached: The monthly message quota is used up.", "Not sent: The monthly message quota is used up."),
        # What a gateway or an older worker stored: an exception's words.
        ("GatewayUnreachable: WAHA did not answer at http://127.0.0.1:3000 (ConnectError)",
         "Not sent: WAHA (the WhatsApp gateway) could not be reached."),
        ("KeyError: 'provider_message_id'", "Not sent: something went wrong; the technical detail is below."),
    ],
)  # fmt: skip
def test_every_stored_failure_reads_as_a_sentence_with_the_stored_text_folded_away(stored, shown_as):
    at = AppTest.from_function(show_bubble_page, args=(stored,))
    at.run()
    assert not at.exception
    [error] = at.error
    assert rendered(error.value)[0] == shown_as
    assert at.expander[0].label == "Technical detail" and at.code[0].value == stored


def test_flashed_messages_end_each_sentence_once(console, api):
    assistant = new_assistant(api, "Bakery Inc.")
    at = select_assistant(console("assistants"), assistant)
    next(b for b in at.button if b.label == "Delete this assistant").click().run()
    next(b for b in at.button if b.label == "Yes, delete it").click().run()
    assert not at.exception
    assert any(s.value == "Deleted Bakery Inc." for s in at.success), [s.value for s in at.success]


def test_pulling_a_model_is_disabled_with_the_reason_when_ollama_is_unreachable(pg_url, tmp_path, monkeypatch):
    with backend_on_new_database(pg_url, tmp_path) as alone:  # nothing listens at its Ollama address
        monkeypatch.setenv("BACKEND_URL", alone.url)
        at = AppTest.from_file(APP, default_timeout=30)
        at.session_state["token"] = admin_token(alone.url)
        at.run()
        at.switch_page("views/assistants.py").run()
        assert not at.exception
        pull = next(b for b in at.button if b.label == "Pull model")
        assert pull.disabled and pull.help == "Ollama is not reachable, so no model can be pulled now."
        info = next(i.value for i in at.info if "Ollama is not reachable" in i.value)
        assert "ConnectError" not in info and "unreachable" not in info
