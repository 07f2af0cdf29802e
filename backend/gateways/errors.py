"""How a gateway call can fail, for the caller to decide: retry later, or stop and tell a person.

All are `GatewayError`s (HTTP 502 when they reach the API). `retryable(exc)` says whether trying
the same call again later can help; a reply worker backs off on those and gives up on the others.
"""

from __future__ import annotations

from typing import Any

from backend.errors import GatewayError


class GatewayHttpError(GatewayError):
    """The gateway answered with an error status (kept in `.http_status`)."""

    def __init__(self, message: str, *, http_status: int, body: Any = None, code: str = "gateway_error") -> None:
        super().__init__(message, code=code, details={"http_status": http_status})
        self.http_status = http_status
        self.body = body

    @property
    def retryable(self) -> bool:
        return self.http_status >= 500 or self.http_status in (408, 429)


class GatewayUnreachable(GatewayError):
    """No answer from the gateway: refused, reset or timed out."""

    retryable = True

    def __init__(self, message: str) -> None:
        super().__init__(message, code="gateway_unreachable")


class WindowClosed(GatewayHttpError):
    """The Cloud API refused a free-form message: the customer last wrote more than 24 hours ago
    (Meta error 131047). Only an approved template may be sent now, so retrying cannot help."""

    status = 409  # an operator's manual reply gets a clear refusal, not "bad gateway"
    retryable = False

    def __init__(self, message: str, *, http_status: int = 400, body: Any = None) -> None:
        super().__init__(message, http_status=http_status, body=body, code="window_closed")


class RateLimited(GatewayHttpError):
    """Too many messages for now (Meta 130429 throughput, 131056 per-pair): the message was not
    accepted, so sending it again after `retry_after` seconds is safe."""

    retryable = True

    def __init__(self, message: str, *, http_status: int = 429, body: Any = None, retry_after: float | None = None) -> None:
        super().__init__(message, http_status=http_status, body=body, code="rate_limited")
        self.retry_after = retry_after


class TokenInvalid(GatewayHttpError):
    """The provider refused the channel's credentials (Meta error 190: expired or revoked token)."""

    retryable = False

    def __init__(self, message: str, *, http_status: int = 401, body: Any = None) -> None:
        super().__init__(message, http_status=http_status, body=body, code="token_invalid")


class NotSupported(GatewayError):
    """This gateway cannot do that at all (e.g. a pairing code on the Cloud API)."""

    status = 400
    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message, code="not_supported")


class MediaTooLarge(GatewayError):
    """A media file is bigger than the limit; the download stopped at the limit."""

    retryable = False

    def __init__(self, message: str, *, max_bytes: int, size: int | None = None) -> None:
        super().__init__(message, code="media_too_large", details={"max_bytes": max_bytes, "size": size})
        self.max_bytes = max_bytes
        self.size = size


class MediaUnavailable(GatewayError):
    """A media download failed (gateway down, file not ready, link expired): worth another try later."""

    retryable = True

    def __init__(self, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message, code="media_unavailable", details={"http_status": http_status})
        self.http_status = http_status


def retryable(exc: BaseException) -> bool:
    """Whether the same gateway call may succeed later (unreachable, 5xx, rate limits, media not ready)."""
    flag = getattr(exc, "retryable", None)
    if isinstance(flag, bool):
        return flag
    return isinstance(exc, GatewayError)  # a refusal we cannot classify: the caller's back-off bounds it
