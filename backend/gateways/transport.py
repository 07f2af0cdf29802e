"""HTTP calls to a gateway: one timeout per try, retries with back-off, clear errors; media
downloads streamed under a size cap."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import structlog
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from backend.errors import GatewayError
from backend.gateways.errors import GatewayHttpError, GatewayUnreachable, MediaTooLarge, MediaUnavailable, RateLimited
from backend.metrics import GATEWAY_CALLS

__all__ = ["GatewayClient", "GatewayHttpError", "GatewayUnreachable"]

log = structlog.get_logger(__name__)

CHUNK_BYTES = 64 * 1024
# A provider's own reading of an error answer: (status, decoded body) → a more precise error, or None.
Classifier = Callable[[int, Any], GatewayHttpError | None]


def _retryable(idempotent: bool):
    def check(exc: BaseException) -> bool:
        if isinstance(exc, RateLimited):
            return True  # refused before it was accepted: safe to send again, even a message
        if isinstance(exc, GatewayHttpError):
            return idempotent and exc.http_status >= 500
        if isinstance(exc, aiohttp.ClientConnectorError):
            return True  # the request never left: always safe to try again
        return idempotent and isinstance(exc, (aiohttp.ClientError, asyncio.TimeoutError))

    return check


def _error_text(body: Any) -> str:
    """The human part of a provider's error body (WAHA, Evolution and Graph all nest it)."""
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


def _where(url: str) -> str:
    """A URL without its query (which may carry a key or a signed hash), for messages and logs."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class GatewayClient:
    """JSON over the shared aiohttp session, for one provider at one base URL.

    `name` is the provider as metrics label it (lower case: waha, evolution, cloud); `display_name`
    is how error messages name it."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        name: str,
        display_name: str,
        base_url: str,
        headers: dict[str, str],
        timeout: float,
        attempts: int,
        classify: Classifier | None = None,
    ) -> None:
        self.http = http
        self.name = name
        self.display_name = display_name
        self.base_url = base_url.rstrip("/")
        self.headers = headers
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.attempts = attempts
        self.classify = classify

    async def call(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        json_body: Any = None,
        params: dict[str, str] | None = None,
        idempotent: bool = True,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """The decoded JSON answer (None when empty). Not idempotent = retried only when the
        connection could not be opened or the provider said it refused it for now (rate limits),
        so a send is never repeated by us. `headers` are added to the client's for this call."""
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
                    result = await self._once(method, path, json_body, params, headers)
            outcome = "ok"
            return result
        except GatewayError:
            raise
        except TimeoutError as exc:
            raise GatewayUnreachable(
                f"{self.display_name} at {self.base_url} did not answer {operation} within {self.timeout.total:g} s."
            ) from exc
        except aiohttp.ClientError as exc:
            raise GatewayUnreachable(
                f"{self.display_name} at {self.base_url} is unreachable ({operation}): {type(exc).__name__}."
            ) from exc
        finally:
            GATEWAY_CALLS.labels(self.name, operation, outcome).observe(time.perf_counter() - started)

    async def _once(
        self, method: str, path: str, json_body: Any, params: dict[str, str] | None, headers: dict[str, str] | None
    ) -> Any:
        async with self.http.request(
            method,
            self.base_url + path,
            json=json_body,
            params=params,
            headers={**self.headers, **(headers or {})},
            timeout=self.timeout,
        ) as response:
            raw = await response.read()
            try:
                body = json.loads(raw) if raw.strip() else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            if response.status >= 400:
                log.warning("gateway.http_error", provider=self.name, path=path, status=response.status)
                classified = self.classify(response.status, body) if self.classify else None
                if classified is not None:
                    raise classified
                detail = _error_text(body)
                raise GatewayHttpError(
                    f"{self.display_name} answered {response.status} to {method} {path}" + (f": {detail}" if detail else "."),
                    http_status=response.status,
                    body=body,
                )
            return body

    async def download(
        self,
        url: str,
        *,
        operation: str,
        max_bytes: int,
        seconds: float,
        headers: dict[str, str] | None = None,
        method: str = "GET",
        json_body: Any = None,
    ) -> bytes:
        """The body at `url` (absolute, or a path under the base URL), read in chunks and abandoned
        as soon as it passes `max_bytes` (MediaTooLarge). One try: any other failure is a
        MediaUnavailable, which the caller retries later. `headers` replace the client's: a
        download may go to another host, which must not see the gateway's key."""
        target = url if urlsplit(url).scheme else self.base_url + url
        started = time.perf_counter()
        outcome = "error"
        try:
            async with self.http.request(
                method,
                target,
                headers=headers or {},
                json=json_body,
                timeout=aiohttp.ClientTimeout(total=seconds),
                allow_redirects=not headers,  # a redirect would carry the gateway's key to wherever it points
            ) as response:
                if response.status >= 300:
                    log.warning("gateway.media_http_error", provider=self.name, url=_where(target), status=response.status)
                    raise MediaUnavailable(
                        f"{self.display_name} answered {response.status} to the media download ({_where(target)}).",
                        http_status=response.status,
                    )
                declared = response.content_length
                if declared is not None and declared > max_bytes:
                    message = f"The media file is {declared} bytes, over the {max_bytes}-byte limit."
                    raise MediaTooLarge(message, max_bytes=max_bytes, size=declared)
                data = bytearray()
                async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                    data += chunk
                    if len(data) > max_bytes:
                        raise MediaTooLarge(
                            f"The media file is over the {max_bytes}-byte limit (stopped reading there).", max_bytes=max_bytes
                        )
            outcome = "ok"
            return bytes(data)
        except GatewayError:
            raise
        except TimeoutError as exc:
            raise MediaUnavailable(f"The media download from {self.display_name} took longer than {seconds:g} s.") from exc
        except aiohttp.ClientError as exc:
            raise MediaUnavailable(f"The media download from {self.display_name} failed: {type(exc).__name__}.") from exc
        finally:
            GATEWAY_CALLS.labels(self.name, operation, outcome).observe(time.perf_counter() - started)
