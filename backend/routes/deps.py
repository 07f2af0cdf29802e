"""Things handlers take from the app: the database once it is ready, settings, clients."""

from __future__ import annotations

from databases import Database
from sanic import Request

from backend.errors import Unavailable
from backend.runtime import Runtime
from backend.security import Passwords
from backend.settings import Settings


def db_of(request: Request) -> Database:
    db = request.app.ctx.db
    if db is None:
        raise Unavailable(f"The backend is not ready yet ({request.app.ctx.not_ready_reason}).", code="not_ready")
    return db


def settings_of(request: Request) -> Settings:
    return request.app.ctx.settings


def runtime_of(request: Request) -> Runtime:
    db_of(request)  # the same "not ready" error before the runtime exists
    return request.app.ctx.runtime


def passwords_of(request: Request) -> Passwords:
    return request.app.ctx.passwords


def client_address(request: Request) -> str:
    """The caller's address: the one a trusted proxy or the console forwarded (PROXIES_COUNT,
    FORWARDED_SECRET), else the connecting one."""
    return request.remote_addr or request.ip
