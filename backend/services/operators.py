"""Operators: the bootstrapped admin and logging in."""

from __future__ import annotations

import structlog
from databases import Database

from backend.errors import TooManyRequests, Unauthorized
from backend.security import hash_password, issue_token, verify_password
from backend.settings import Settings
from backend.store import operators as store

log = structlog.get_logger(__name__)


async def bootstrap_admin(db: Database, settings: Settings) -> None:
    """Create the first admin from ADMIN_EMAIL/ADMIN_PASSWORD unless that account exists."""
    created = await store.insert_operator_if_absent(
        db, settings.admin_email, hash_password(settings.admin_password.get_secret_value()), "admin"
    )
    if created:
        log.info("operators.admin_created", email=settings.admin_email)


async def create_operator(db: Database, email: str, password: str, role: str = "operator") -> bool:
    return await store.insert_operator_if_absent(db, email, hash_password(password), role)


async def login(db: Database, settings: Settings, *, email: str, password: str, ip: str) -> str:
    failures = await store.count_recent_failures(db, email, ip, settings.login_window_seconds)
    if failures >= settings.login_max_failures:
        raise TooManyRequests(
            "Too many failed logins; wait a few minutes and try again.",
            details={"retry_after_seconds": settings.login_window_seconds},
        )
    operator = await store.find_operator_by_email(db, email)
    ok = verify_password(operator["password_hash"] if operator else None, password)
    await store.record_login_attempt(db, email, ip, ok)
    if not ok:
        log.info("auth.login_failed", email=email)
        raise Unauthorized("Wrong email or password.", code="bad_credentials")
    log.info("auth.login", operator=operator["id"])
    return issue_token(
        settings.secret_key.get_secret_value(),
        operator_id=operator["id"],
        role=operator["role"],
        ttl_seconds=settings.token_ttl_minutes * 60,
    )
