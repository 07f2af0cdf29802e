"""HTTP calls to a gateway: one timeout per try, retries with back-off, clear errors."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import structlog
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from backend.errors import GatewayError
from backend.metrics import GATEWAY_CALLS

log = structlog.get_logger(__name__)


class GatewayHttpError(GatewayError):
    """The gateway answered with an error status (kept in `.http_status`)."""

    def __init__(self, message: str, *, http_status: int, body: Any = None) -> None:
        super().__init__(message, code="gateway_error", details={"http_status": http_status})
        self.http_status = http_status
        self.body = body


class GatewayUnreachable(GatewayError):
    """No answer from the gateway: refused, reset or timed out."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="gateway_unreachable")


def _retryable(idempotent: bool):  # noqa: ANN202
    def check(exc: BaseException) -> bool:
        if isinstance(exc, GatewayHttpError):
            return idempotent and exc.http_status >= 500
        if isinstance(exc, aiohttp.ClientConnectorError):
            return True  # the request never left: always safe to try again
        return idempotent and isinstance(exc, (aiohttp.ClientError, asyncio.TimeoutError))

    return check


def _error_text(body: Any) -> str:
    """The human part of a provider's error body (WAHA and Evolution both nest it)."""
    if isinstance(body, dict):
        for key in ("message", "error", "response"):
            value = body.get(key)
            if isinstance(value, dict):
                return _error_text(value)
            if isinstance(value, list) and value:
                return "; ".join(str(item) for item in value)
            if value and value is not True:
                return str(value)
    return str(body)[:300] if body else ""


class GatewayClient:
    """JSON over the shared aiohttp session, for one provider at one base URL."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        provider: str,
        base_url: str,
        headers: dict[str, str],
        timeout: float,
        attempts: int,
    ) -> None:
        self.http = http
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.headers = headers
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.attempts = attempts

    async def call(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        json_body: Any = None,
        params: dict[str, str] | None = None,
        idempotent: bool = True,
    ) -> Any:
        """The decoded JSON answer (None when empty). Not idempotent = retried only when the
        connection could not be opened, so a send is never repeated by us."""
        started = time.perf_counter()
        outcome = "error"
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.attempts),
                wait=wait_exponential(multiplier=0.2, max=3),
                retry=retry_if_exception(_retryable(idempotent)),
                reraise=True,
            ):
                with attempt:
                    result = await self._once(method, path, json_body, params)
            outcome = "ok"
            return result
        except GatewayError:
            raise
        except TimeoutError as exc:
            raise GatewayUnreachable(
                f"{self.provider} at {self.base_url} did not answer {operation} within {self.timeout.total:g} s."
            ) from exc
        except aiohttp.ClientError as exc:
            raise GatewayUnreachable(
                f"{self.provider} at {self.base_url} is unreachable ({operation}): {type(exc).__name__}."
            ) from exc
        finally:
            GATEWAY_CALLS.labels(self.provider, operation, outcome).observe(time.perf_counter() - started)

    async def _once(self, method: str, path: str, json_body: Any, params: dict[str, str] | None) -> Any:
        async with self.http.request(
            method,
            self.base_url + path,
            json=json_body,
            params=params,
            headers=self.headers,
            timeout=self.timeout,
        ) as response:
            raw = await response.read()
            try:
                body = json.loads(raw) if raw.strip() else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            if response.status >= 400:
                log.warning("gateway.http_error", provider=self.provider, path=path, status=response.status)
                detail = _error_text(body)
                raise GatewayHttpError(
                    f"{self.provider} answered {response.status} to {method} {path}" + (f": {detail}" if detail else "."),
                    http_status=response.status,
                    body=body,
                )
            return body
