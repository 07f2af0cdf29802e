"""The reply pipeline end to end: webhook → stored → reply job → gateway, once and in order."""

from __future__ import annotations

import pytest

from tests.conftest import make_settings
from tests.e2e_support import eventually
from tests.fakes.ollama import fake_ollama  # noqa: F401 - fixture
from tests.job_support import jobs_settled
from tests.sandbox_chat import make_sandbox, outbox, write


@pytest.fixture
def settings(database_url, tmp_path, fake_ollama):  # noqa: F811
    """The backend with an instant fake Ollama for both chat and embeddings."""
    # One vector for every text: each stored passage is "relevant", so the model is always asked.
    same = fake_ollama.vector("any text")
    fake_ollama.vector = lambda text: same
    return make_settings(database_url, tmp_path / "data", **fake_ollama.backend_settings())


async def contact_of(api, channel_id: int) -> dict:
    items = (await api.get("/api/contacts", params={"channel_id": channel_id})).json()["items"]
    assert len(items) == 1
    return items[0]


async def thread_of(api, contact_id: int) -> list[dict]:
    return (await api.get(f"/api/contacts/{contact_id}/messages", params={"limit": 500})).json()["items"]


async def test_duplicate_webhook_three_times_is_answered_once(api, backend):
    _, channel_id = await make_sandbox(api)
    outcomes = [await write(api, channel_id, "What are your opening hours?", message_id="wamid-1") for _ in range(3)]
    assert outcomes == ["stored", "duplicate", "duplicate"]
    sent = await eventually(lambda: outbox(api, channel_id))
    await jobs_settled(backend.app.ctx.db)  # no reply job left that could send a second one
    assert len(await outbox(api, channel_id)) == 1
    contact = await contact_of(api, channel_id)
    thread = await thread_of(api, contact["id"])
    inbound, reply = thread
    assert inbound["status"] == "answered" and inbound["direction"] == "in"
    assert reply["author"] == "bot" and reply["status"] == "sent" and reply["text"] == sent[0]["text"]
    # No documents yet: the assistant's fallback, recorded for the knowledge-gaps page.
    assert reply["trace"]["used_fallback"] is True and reply["degraded"] is False
    assert reply["reply_to_id"] == inbound["id"] and reply["latency_ms"] is not None
    assert contact["owner"] == "bot" and contact["last_message"]["author"] == "bot"


@pytest.mark.parametrize("words", [["human"]])
async def test_customer_asking_for_a_person_gets_the_handoff_reply_and_the_bot_stays_quiet(api, backend, words):
    _, channel_id = await make_sandbox(api, handoff_words=words, handoff_reply="A colleague will answer soon.")
    await write(api, channel_id, "I want a human")
    await eventually(lambda: outbox(api, channel_id))
    assert await write(api, channel_id, "hello?") == "ignored:paused"
    await jobs_settled(backend.app.ctx.db)
    assert [m["text"] for m in await outbox(api, channel_id)] == ["A colleague will answer soon."]
    contact = await contact_of(api, channel_id)
    assert contact["owner"] == "human" and contact["paused_by"] == "customer"


async def test_operator_pause_reply_and_resume(api):
    _, channel_id = await make_sandbox(api)
    await write(api, channel_id, "first question")
    await eventually(lambda: outbox(api, channel_id))
    contact = await contact_of(api, channel_id)

    paused = await api.post(f"/api/contacts/{contact['id']}/pause", json={"minutes": 30})
    assert paused.status_code == 200 and paused.json()["owner"] == "human"
    assert await write(api, channel_id, "are you there?") == "ignored:paused"

    reply = await api.post(f"/api/contacts/{contact['id']}/reply", json={"text": "Hi, Ana from the shop here."})
    assert reply.status_code == 201, reply.text
    assert reply.json()["author"] == "operator" and reply.json()["status"] == "sent"
    texts = [m["text"] for m in await outbox(api, channel_id)]
    assert len(texts) == 2 and texts[-1] == "Hi, Ana from the shop here."

    resumed = await api.post(f"/api/contacts/{contact['id']}/resume")
    assert resumed.status_code == 200 and resumed.json()["owner"] == "bot"
    assert await write(api, channel_id, "one more thing") == "stored"
    await eventually(lambda: _count(api, channel_id, 3))
    authors = [(m["author"], m["status"]) for m in await thread_of(api, contact["id"])]
    assert authors == [
        ("customer", "answered"),
        ("bot", "sent"),
        ("customer", "ignored"),
        ("operator", "sent"),
        ("customer", "answered"),
        ("bot", "sent"),
    ]


