"""Reply jobs: answer a contact's pending messages and send the reply through the gateway."""

from __future__ import annotations

HANDLERS: dict = {}
