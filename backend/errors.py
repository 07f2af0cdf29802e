"""One exception hierarchy for the domain, mapped once to the JSON error shape."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    status = 500
    code = "internal"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code:
            self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class Invalid(AppError):
    status = 400
    code = "invalid"


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"


class Forbidden(AppError):
    status = 403
    code = "forbidden"


class NotFound(AppError):
    status = 404
    code = "not_found"


class Conflict(AppError):
    status = 409
    code = "conflict"


class TooLarge(AppError):
    status = 413
    code = "too_large"


class Unsupported(AppError):
    status = 415
    code = "unsupported_media_type"


class Unprocessable(AppError):
    """Well-formed but refused on what it would cost us (a document too costly to read)."""

    status = 422
    code = "unprocessable"


class TooManyRequests(AppError):
    status = 429
    code = "too_many_requests"


class Unavailable(AppError):
    status = 503
    code = "unavailable"


class GatewayError(AppError):
    """A WhatsApp gateway refused or failed a call."""

    status = 502
    code = "gateway_error"
