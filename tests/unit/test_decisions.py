"""Whether a customer's message is answered, and why not: every branch of the one rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backend.gateways.base import InboundMessage
from backend.services.decisions import USUAL, ContactState, Decision, decide
from backend.services.policies import ReplyPolicy

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CONNECTED = NOW - timedelta(days=1)
POLICY = ReplyPolicy()


def message(text: str = "When do you open?", **fields) -> InboundMessage:
    values = {"provider_message_id": "m1", "chat_id": "1@c.us", "sender_id": "1@c.us", "text": text, "timestamp": NOW}
    return InboundMessage(**{**values, **fields})


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, Decision("pending")),
        ({"is_group": True}, Decision("ignored", "group")),
        ({"is_broadcast": True}, Decision("ignored", "broadcast")),
        ({"text": "STOP!"}, Decision("pending", "opt_out")),
        ({"text": "don't stop"}, Decision("pending")),
        ({"text": "Can I talk to a person?"}, Decision("pending", "handoff_request")),
        ({"text": "", "has_media": True}, Decision("pending", "media_without_text")),
        ({"text": "   "}, Decision("ignored", "empty")),
        ({"timestamp": CONNECTED - timedelta(minutes=5)}, Decision("ignored", "before_connection")),
    ],
)
def test_a_usual_contacts_message(fields, expected):
    assert decide(POLICY, CONNECTED, USUAL, message(**fields)) == expected


def test_a_message_in_the_same_second_as_the_connection_is_not_backlog():
    connected = NOW.replace(microsecond=700_000)
    assert decide(POLICY, connected, USUAL, message(timestamp=NOW)).answered


def test_groups_and_broadcasts_are_answered_when_the_policy_says_so():
    policy = ReplyPolicy(ignore_groups=False, ignore_broadcasts=False)
    assert decide(policy, CONNECTED, USUAL, message(is_group=True)).answered
    assert decide(policy, CONNECTED, USUAL, message(is_broadcast=True)).answered


def test_an_opted_out_contact_is_answered_only_by_an_opt_in_word():
    opted_out = ContactState(opted_out=True)
    assert decide(POLICY, CONNECTED, opted_out, message()) == Decision("ignored", "opted_out")
    assert decide(POLICY, CONNECTED, opted_out, message("stop")) == Decision("ignored", "opted_out")
    assert decide(POLICY, CONNECTED, opted_out, message("START")) == Decision("pending", "opt_in")


def test_a_paused_contact_is_not_answered_but_can_still_opt_out():
    paused = ContactState(paused=True)
    assert decide(POLICY, CONNECTED, paused, message()) == Decision("ignored", "paused")
    assert decide(POLICY, CONNECTED, paused, message("I want a person")) == Decision("ignored", "paused")
    assert decide(POLICY, CONNECTED, paused, message("unsubscribe")) == Decision("pending", "opt_out")


def test_contact_state_from_its_row():
    assert ContactState.of(None, None, NOW).usual
    assert ContactState.of(None, NOW - timedelta(seconds=1), NOW).usual  # a pause that ended
    assert ContactState.of(None, NOW + timedelta(minutes=5), NOW) == ContactState(paused=True)
    assert ContactState.of(NOW, None, NOW) == ContactState(opted_out=True)


def test_only_commands_change_the_contact():
    assert [reason for reason in ("opt_out", "opt_in", "handoff_request") if Decision("pending", reason).changes_contact] == [
        "opt_out",
        "opt_in",
        "handoff_request",
    ]
    assert not Decision("pending", "media_without_text").changes_contact and not Decision("pending").changes_contact
