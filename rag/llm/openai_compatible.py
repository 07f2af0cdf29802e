"""The OpenAI-compatible engine: any server speaking OpenAI's chat API, over the official `openai` client.

vLLM, llama.cpp's server, LM Studio, LocalAI and hosted APIs all serve `/v1/chat/completions` and
`/v1/models`. Such a server refuses a prompt longer than its window instead of cutting it, so
the context budget is a setting (`context_tokens`) the prompt is sized against.

Failures leave as `LLMUnavailable` with the code `openai_unreachable`, `timeout`,
`model_not_found`, `openai_auth` or `openai_error`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import openai

from rag.errors import LLMUnavailable
from rag.llm import ChatResult

T = TypeVar("T")


def _translate(exc: openai.OpenAIError, model: str) -> LLMUnavailable:
    if isinstance(exc, openai.APITimeoutError):  # a subclass of APIConnectionError: first
        return LLMUnavailable("The OpenAI-compatible server did not answer in time.", code="timeout")
    if isinstance(exc, openai.APIConnectionError):
        return LLMUnavailable("The OpenAI-compatible server is unreachable.", code="openai_unreachable")
    if isinstance(exc, openai.NotFoundError):
        return LLMUnavailable(f"The OpenAI-compatible server has no model '{model}'.", code="model_not_found")
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return LLMUnavailable("The OpenAI-compatible server refused the API key (OPENAI_API_KEY).", code="openai_auth")
    if isinstance(exc, openai.APIStatusError):
        return LLMUnavailable(
            f"The OpenAI-compatible server answered with an error (status {exc.status_code}).", code="openai_error"
        )
    return LLMUnavailable(f"The OpenAI-compatible server failed ({type(exc).__name__}).", code="openai_error")


class OpenAICompatibleLLM:
    """One client per process. The client retries connection errors, 408, 409, 429 and 5xx with back-off."""

    engine = "openai"

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str = "",
        timeout: float = 120.0,
        retries: int = 2,
        context_tokens: int = 8192,
        on_call: Callable[[str, str, float], None] | None = None,
    ) -> None:
        self.base_url = base_url
        self.context_tokens = context_tokens
        self.on_call = on_call  # (operation, outcome, seconds)
        # Local servers need no key, but the client insists on one.
        self.client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key or "not-needed", timeout=timeout, max_retries=retries)

    async def _call(self, operation: str, model: str, make_call: Callable[[], Awaitable[T]]) -> T:
        started = time.perf_counter()
        outcome = "ok"
        try:
            return await make_call()
        except openai.OpenAIError as exc:
            error = _translate(exc, model)
            outcome = error.code
            raise error from exc
        finally:
            if self.on_call is not None:
                self.on_call(operation, outcome, time.perf_counter() - started)

    async def context_length(self, model: str) -> int | None:
        return self.context_tokens

    async def chat(
        self, model: str, messages: list[dict[str, str]], *, temperature: float, max_tokens: int, num_ctx: int
    ) -> ChatResult:
        started = time.perf_counter()
        response = await self._call(
            "chat",
            model,
            lambda: self.client.chat.completions.create(
                model=model, messages=messages, temperature=temperature, max_tokens=max_tokens, stream=False
            ),
        )
        choice = response.choices[0] if response.choices else None
        usage = response.usage
        return ChatResult(
            text=(choice.message.content if choice else None) or "",
            model=response.model or model,
            engine=self.engine,
            prompt_eval_count=usage.prompt_tokens if usage else None,
            eval_count=usage.completion_tokens if usage else None,
            done_reason=choice.finish_reason if choice else None,
            total_ms=round((time.perf_counter() - started) * 1000, 1),
        )

    async def list_models(self) -> list[dict[str, Any]]:
        async def listed() -> list[dict[str, Any]]:
            return [{"name": m.id, "owned_by": getattr(m, "owned_by", None)} async for m in self.client.models.list()]

        return await self._call("models", "", listed)

    async def close(self) -> None:
        await self.client.close()
