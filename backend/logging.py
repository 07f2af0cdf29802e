"""Structured logs: JSON in production, readable locally; request ids; secrets redacted."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

SECRET_KEYS = re.compile(r"pass(word)?|token|secret|api_?key|authorization|hmac|jwt|cookie", re.I)
# Tokens that can hide inside free text, e.g. an exception message quoting a header.
BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+")


def _redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key, value in list(event.items()):
        if SECRET_KEYS.search(key):
            event[key] = "[redacted]"
        elif isinstance(value, str):
            event[key] = BEARER.sub(r"\1[redacted]", value)
    return event


def configure_logging(level: str = "INFO", fmt: str = "console") -> None:
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Libraries that log through the standard library keep their lines short and in level.
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    for noisy in ("sanic.access", "httpx", "httpcore", "asyncio", "sentence_transformers", "alembic", "databases"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