async def _count(api, channel_id: int, n: int) -> bool:
    return len(await outbox(api, channel_id)) >= n


async def test_opt_out_is_confirmed_then_nothing_is_sent_not_even_by_an_operator(api):
    _, channel_id = await make_sandbox(api)
    await write(api, channel_id, "STOP")
    sent = await eventually(lambda: outbox(api, channel_id))
    assert "won't get more messages" in sent[0]["text"]
    assert await write(api, channel_id, "what's the price?") == "ignored:opted_out"
    contact = await contact_of(api, channel_id)
    assert contact["opted_out"] is True and contact["opted_out_at"]
    refused = await api.post(f"/api/contacts/{contact['id']}/reply", json={"text": "hello"})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "opted_out"


async def test_a_burst_is_answered_together_with_one_reply(api, backend):
    _, channel_id = await make_sandbox(api, burst_window_seconds=1.0)
    for text in ("hi", "I ordered a lamp", "where is it?"):
        assert await write(api, channel_id, text) == "stored"
    await eventually(lambda: outbox(api, channel_id))
    await jobs_settled(backend.app.ctx.db)
    assert len(await outbox(api, channel_id)) == 1
    contact = await contact_of(api, channel_id)
    thread = await thread_of(api, contact["id"])
    assert [m["status"] for m in thread] == ["answered", "answered", "answered", "sent"]
    assert thread[-1]["trace"]["question"] == "hi\nI ordered a lamp\nwhere is it?"


async def test_rate_limit_stops_a_two_bot_loop(api):
    _, channel_id = await make_sandbox(api, max_replies_per_contact_per_minute=3)
    # Another bot answers every reply of ours at once.
    for turn in range(8):
        await write(api, channel_id, f"Auto-reply number {turn}: thanks for your message!")
        await eventually(lambda t=turn: _settled(api, channel_id, t + 1))
    assert len(await outbox(api, channel_id)) == 3
    contact = await contact_of(api, channel_id)
    reasons = [m["reason"] for m in await thread_of(api, contact["id"]) if m["direction"] == "in"]
    assert reasons.count("rate_limited") == 5


async def _settled(api, channel_id: int, inbound: int) -> bool:
    contact = await contact_of(api, channel_id)
    thread = await thread_of(api, contact["id"])
    done = [m for m in thread if m["direction"] == "in" and m["status"] != "pending"]
    waiting = [m for m in thread if m["direction"] == "out" and m["status"] in ("pending", "sending")]
    return len(done) == inbound and not waiting


async def test_contacts_filters_and_stats(api):
    assistant_id, channel_id = await make_sandbox(api)
    await write(api, channel_id, "hello", sender="+15550001")
    await write(api, channel_id, "hi", sender="+15550002")
    await eventually(lambda: _count(api, channel_id, 2))
    contacts = (await api.get("/api/contacts", params={"assistant_id": assistant_id})).json()
    assert contacts["total"] == 2
    found = (await api.get("/api/contacts", params={"q": "5550002"})).json()
    assert [c["phone_number"] for c in found["items"]] == ["+15550002"]
    assert (await api.get("/api/contacts", params={"status": "unanswered"})).json()["total"] == 0
    stats = (await api.get("/api/stats", params={"assistant_id": assistant_id, "days": 7})).json()
    assert stats["inbound"] == 2 and stats["outbound"] == 2 and stats["failed"] == 0
    assert stats["per_day"][0]["inbound"] == 2 and stats["median_latency_ms"] is not None
    assert stats["degraded"] == 0


