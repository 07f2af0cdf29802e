"""What a stranger controls never reaches a browser as something it runs, nor a secret an operator's screen."""

from __future__ import annotations

import base64
import hashlib
import tomllib
from pathlib import Path

import pytest

from backend.gateways.base import MediaRef, safe_mimetype
from backend.gateways.cloud import _sha256_matches
from backend.services.feedback import is_reaction_emoji
from backend.services.operators import client_key, first_admin_password_problem, password_problem
from backend.services.status import shown_url
from backend.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("kind", "declared", "stored"),
    [
        ("voice", "audio/ogg; codecs=opus", "audio/ogg; codecs=opus"),
        ("voice", "text/html", "application/octet-stream"),
        ("audio", "TEXT/HTML; charset=utf-8", "application/octet-stream"),
        ("image", "image/svg+xml", "application/octet-stream"),
        ("image", "image/jpeg", "image/jpeg"),
        ("sticker", "image/webp", "image/webp"),
        ("video", "text/html", "application/octet-stream"),
        ("video", "video/mp4", "video/mp4"),
        ("document", "application/pdf", "application/pdf"),
        ("document", "text/html", "application/octet-stream"),
        ("image", "audio/ogg", "application/octet-stream"),  # a type of another kind
        ("voice", None, None),
    ],
)
def test_a_declared_mimetype_is_kept_only_when_it_belongs_to_the_kind(kind, declared, stored):
    assert safe_mimetype(kind, declared) == stored
    assert MediaRef(kind=kind, handle="x", mimetype=declared).mimetype == stored


@pytest.mark.parametrize("emoji", ["👍", "👍🏽", "❤️", "👨\u200d👩\u200d👧", "🇧🇷", "👎"])
def test_real_reactions_are_emoji(emoji):
    assert is_reaction_emoji(emoji)


@pytest.mark.parametrize(
    "text", ["**bold**", "![x](http://attacker.example/p.png)", "<b>hi</b>", "[link](https://x.example)", "a", "👍" * 17, " "]
)
def test_a_reaction_that_is_not_a_short_emoji_is_refused(text):
    assert not is_reaction_emoji(text)


@pytest.mark.parametrize(
    ("configured", "shown"),
    [
        ("http://user:secret@ollama.internal:11434/?token=abc#x", "http://ollama.internal:11434/"),
        ("https://waha.example.com/api?key=k", "https://waha.example.com/api"),
        ("http://[::1]:3000", "http://[::1]:3000"),
        ("http://host:99999", "(not a valid URL)"),
    ],
)
def test_configured_urls_are_shown_without_credentials(configured, shown):
    assert shown_url(configured) == shown


def test_the_console_takes_no_larger_upload_than_the_backend():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == Settings.model_fields["max_upload_mb"].default
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("console:"):
            assert "--server.maxUploadSize ${MAX_UPLOAD_MB:-20}" in line


@pytest.mark.parametrize(
    ("ip", "client"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),  # the same line: one client
        ("[2001:db8:1:2:cccc::9]", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("unknown", "unknown"),
    ],
)
def test_the_login_throttle_counts_an_ipv6_client_by_its_64(ip, client):
    assert client_key(ip) == client


@pytest.mark.parametrize(
    ("password", "refused"), [("short", True), ("password", True), ("12345678", True), ("a-long-secret", False)]
)
def test_the_first_admin_password_follows_the_rule_of_every_password(password, refused):
    settings = Settings(_env_file=None, admin_password=password)
    assert (first_admin_password_problem(settings) is not None) == refused
    assert (password_problem(password) is not None) == refused


def test_a_media_hash_that_cannot_be_read_does_not_vouch_for_the_file():
    data = b"OggS voice"
    assert _sha256_matches(data, hashlib.sha256(data).hexdigest())
    assert _sha256_matches(data, base64.b64encode(hashlib.sha256(data).digest()).decode())
    assert not _sha256_matches(data, "not a hash at all!")
