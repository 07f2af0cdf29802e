"""The console's "Needs a person" inbox through Streamlit's AppTest, against a real backend on loopback
(the fixtures and helpers of test_console_pages: the backend in a subprocess, the sandbox gateway)."""

from __future__ import annotations

from tests.fakes.console_stack import wait_for
from tests.test_console_pages import api, console, new_assistant, ollama, ready_channel, shown, stack  # noqa: F401 - fixtures


def test_a_customer_asking_for_a_person_is_counted_and_listed_until_someone_answers(console, api):  # noqa: F811
    assistant = new_assistant(api, "Front desk", policies={"burst_window_seconds": 0})
    channel = ready_channel(api, assistant["id"], "+15550008800")
    at = console("inbox")
    assert "Nobody is waiting for a person" in shown(at)

    sent = api.post(
        f"/api/channels/{channel['id']}/sandbox/messages", json={"from": "+15557778801", "text": "I want a real person"}
    )
    assert sent.status_code == 200, sent.text
    wait_for(lambda: api.get("/api/inbox").json()["total"] == 1, timeout=20, what="the handoff in the inbox")

    at.run()
    assert not at.exception, [e.value for e in at.exception]
    # The count the navigation shows, from the same call, is in the page's title too.
    assert [t.value for t in at.title] == ["Needs a person (1)"]
    page = shown(at)
    assert "+15557778801" in page and "Asked to talk to a person" in page and "waiting" in page
    assert "1 customer waits for a person, the longest waiting first" in page

    # The overview counts it as unanswered.
    at.switch_page("views/overview.py").run()
    assert next(m for m in at.metric if m.label == "Unanswered").value == "1"

    # Open the thread from the inbox, answer it there: it leaves the inbox.
    at.switch_page("views/inbox.py").run()
    [waiting] = api.get("/api/inbox").json()["items"]
    contact_id = waiting["contact"]["id"]
    at.button(key=f"open-{contact_id}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Conversations"]
    assert at.chat_message[0].text[0].value == "I want a real person"
    # AppTest's next run goes back to the page last named by `switch_page`; a browser stays here.
    at.switch_page("views/conversations.py").run()
    assert at.chat_message[0].text[0].value == "I want a real person"
    reply = next(f for f in at.form if f.key == "reply")
    reply.text_area[0].set_value("Hi, this is Sam. How can I help?")
    reply.button[0].click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(s.value.startswith("Reply") for s in at.success)
    at.switch_page("views/inbox.py").run()
    assert [t.value for t in at.title] == ["Needs a person"]
    assert "Nobody is waiting for a person" in shown(at) and "+15557778801" not in shown(at)
