"""Password hashing (argon2) and expiring signed operator tokens (JWT, HS256)."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from backend.errors import Unauthorized

_hasher = PasswordHasher()
# Verifying against this keeps timing the same whether or not the email exists.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def issue_token(secret: str, *, operator_id: int, role: str, ttl_seconds: int) -> str:
    now = int(time.time())
    claims = {"sub": str(operator_id), "role": role, "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, secret, algorithm="HS256")


def read_token(secret: str, token: str) -> dict[str, Any]:
    try:
        return jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("The token has expired; log in again.", code="token_expired") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthorized("The token is not valid.", code="invalid_token") from exc


def hmac_sha512_hex(key: str, body: bytes) -> str:
    return hmac.new(key.encode(), body, hashlib.sha512).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
