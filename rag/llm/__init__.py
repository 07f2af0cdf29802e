"""Language models behind one interface, one module per engine.

- `ollama`: an Ollama server over its official client (model list, pulls, num_ctx guard);
- `openai_compatible`: any server speaking OpenAI's chat API (vLLM, llama.cpp's server, LM Studio,
  LocalAI, hosted APIs) over the official `openai` client;
- `embedded`: llama.cpp in this process (llama-cpp-python) running a GGUF file.

Every failure leaves as `rag.errors.LLMUnavailable` with a code the caller can act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

ENGINES = ("ollama", "openai", "embedded")


@dataclass(frozen=True)
class ChatResult:
    text: str
    model: str
    engine: str
    prompt_eval_count: int | None  # prompt tokens as the engine counted them
    eval_count: int | None  # tokens generated
    done_reason: str | None  # "stop", "length", ...
    total_ms: float


class LLM(Protocol):
    """What answering needs of an engine."""

    engine: str

    async def context_length(self, model: str) -> int | None:
        """The most tokens (prompt + answer) one call may use, or None when the engine cannot tell."""
        ...

    async def chat(
        self, model: str, messages: list[dict[str, str]], *, temperature: float, max_tokens: int, num_ctx: int
    ) -> ChatResult: ...

    async def list_models(self) -> list[dict[str, Any]]: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class EngineChoice:
    """One engine and the model to ask of it; answering tries a list of these in order."""

    llm: LLM
    model: str
    demo: bool = False  # the bundled demo model (SmolLM2-135M): `auto` answers quote the documents instead of asking it

    @property
    def engine(self) -> str:
        return self.llm.engine
