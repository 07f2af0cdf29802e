"""SECRET_KEY: too short a key stops the start with a clear message; a generated one is never readable by others."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from backend.lifecycle import ensure_secret_key
from backend.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_a_short_secret_key_is_refused_with_how_to_make_one():
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, secret_key="only-twenty-chars-ok")
    message = str(refused.value)
    assert "SECRET_KEY must be at least 32 characters (it has 20)" in message and "secrets.token_urlsafe" in message
    assert Settings(_env_file=None, secret_key="x" * 32).secret_key.get_secret_value() == "x" * 32
    assert Settings(_env_file=None, secret_key="").secret_key.get_secret_value() == ""  # empty: generated at start


def test_the_backend_does_not_start_with_a_short_secret_key(tmp_path: Path):
    env = {**os.environ, "SECRET_KEY": "short", "DATA_DIR": str(tmp_path), "PORT": "9"}
    started = subprocess.run([sys.executable, "-m", "backend"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert started.returncode != 0
    assert "SECRET_KEY must be at least 32 characters" in started.stderr


# Runs in a child process: an audit hook sees every file operation and notes the key file's mode
# at each one, so a moment when the key is readable by others shows up, however short.
WATCH_KEY_FILE = """
import json, os, stat, sys
from pathlib import Path
from backend.lifecycle import ensure_secret_key
from backend.settings import Settings

data = Path(sys.argv[1])
seen = []

def watch(event, args):
    if event in ("open", "os.chmod", "os.link", "os.rename", "os.remove") and data.exists():
        for path in data.iterdir():
            try:
                seen.append(stat.S_IMODE(path.lstat().st_mode))
            except FileNotFoundError:
                pass

os.umask(0o022)  # the usual umask: a plain open() makes 0644 files
sys.addaudithook(watch)
settings = Settings(_env_file=None, data_dir=data)
ensure_secret_key(settings)
print(json.dumps({"modes": seen, "key": settings.secret_key.get_secret_value()}))
"""


def test_a_generated_key_file_is_owner_only_from_its_first_byte(tmp_path: Path):
    data = tmp_path / "data"
    watched = subprocess.run(
        [sys.executable, "-c", WATCH_KEY_FILE, str(data)], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    report = json.loads(watched.stdout.splitlines()[-1])
    assert report["modes"], "no file operation on the key was seen"
    assert all(mode == 0o600 for mode in report["modes"]), [oct(mode) for mode in report["modes"]]
    key_file = data / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text() == report["key"] and len(report["key"]) >= 32
    assert [path.name for path in data.iterdir()] == ["secret_key"]  # no draft left behind


def test_the_key_file_survives_restarts_and_racing_starts_agree(tmp_path: Path):
    first, second = Settings(_env_file=None, data_dir=tmp_path), Settings(_env_file=None, data_dir=tmp_path)
    ensure_secret_key(first)
    ensure_secret_key(second)
    assert first.secret_key.get_secret_value() == second.secret_key.get_secret_value()
