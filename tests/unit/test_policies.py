"""Reading an assistant's stored reply policy: whatever an older or newer version wrote, never a failure."""

from __future__ import annotations

import json

import pytest

from backend.services.policies import ReplyPolicy, parse_policy

DEFAULTS = ReplyPolicy()


@pytest.mark.parametrize("stored", [None, {}, "{}", "null", "[]"])
def test_nothing_stored_gives_the_defaults(stored):
    assert parse_policy(stored) == DEFAULTS


def test_stored_values_are_read_from_a_dict_or_from_jsonb_text():
    stored = {"pause_minutes": 15, "handoff_words": ["human"], "grounding_guard": False}
    for form in (stored, json.dumps(stored)):
        policy = parse_policy(form)
        assert (policy.pause_minutes, policy.handoff_words, policy.grounding_guard) == (15, ["human"], False)


def test_an_unknown_key_is_ignored():
    policy = parse_policy({"pause_minutes": 15, "written_by_a_newer_version": True})
    assert policy.pause_minutes == 15 and policy == DEFAULTS.model_copy(update={"pause_minutes": 15})


def test_a_value_no_longer_valid_falls_back_to_its_default_and_keeps_the_others():
    policy = parse_policy('{"pause_minutes": 0, "burst_window_seconds": "soon", "history_turns": 3, "opt_out_words": [1, {}]}')
    assert policy.pause_minutes == DEFAULTS.pause_minutes  # must be >= 1
    assert policy.burst_window_seconds == DEFAULTS.burst_window_seconds
    assert policy.opt_out_words == DEFAULTS.opt_out_words
    assert policy.history_turns == 3


def test_the_api_still_refuses_an_unknown_key():
    # Tolerance is for what is already stored; a client sending a misspelt setting is told so.
    with pytest.raises(ValueError, match="extra"):
        ReplyPolicy(pause_minute=5)
