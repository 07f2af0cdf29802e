"""The Ollama engine, over the official `ollama.AsyncClient`: chat, model limits, model list, pulls.

Failures leave as `LLMUnavailable` with the code `ollama_unreachable`, `timeout`,
`model_not_found` or `ollama_error`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import ollama
import structlog
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from rag.errors import LLMUnavailable
from rag.llm import ChatResult

log = structlog.get_logger(__name__)
# After Ollama was found unreachable, answers skip it for this long: an address that does not
# answer would otherwise cost every reply the connect timeout.
UNREACHABLE_PAUSE_SECONDS = 15.0


def ollama_model_name(model: str) -> str:
    """The name as Ollama lists it: "llama3.2" is pulled and listed as "llama3.2:latest" (the default tag).
    The one home of this rule (the console, which cannot import `rag`, keeps a copy that names it)."""
    return model if ":" in model else f"{model}:latest"


def _translate(exc: BaseException, model: str) -> LLMUnavailable:
    if isinstance(exc, LLMUnavailable):
        return exc
    if isinstance(exc, ollama.ResponseError):
        if exc.status_code == 404:
            return LLMUnavailable(
                f"Model '{model}' is not available in Ollama ({exc.error}); pull it first.", code="model_not_found"
            )
        return LLMUnavailable(f"Ollama answered with an error: {exc.error} (status {exc.status_code}).", code="ollama_error")
    if isinstance(exc, httpx.TimeoutException):
        return LLMUnavailable("Ollama did not answer in time.", code="timeout")
    return LLMUnavailable(f"Ollama is unreachable ({type(exc).__name__}).", code="ollama_unreachable")


def _retryable(exc: BaseException) -> bool:
    # Busy (503 queue full, 429) or a dropped connection may pass; a missing model or a timeout will not.
    if isinstance(exc, ollama.ResponseError):
        return exc.status_code in (429, 502, 503)
    return isinstance(exc, (ConnectionError, httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError))


class OllamaLLM:
    """One client per process; `timeout` bounds each call, retries back off briefly."""

    engine = "ollama"

    def __init__(
        self,
        host: str,
        timeout: float = 120.0,
        *,
        retries: int = 2,
        keep_alive: str = "10m",
        on_call: Callable[[str, str, float], None] | None = None,
    ) -> None:
        self.host = host
        self.on_call = on_call  # (operation, outcome, seconds), e.g. a metrics histogram
        self.timeout = timeout
        self.retries = retries
        self.keep_alive = keep_alive
        self.client = ollama.AsyncClient(host=host, timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)))
        self._context_lengths: dict[str, int | None] = {}
        self._unreachable_until = 0.0

    async def _call(self, operation: str, model: str, make_call) -> Any:
        if operation in ("chat", "show") and time.monotonic() < self._unreachable_until:
            raise LLMUnavailable("Ollama was unreachable moments ago.", code="ollama_unreachable")
        started = time.perf_counter()
        outcome = "ok"
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.retries + 1),
                wait=wait_exponential(multiplier=0.2, max=2),
                retry=retry_if_exception(_retryable),
                reraise=True,
            ):
                with attempt:
                    return await make_call()
        except (ollama.ResponseError, ConnectionError, httpx.TransportError) as exc:
            error = _translate(exc, model)
            outcome = error.code
            if error.code == "ollama_unreachable":
                self._unreachable_until = time.monotonic() + UNREACHABLE_PAUSE_SECONDS
            raise error from exc
        finally:
            if self.on_call is not None:
                self.on_call(operation, outcome, time.perf_counter() - started)

    async def chat(
        self, model: str, messages: list[dict[str, str]], *, temperature: float, max_tokens: int, num_ctx: int
    ) -> ChatResult:
        started = time.perf_counter()
        options = {"temperature": temperature, "num_ctx": num_ctx, "num_predict": max_tokens}
        response = await self._call(
            "chat",
            model,
            lambda: self.client.chat(model=model, messages=messages, options=options, keep_alive=self.keep_alive, stream=False),
        )
        return ChatResult(
            text=response.message.content or "",
            model=response.model or model,
            engine=self.engine,
            prompt_eval_count=response.prompt_eval_count,
            eval_count=response.eval_count,
            done_reason=response.done_reason,
            total_ms=round((time.perf_counter() - started) * 1000, 1),
        )

    async def context_length(self, model: str) -> int | None:
        """The model's trained context (`<arch>.context_length` from /api/show), cached per model."""
        if model not in self._context_lengths:
            shown = await self._call("show", model, lambda: self.client.show(model))
            info = shown.modelinfo or {}
            arch = info.get("general.architecture")
            value = info.get(f"{arch}.context_length") if arch else None
            if value is None:
                value = next((v for k, v in info.items() if k.endswith(".context_length")), None)
            self._context_lengths[model] = int(value) if value else None
        return self._context_lengths[model]

    async def list_models(self) -> list[dict[str, Any]]:
        listed = await self._call("tags", "", lambda: self.client.list())
        return [
            {
                "name": m.model,
                "size": m.size,
                "digest": m.digest,
                "modified_at": m.modified_at.isoformat() if m.modified_at else None,
                "family": m.details.family if m.details else None,
                "parameter_size": m.details.parameter_size if m.details else None,
                "quantization_level": m.details.quantization_level if m.details else None,
            }
            for m in listed.models
        ]

    async def pull(self, model: str) -> AsyncIterator[dict[str, Any]]:
        """Progress lines of a pull: {status, digest, total, completed}."""
        try:
            async for part in await self.client.pull(model, stream=True):
                yield {"status": part.status, "digest": part.digest, "total": part.total, "completed": part.completed}
        except (ollama.ResponseError, ConnectionError, httpx.TransportError) as exc:
            raise _translate(exc, model) from exc

    async def version(self) -> str:
        """GET /api/version (the client has no method for it), through the client's own HTTP session."""
        try:
            response = await self.client._client.get("/api/version")
            response.raise_for_status()
            return response.json().get("version", "")
        except (httpx.HTTPError, ValueError) as exc:
            raise _translate(exc, "") from exc

    async def close(self) -> None:
        await self.client.close()
