"""The console's settings, read from the environment in this one place."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REQUEST_TIMEOUT_SECONDS = 30.0
# A playground answer waits for the model (the backend's OLLAMA_TIMEOUT_SECONDS is 120 by default).
GENERATE_TIMEOUT_SECONDS = 180.0
# QR pairing is watched this often, and for this long; then the operator restarts it by hand.
PAIRING_POLL_SECONDS = 2.0
PAIRING_WATCH_SECONDS = 180.0
# After a message is sent from the sandbox chat, its thread is refreshed for this long.
REPLY_WATCH_SECONDS = 60.0
# Documents being indexed are refreshed this often.
INDEXING_POLL_SECONDS = 2.0
# The backend refuses shorter passwords; the console says so before asking it.
PASSWORD_MIN_LENGTH = 8


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    backend_url: str = Field(default="http://127.0.0.1:8000", description="Where the console reaches the backend")
    forwarded_secret: SecretStr = Field(
        default=SecretStr(""), description="Shared with the backend: proves the operator's address the console forwards"
    )
    console_proxies_count: int = Field(
        default=0, ge=0, le=10, description="Proxies in front of the console that append X-Forwarded-For (Render: 1); 0 = none"
    )


def console_settings() -> ConsoleSettings:
    """Read on every run: cheap, and a changed environment needs no restart."""
    return ConsoleSettings()
