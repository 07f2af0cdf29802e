"""Password hashing (argon2) off the event loop and expiring, revocable operator tokens (JWT, HS256)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from backend.errors import TooManyRequests, Unauthorized

DEFAULT_ADMIN_PASSWORD = "admin-password"
PASSWORD_MIN_LENGTH = 8


class Passwords:
    """argon2 in its own small thread pool: it costs tens of milliseconds of CPU per check, so
    checks queue here instead of stalling health checks and webhooks on the event loop, and a
    flood of logins is refused once the queue is long."""

    def __init__(self, *, workers: int = 1, max_waiting: int = 32) -> None:
        self._hasher = PasswordHasher()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="argon2")
        self._max_waiting = max_waiting
        self._waiting = 0
        # Verifying against this keeps timing the same whether or not the email exists.
        self._dummy_hash = self._hasher.hash("not-a-real-password")

    async def _run(self, fn, *args):
        if self._waiting >= self._max_waiting:
            raise TooManyRequests("Too many logins at once; try again in a moment.", details={"retry_after_seconds": 5})
        self._waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        finally:
            self._waiting -= 1

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return await self._run(self._verify, password_hash, password)

    def _verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash or self._dummy_hash, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class TokenClaims:
    operator_id: int
    version: int


def issue_token(secret: str, *, operator_id: int, version: int, ttl_seconds: int) -> str:
    now = int(time.time())
    claims = {"sub": str(operator_id), "ver": version, "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, secret, algorithm="HS256")


def read_token(secret: str, token: str) -> TokenClaims:
    """The token's operator and version; whether they still hold is for the caller to check."""
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp", "sub", "ver"]})
        return TokenClaims(operator_id=int(claims["sub"]), version=int(claims["ver"]))
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("The token has expired; log in again.", code="token_expired") from exc
    except (jwt.InvalidTokenError, ValueError, TypeError) as exc:
        raise Unauthorized("The token is not valid.", code="invalid_token") from exc


def hmac_sha512_hex(key: str, body: bytes) -> str:
    return hmac.new(key.encode(), body, hashlib.sha512).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