async def test_ollama_down_still_sends_a_degraded_reply(api, fake_ollama):  # noqa: F811
    assistant_id, channel_id = await make_sandbox(api)
    upload = await api.post(
        f"/api/assistants/{assistant_id}/documents",
        files={"files": ("hours.txt", b"Opening hours. The shop opens at 9 and closes at 18, Monday to Saturday.")},
    )
    assert upload.status_code == 201, upload.text

    async def indexed() -> bool:
        items = (await api.get(f"/api/assistants/{assistant_id}/documents")).json()["items"]
        return items[0]["status"] == "ready"

    await eventually(indexed)
    fake_ollama.fail_status = 503
    await write(api, channel_id, "When does the shop open?")
    sent = await eventually(lambda: outbox(api, channel_id))
    assert "9" in sent[0]["text"]
    contact = await contact_of(api, channel_id)
    reply = (await thread_of(api, contact["id"]))[-1]
    assert reply["degraded"] is True and reply["trace"]["degraded_reason"] and reply["sources"]
    stats = (await api.get("/api/stats", params={"assistant_id": assistant_id})).json()
    assert stats["degraded"] == 1


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("get", "/api/contacts?status=lost", None, 400),
        ("get", "/api/contacts/999999/messages", None, 404),
        ("post", "/api/contacts/999999/pause", {}, 404),
        ("post", "/api/contacts/999999/reply", {"text": "hi"}, 404),
        ("get", "/api/stats?days=0", None, 400),
    ],
)
async def test_bad_requests_get_clear_errors(api, method, path, body, status):
    response = await getattr(api, method)(path, **({"json": body} if body is not None else {}))
    assert response.status_code == status and response.json()["error"]["code"]


async def test_empty_operator_reply_is_refused(api):
    _, channel_id = await make_sandbox(api)
    await write(api, channel_id, "hello")
    contact = await contact_of(api, channel_id)
    response = await api.post(f"/api/contacts/{contact['id']}/reply", json={"text": ""})
    assert response.status_code == 400
    pause = await api.post(f"/api/contacts/{contact['id']}/pause", json={"minutes": -1})
    assert pause.status_code == 400


async def _with_document(api, assistant_id: int) -> None:
    upload = await api.post(
        f"/api/assistants/{assistant_id}/documents",
        files={"files": ("shipping.txt", b"Shipping. We ship to every country in Europe within five days.")},
    )
    assert upload.status_code == 201, upload.text

    async def indexed() -> bool:
        items = (await api.get(f"/api/assistants/{assistant_id}/documents")).json()["items"]
        return items[0]["status"] == "ready"

    await eventually(indexed)


async def test_a_message_during_generation_makes_the_draft_stale_and_the_latest_state_is_answered(
    api,
    backend,
    fake_ollama,  # noqa: F811
):
    assistant_id, channel_id = await make_sandbox(api)
    await _with_document(api, assistant_id)
    fake_ollama.chat_delay = 1.0
    await write(api, channel_id, "Do you ship abroad?")
    await eventually(lambda: _asked(fake_ollama, 1))  # the model is writing the first draft
    await write(api, channel_id, "To Norway, I mean")
    await eventually(lambda: outbox(api, channel_id))
    await jobs_settled(backend.app.ctx.db)
    assert len(await outbox(api, channel_id)) == 1
    assert len(fake_ollama.requests_to("/api/chat")) == 2  # the first draft was made, then dropped
    contact = await contact_of(api, channel_id)
    thread = await thread_of(api, contact["id"])
    assert [(m["direction"], m["status"]) for m in thread] == [("in", "answered"), ("in", "answered"), ("out", "sent")]
    assert thread[-1]["trace"]["question"] == "Do you ship abroad?\nTo Norway, I mean"
    assert thread[-1]["sources"] and thread[-1]["reply_to_id"] == thread[1]["id"]


async def _asked(fake, n: int) -> bool:
    return len(fake.requests_to("/api/chat")) >= n
