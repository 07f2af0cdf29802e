"""Knowledge gaps: weakly answered customer questions, grouped by meaning, most frequent first."""

from __future__ import annotations

import pytest

from backend.database import execute, fetchval
from tests.fakes.ollama import fake_ollama_server  # noqa: F401


async def add_exchange(db, channel: int, contact: int, question: str, trace: dict, *, degraded: bool = False) -> None:
    inbound = await fetchval(
        db,
        """
        INSERT INTO messages (channel_id, contact_id, direction, author, provider_message_id, text, status)
        VALUES ($1, $2, 'in', 'customer', gen_random_uuid()::text, $3, 'answered') RETURNING id
        """,
        channel,
        contact,
        question,
    )
    await execute(
        db,
        """
        INSERT INTO messages (channel_id, contact_id, direction, author, text, status, trace, degraded, reply_to_id,
                              used_fallback, ungrounded, top_score)
        VALUES ($1, $2, 'out', 'bot', 'reply', 'sent', $3, $4, $5, $6, $7, $8)
        """,
        channel,
        contact,
        trace,
        degraded,
        inbound,
        trace.get("used_fallback", False),
        trace.get("ungrounded", False),
        trace.get("top_score"),
    )


@pytest.fixture
async def conversation(backend, api):
    """(assistant id, database, channel id, contact id) for an assistant with one channel."""
    assistant = (await api.post("/api/assistants", json={"name": "Shop"})).json()["id"]
    db = backend.app.ctx.db
    channel = await fetchval(
        db,
        """
        INSERT INTO channels (assistant_id, provider, session_name, webhook_secret)
        VALUES ($1, 'sandbox', 's1', 'x') RETURNING id
        """,
        assistant,
    )
    contact = await fetchval(db, "INSERT INTO contacts (channel_id, chat_id) VALUES ($1, '123@c.us') RETURNING id", channel)
    return assistant, db, channel, contact


async def test_unanswered_questions_are_grouped_most_frequent_first(api, conversation):
    assistant, db, channel, contact = conversation
    fallback = {"used_fallback": True, "top_score": 0.1}
    for question in ["Do you deliver to Spain?", "Can you ship to Spain?", "Is delivery to Spain possible?"]:
        await add_exchange(db, channel, contact, question, fallback)
    await add_exchange(db, channel, contact, "Do you sell gift cards?", {"used_fallback": False, "top_score": 0.12})
    await add_exchange(db, channel, contact, "When do you open?", {"used_fallback": False, "top_score": 0.8})

    body = (await api.get(f"/api/assistants/{assistant}/gaps")).json()
    assert body["questions"] == 4
    spain, cards = body["items"]
    assert spain["count"] == 3 and "Spain" in spain["question"] and spain["fallback_count"] == 3
    assert sorted(spain["examples"]) == ["Can you ship to Spain?", "Do you deliver to Spain?", "Is delivery to Spain possible?"]
    assert cards["count"] == 1 and cards["question"] == "Do you sell gift cards?" and cards["best_score"] == 0.12


async def test_no_gaps_for_a_new_assistant_and_bad_queries_are_refused(api, conversation):
    assistant, *_ = conversation
    assert (await api.get(f"/api/assistants/{assistant}/gaps")).json() == {"items": [], "questions": 0, "min_score": 0.2}
    assert (await api.get(f"/api/assistants/{assistant}/gaps", params={"days": 0})).status_code == 400
    assert (await api.get("/api/assistants/98765/gaps")).status_code == 404


async def test_degraded_and_invented_fact_answers_count_as_gaps(api, conversation):
    assistant, db, channel, contact = conversation
    await add_exchange(db, channel, contact, "Do you open on Easter Monday?", {"top_score": 0.7}, degraded=True)
    await add_exchange(db, channel, contact, "How much is a wedding cake?", {"top_score": 0.6, "ungrounded": True})
    await add_exchange(db, channel, contact, "When do you open?", {"top_score": 0.8})
    body = (await api.get(f"/api/assistants/{assistant}/gaps")).json()
    assert sorted(g["question"] for g in body["items"]) == ["Do you open on Easter Monday?", "How much is a wedding cake?"]


async def test_answering_a_gap_saves_an_faq_named_after_its_question_and_the_gap_leaves_the_list(api, conversation):
    assistant, db, channel, contact = conversation
    for question in ["What are your opening hours?", "Do you sell gift cards?"]:
        await add_exchange(db, channel, contact, question, {"used_fallback": True, "top_score": 0.1})
    gaps = (await api.get(f"/api/assistants/{assistant}/gaps")).json()["items"]
    hours = next(g for g in gaps if g["question"] == "What are your opening hours?")

    body = {"question": hours["question"], "answer": "Monday to Friday, 9 to 5.", "message_ids": hours["message_ids"]}
    saved = await api.post(f"/api/assistants/{assistant}/gaps/answer", json=body)
    assert saved.status_code == 201, saved.text
    assert saved.json()["filename"] == "faq-what-are-your-opening-hours.md" and saved.json()["status"] == "ready"
    assert saved.json()["questions_answered"] == 1
    left = (await api.get(f"/api/assistants/{assistant}/gaps")).json()["items"]
    assert [g["question"] for g in left] == ["Do you sell gift cards?"]

    # Deleting the FAQ opens the gap again: nothing answers it any more.
    assert (await api.delete(f"/api/assistants/{assistant}/documents/{saved.json()['id']}")).status_code in (200, 204)
    reopened = (await api.get(f"/api/assistants/{assistant}/gaps")).json()["items"]
    assert sorted(g["question"] for g in reopened) == ["Do you sell gift cards?", "What are your opening hours?"]


async def test_faq_names_stay_readable_and_unique_per_assistant(api, conversation):
    assistant, *_ = conversation
    other = (await api.post("/api/assistants", json={"name": "Other shop"})).json()["id"]

    async def faq_name(assistant_id: int, question: str, answer: str) -> str:
        response = await api.post(f"/api/assistants/{assistant_id}/faq", json={"question": question, "answer": answer})
        assert response.status_code == 201, response.text
        return response.json()["filename"]

    assert await faq_name(assistant, "What are your opening hours??", "9 to 5.") == "faq-what-are-your-opening-hours.md"
    # The same question with another answer gets a name of its own; another assistant's names do not count.
    assert await faq_name(assistant, "What are your opening hours?", "10 to 6.") == "faq-what-are-your-opening-hours-2.md"
    assert await faq_name(other, "What are your opening hours?", "9 to 5.") == "faq-what-are-your-opening-hours.md"
    assert await faq_name(assistant, "¿Cuándo abrís los días de fiesta?", "Nunca.") == "faq-cuando-abris-los-dias-de-fiesta.md"
    assert await faq_name(assistant, "../../etc/passwd <script>", "No.") == "faq-etc-passwd-script.md"
    long_name = await faq_name(assistant, "Can I " + "really " * 20 + "return it?", "Yes.")
    assert long_name.startswith("faq-can-i-really-") and long_name.endswith("really.md") and len(long_name) <= 67


async def test_a_gap_answer_needs_a_question_and_an_answer(api, conversation):
    assistant, *_ = conversation
    refused = await api.post(f"/api/assistants/{assistant}/gaps/answer", json={"question": "Hours?", "answer": " "})
    assert refused.status_code == 400
    assert (await api.get(f"/api/assistants/{assistant}/documents")).json()["items"] == []
