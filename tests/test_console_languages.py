"""Languages in the console (Streamlit's AppTest against a real backend on loopback): each contact's language shown and
set by an operator, and an assistant's languages, fixed texts and command words edited per language."""

from __future__ import annotations

from backend.services.texts import SHIPPED
from tests.fakes.console_stack import wait_for
from tests.test_console_pages import api, console, new_assistant, ollama, ready_channel, select_assistant, stack  # noqa: F401


def test_a_contacts_detected_language_is_shown_and_an_operator_sets_another(console, api):  # noqa: F811
    assistant = new_assistant(api, "Padaria", languages=["pt", "en"])
    channel = ready_channel(api, assistant["id"], "+5511000001111")
    sent = api.post(
        f"/api/channels/{channel['id']}/sandbox/messages", json={"from": "+5511977770001", "text": "oi, vcs abrem domingo?"}
    )
    assert sent.status_code == 200, sent.text

    def contact() -> dict:
        return api.get("/api/contacts", params={"assistant_id": assistant["id"]}).json()["items"][0]

    wait_for(lambda: contact()["language"] == "pt", timeout=60, what="the detected language")
    at = console("conversations")
    at.selectbox(key="conversations_assistant").select(assistant["id"]).run()
    next(b for b in at.button if "5511977770001" in b.label).click().run()
    assert any("Language: pt · Português (detected from their messages)" in c.value for c in at.caption)
    assert "· pt" in next(b for b in at.button if "5511977770001" in b.label).label

    at.selectbox(key=f"language-{contact()['id']}").select("es").run()
    assert not at.exception, [e.value for e in at.exception]
    assert (contact()["language"], contact()["language_source"]) == ("es", "operator")
    assert any("Language: es · Español (set by an operator)" in c.value for c in at.caption)

    at.selectbox(key=f"language-{contact()['id']}").select("").run()
    assert contact()["language_source"] is None


def test_an_assistants_languages_and_its_texts_per_language_are_edited(console, api):  # noqa: F811
    assistant = new_assistant(api, "Loja")
    at = select_assistant(console("assistants"), assistant)
    assert any("Automatic now: en · English." in c.value for c in at.caption)
    edit = next(f for f in at.form if f.key == f"edit-{assistant['id']}")
    edit.multiselect[0].set_value(["pt", "en"])
    edit.button[0].click()
    at.run()
    assert api.get(f"/api/assistants/{assistant['id']}").json()["served_languages"] == ["pt", "en"]

    # The texts editor, per language, with the shipped texts as placeholders.
    at.selectbox(key=f"texts-language-{assistant['id']}").select("pt").run()
    texts = next(f for f in at.form if f.key == f"texts-{assistant['id']}-pt")
    handoff = next(t for t in texts.text_area if t.key == f"text-{assistant['id']}-pt-handoff")
    assert handoff.value == "" and handoff.proto.placeholder == SHIPPED["handoff"]["pt"]
    handoff.set_value("Já chamo a Ana!")
    next(t for t in texts.text_input if t.key == f"words-{assistant['id']}-pt-handoff").set_value("quero o gerente, atendente")
    texts.button[0].click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    policies = api.get(f"/api/assistants/{assistant['id']}").json()["policies"]
    assert policies["texts"]["pt"] == {"handoff": "Já chamo a Ana!"}
    assert policies["words"]["pt"] == {"handoff": ["quero o gerente", "atendente"]}

    channel = ready_channel(api, assistant["id"], "+5511000002222")
    api.post(f"/api/channels/{channel['id']}/sandbox/messages", json={"from": "+5511977770002", "text": "quero o gerente"})

    def replies() -> list[str]:
        return [m["text"] for m in api.get(f"/api/channels/{channel['id']}/sandbox/outbox").json()["items"]]

    assert wait_for(replies, timeout=60, what="the handoff reply") == ["Já chamo a Ana!"]
