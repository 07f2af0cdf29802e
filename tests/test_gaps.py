"""Knowledge gaps: weakly answered customer questions, grouped by meaning, most frequent first."""

from __future__ import annotations

import pytest

from tests.fakes.ollama import fake_ollama_server  # noqa: F401


async def add_exchange(db, channel: int, contact: int, question: str, trace: dict, *, degraded: bool = False) -> None:
    inbound = await db.fetch_val(
        """
        INSERT INTO messages (channel_id, contact_id, direction, author, provider_message_id, text, status)
        VALUES (:ch, :c, 'in', 'customer', gen_random_uuid()::text, :text, 'answered') RETURNING id
        """,
        {"ch": channel, "c": contact, "text": question},
    )
    await db.execute(
        """
        INSERT INTO messages (channel_id, contact_id, direction, author, text, status, trace, degraded, reply_to_id)
        VALUES (:ch, :c, 'out', 'bot', 'reply', 'sent', :trace, :degraded, :reply_to)
        """,
        {"ch": channel, "c": contact, "trace": trace, "reply_to": inbound, "degraded": degraded},
    )


@pytest.fixture
async def conversation(backend, api):
    """(assistant id, database, channel id, contact id) for an assistant with one channel."""
    assistant = (await api.post("/api/assistants", json={"name": "Shop"})).json()["id"]
    db = backend.app.ctx.db
    channel = await db.fetch_val(
        """
        INSERT INTO channels (assistant_id, provider, session_name, webhook_secret)
        VALUES (:a, 'sandbox', 's1', 'x') RETURNING id
        """,
        {"a": assistant},
    )
    contact = await db.fetch_val(
        "INSERT INTO contacts (channel_id, chat_id) VALUES (:ch, '123@c.us') RETURNING id", {"ch": channel}
    )
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
