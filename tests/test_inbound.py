"""Ingest: each inbound message stored once, with the reason it will or won't be answered."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from backend.database import make_database, rows
from backend.gateways.base import InboundMessage, MessageAck
from backend.runtime import Runtime
from backend.services.inbound import ingest_inbound, record_ack
from backend.store.channels import find_channel_for_webhook, webhook_channel_reader


@pytest.fixture
async def rt(settings):
    db = make_database(settings.database_url)
    await db.connect()
    yield Runtime(settings=settings, db=db, http=None, database_url=settings.database_url)
    await db.disconnect()


async def make_channel(db, *, policies: dict | None = None, connected_at: datetime | None = None) -> dict:
    assistant_id = await db.fetch_val(
        "INSERT INTO assistants (name, model, settings) VALUES ('Shop', 'llama3.2', :settings) RETURNING id",
        {"settings": {"burst_window_seconds": 0, **(policies or {})}},
    )
    channel_id = await db.fetch_val(
        """
        INSERT INTO channels (assistant_id, provider, session_name, status, webhook_secret, connected_at)
        VALUES (:a, 'sandbox', :name, 'ready', 'secret', :connected_at) RETURNING id
        """,
        {"a": assistant_id, "name": f"s{assistant_id}", "connected_at": connected_at or datetime.now(UTC)},
    )
    return await find_channel_for_webhook(webhook_channel_reader(db), channel_id)  # what a webhook works with


def text(message_id: str, body: str = "What are your opening hours?", **fields) -> InboundMessage:
    values = {"chat_id": "15550001@c.us", "sender_id": "15550001@c.us", "timestamp": datetime.now(UTC), "text": body}
    return InboundMessage(provider_message_id=message_id, **{**values, **fields})


async def thread(db) -> list[dict]:
    return rows(await db.fetch_all("SELECT direction, author, text, status, reason FROM messages ORDER BY id"))


async def reply_jobs(db) -> list[dict]:
    return rows(await db.fetch_all("SELECT payload, serial_key, status FROM jobs WHERE kind = 'reply' ORDER BY id"))


async def test_a_message_delivered_three_times_is_stored_once_with_one_reply_job(rt):
    channel = await make_channel(rt.db)
    outcomes = [await ingest_inbound(rt, channel, text("m1"), request_id="req-1") for _ in range(3)]
    assert outcomes == ["stored", "duplicate", "duplicate"]
    assert await thread(rt.db) == [
        {"direction": "in", "author": "customer", "text": "What are your opening hours?", "status": "pending", "reason": None}
    ]
    jobs = await reply_jobs(rt.db)
    assert len(jobs) == 1 and jobs[0]["payload"]["request_id"] == "req-1"


async def test_a_burst_shares_one_queued_reply_job(rt):
    channel = await make_channel(rt.db)
    for i in range(3):
        assert await ingest_inbound(rt, channel, text(f"m{i}", f"part {i}")) == "stored"
    assert len(await reply_jobs(rt.db)) == 1
    other = await ingest_inbound(rt, channel, text("x", chat_id="15550002@c.us", sender_id="15550002@c.us"))
    assert other == "stored" and len(await reply_jobs(rt.db)) == 2


async def test_concurrent_webhooks_are_each_stored_once_and_committed_together(rt):
    """Many customers writing at once, every message delivered twice: each stored exactly once, one
    reply job per customer; the inserts shared commits (group commit)."""
    channel = await make_channel(rt.db)
    customers = [f"1555000{c}@c.us" for c in range(3)]
    messages = [text(f"{chat}-{i}", f"question {i}", chat_id=chat, sender_id=chat) for i in range(10) for chat in customers]
    outcomes = await asyncio.gather(*(ingest_inbound(rt, channel, m) for m in messages + messages))
    assert sorted(outcomes) == ["duplicate"] * 30 + ["stored"] * 30
    stored = rows(
        await rt.db.fetch_all(
            "SELECT c.chat_id, m.text, m.xmin::text AS tx FROM messages m JOIN contacts c ON c.id = m.contact_id ORDER BY m.id"
        )
    )
    for chat in customers:
        assert sorted(m["text"] for m in stored if m["chat_id"] == chat) == sorted(f"question {i}" for i in range(10))
    assert len(await reply_jobs(rt.db)) == 3
    assert len({m["tx"] for m in stored}) < len(stored)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"is_group": True, "chat_id": "1203@g.us"}, "group"),
        ({"is_broadcast": True, "chat_id": "status@broadcast"}, "broadcast"),
        ({"timestamp": datetime.now(UTC) - timedelta(hours=1)}, "before_connection"),
        ({"text": "", "has_media": False}, "empty"),
        ({"from_me": True, "sent_by_api": True}, "own_echo"),
    ],
)
async def test_messages_that_are_never_answered_say_why(rt, fields, reason):
    channel = await make_channel(rt.db)
    assert await ingest_inbound(rt, channel, text("m1", **fields)) == f"ignored:{reason}"
    assert await reply_jobs(rt.db) == []


async def test_owner_typing_on_the_phone_takes_the_contact_over_until_resumed(rt):
    channel = await make_channel(rt.db)
    assert await ingest_inbound(rt, channel, text("m1")) == "stored"
    assert await ingest_inbound(rt, channel, text("o1", "I'll help you myself", from_me=True)) == "ignored:owner_reply"
    contact = await rt.db.fetch_one("SELECT paused_until, paused_by FROM contacts")
    assert contact["paused_by"] == "owner" and contact["paused_until"] > datetime.now(UTC)
    assert await ingest_inbound(rt, channel, text("m2", "thanks")) == "ignored:paused"
    assert await ingest_inbound(rt, channel, text("o2", "#bot", from_me=True)) == "ignored:resume_command"
    assert await ingest_inbound(rt, channel, text("m3", "one more question")) == "stored"
    statuses = [(m["author"], m["status"], m["reason"]) for m in await thread(rt.db)]
    assert statuses == [
        ("customer", "pending", None),
        ("owner", "sent", "owner_reply"),
        ("customer", "ignored", "paused"),
        ("owner", "sent", "resume_command"),
        ("customer", "pending", None),
    ]


async def test_echo_of_our_own_reply_does_not_pause_the_contact(rt):
    channel = await make_channel(rt.db)
    await ingest_inbound(rt, channel, text("m1"))
    contact_id = await rt.db.fetch_val("SELECT id FROM contacts")
    await rt.db.execute(
        "INSERT INTO messages (channel_id, contact_id, direction, author, text, status, idempotency_key) "
        "VALUES (:c, :k, 'out', 'bot', 'We open at 9.', 'sending', 'reply:1:0')",
        {"c": channel.id, "k": contact_id},
    )
    # The echo arrives before the send returned its provider id: matched by text.
    assert await ingest_inbound(rt, channel, text("true_1", "We open at 9.", from_me=True)) == "ignored:own_echo"
    assert (await rt.db.fetch_one("SELECT paused_until FROM contacts"))["paused_until"] is None


async def test_opt_out_is_permanent_until_an_opt_in_word(rt):
    channel = await make_channel(rt.db)
    assert await ingest_inbound(rt, channel, text("m1", "STOP!")) == "stored"  # answered with the confirmation
    assert (await rt.db.fetch_one("SELECT opted_out_at FROM contacts"))["opted_out_at"] is not None
    assert await ingest_inbound(rt, channel, text("m2", "hello?")) == "ignored:opted_out"
    assert await ingest_inbound(rt, channel, text("m3", "please don't stop")) == "ignored:opted_out"
    assert await ingest_inbound(rt, channel, text("m4", "start")) == "stored"
    assert (await rt.db.fetch_one("SELECT opted_out_at FROM contacts"))["opted_out_at"] is None
    reasons = [m["reason"] for m in await thread(rt.db)]
    assert reasons == ["opt_out", "opted_out", "opted_out", "opt_in"]


async def test_asking_for_a_person_pauses_the_bot_and_media_without_text_is_answered(rt):
    channel = await make_channel(rt.db, policies={"handoff_words": ["talk to a human"]})
    assert await ingest_inbound(rt, channel, text("m0", "", has_media=True, media_type="image")) == "stored"
    assert await ingest_inbound(rt, channel, text("m1", "Can I talk to a human, please?")) == "stored"
    contact = await rt.db.fetch_one("SELECT paused_by FROM contacts")
    assert contact["paused_by"] == "customer"
    assert [m["reason"] for m in await thread(rt.db)] == ["media_without_text", "handoff_request"]


async def test_delivery_acks_only_move_forward(rt):
    channel = await make_channel(rt.db)
    await ingest_inbound(rt, channel, text("m1"))
    contact_id = await rt.db.fetch_val("SELECT id FROM contacts")
    await rt.db.execute(
        "INSERT INTO messages (channel_id, contact_id, direction, author, text, status, provider_message_id) "
        "VALUES (:c, :k, 'out', 'bot', 'hi', 'sent', 'p1')",
        {"c": channel.id, "k": contact_id},
    )
    for status in ("read", "delivered"):
        await record_ack(rt, channel, MessageAck(provider_message_id="p1", status=status))
    assert await rt.db.fetch_val("SELECT status FROM messages WHERE provider_message_id = 'p1'") == "read"


async def test_a_waiting_reply_quotes_the_message_it_answers_once_the_customer_wrote_again(rt):
    from backend.store.messages import waiting_outbound

    channel = await make_channel(rt.db, policies={"burst_window_seconds": 60})
    assert await ingest_inbound(rt, channel, text("m1", "Do you deliver?")) == "stored"
    first = await rt.db.fetch_one("SELECT contact_id, id FROM messages WHERE provider_message_id = 'm1'")
    contact_id, first_id = first["contact_id"], first["id"]
    await rt.db.execute(
        """
        INSERT INTO messages (channel_id, contact_id, direction, author, idempotency_key, text, status, reply_to_id)
        VALUES (:ch, :c, 'out', 'bot', :key, 'Yes, every day.', 'pending', :m)
        """,
        {"ch": channel.id, "c": contact_id, "key": f"reply:{first_id}:0", "m": first_id},
    )
    [waiting] = await waiting_outbound(rt.db, contact_id)
    assert waiting.quote_id is None  # answering the latest message: no quote needed
    assert await ingest_inbound(rt, channel, text("m2", "And on Sundays?")) == "stored"
    [waiting] = await waiting_outbound(rt.db, contact_id)
    assert waiting.quote_id == "m1"
