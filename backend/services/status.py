"""What the operator needs to know is up: the database, Ollama and its models, each gateway, the queue.

Every probe is short and bounded; a dependency that is down is reported, never raised.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import ollama
import structlog
from databases import Database
from pydantic import BaseModel

from backend import metrics
from backend.database import current_revision, head_revision
from backend.settings import Settings
from backend.store import golden as golden_store
from backend.store import jobs as jobs_store
from backend.store import status as status_store
from backend.store.assistants import assistant_models
from rag.errors import LLMUnavailable
from rag.llm.ollama import ollama_model_name

log = structlog.get_logger(__name__)

PROBE_TIMEOUT_SECONDS = 3.0


def shown_url(url: str) -> str:
    """A configured URL as operators may see it: without a user and password in it, a query or a fragment
    (`http://user:key@host/?token=…` is how some set credentials)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:  # a malformed URL: the probe says so; its text may still hold a secret
        return "(not a valid URL)"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


GATEWAYS = ("sandbox", "waha", "evolution")


class DatabaseStatus(BaseModel):
    ok: bool
    kind: Literal["embedded", "external"]
    revision: str | None = None
    latency_ms: float | None = None
    error: str | None = None


class OllamaStatus(BaseModel):
    ok: bool
    host: str
    reachable: bool
    model: str  # OLLAMA_MODEL, the default for new assistants
    models_required: list[str]  # OLLAMA_MODEL plus every model an assistant uses
    models_missing: list[str]  # required but not pulled: answers are degraded until pulled
    models_available: list[str]
    latency_ms: float | None = None
    error: str | None = None


class EmbeddedStatus(BaseModel):
    ok: bool  # the model file is there and, if it was loaded, loaded without error
    model: str
    path: str | None
    file_present: bool
    loaded: bool  # loaded on first use: False until the first answer it gives
    bundled_demo_model: bool  # the bundled SmolLM2-135M: fine for trying, weak for customers
    error: str | None = None


class OpenAIStatus(BaseModel):
    configured: bool  # OPENAI_BASE_URL is set
    ok: bool
    base_url: str | None
    model: str | None
    models_available: list[str] = []
    latency_ms: float | None = None
    error: str | None = None


class EnginesStatus(BaseModel):
    provider: str  # LLM_PROVIDER: the engine of assistants that choose none
    answering: str | None  # which engine answers those assistants now (None: none can, replies are degraded)
    embedded: EmbeddedStatus
    openai: OpenAIStatus


class GatewayStatus(BaseModel):
    provider: str
    url: str | None  # None for the built-in sandbox
    configured: bool  # the default provider, given an API key, or used by a channel
    ok: bool
    reachable: bool
    latency_ms: float | None = None
    error: str | None = None
    channels: dict[str, int]  # channels of this provider by status (pending_qr, ready, disconnected)


class QueueStatus(BaseModel):
    queued: int
    running: int
    failed: int
    oldest_queued_age_seconds: float


class WorkersStatus(BaseModel):
    in_process: bool  # RUN_WORKERS: the backend works on jobs itself
    concurrency: int


class ModelStatus(BaseModel):
    name: str  # embedder, speech, language_detector, embedded_llm
    model: str
    ok: bool  # loaded (at start, or when it was first used): False = what needs it is degraded, see `error`
    seconds: float | None = None  # how long loading it took at start
    error: str | None = None


class Status(BaseModel):
    status: Literal["ok", "degraded"]
    database: DatabaseStatus
    ollama: OllamaStatus
    engines: EnginesStatus
    gateways: list[GatewayStatus]
    queue: QueueStatus | None
    workers: WorkersStatus
    max_upload_mb: int  # MAX_UPLOAD_MB: the console's uploader refuses larger files before sending them
    uptime_seconds: float
    models: list[ModelStatus] = []  # loaded at start (LOAD_MODELS_AT_START), each with the reason it failed


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return f"no answer within {PROBE_TIMEOUT_SECONDS:g} s"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


async def database_status(settings: Settings, db: Database | None, not_ready_reason: str | None) -> DatabaseStatus:
    kind = "external" if settings.database_url else "embedded"
    if db is None:
        return DatabaseStatus(ok=False, kind=kind, error=f"not ready yet ({not_ready_reason or 'starting'})")
    started = time.perf_counter()
    try:
        revision = await asyncio.wait_for(current_revision(db), timeout=PROBE_TIMEOUT_SECONDS)
    except Exception as exc:  # any failure means "down", with the reason shown
        return DatabaseStatus(ok=False, kind=kind, error=_describe(exc))
    latency = _ms(started)
    if revision != head_revision():
        return DatabaseStatus(
            ok=False, kind=kind, revision=revision, latency_ms=latency, error=f"migrations not at head ({head_revision()})"
        )
    return DatabaseStatus(ok=True, kind=kind, revision=revision, latency_ms=latency)


async def ollama_status(settings: Settings, required: list[str]) -> OllamaStatus:
    """Reachable, and every required model pulled (through Ollama's /api/tags)."""
    base: dict[str, Any] = {"host": shown_url(settings.ollama_host), "model": settings.ollama_model, "models_required": required}
    client = ollama.AsyncClient(host=settings.ollama_host, timeout=PROBE_TIMEOUT_SECONDS)
    started = time.perf_counter()
    try:
        listing = await asyncio.wait_for(client.list(), timeout=PROBE_TIMEOUT_SECONDS + 0.5)
    except Exception as exc:  # unreachable, refused, timed out, or an error status
        metrics.LLM_CALLS.labels(engine="ollama", operation="list", outcome="error").observe(time.perf_counter() - started)
        return OllamaStatus(
            ok=False,
            reachable=False,
            models_missing=required,
            models_available=[],
            latency_ms=_ms(started),
            error=_describe(exc),
            **base,
        )
    finally:
        await client.close()
    metrics.LLM_CALLS.labels(engine="ollama", operation="list", outcome="ok").observe(time.perf_counter() - started)
    available = sorted(m.model for m in listing.models if m.model)
    pulled = {ollama_model_name(name) for name in available}
    missing = [name for name in required if ollama_model_name(name) not in pulled]
    return OllamaStatus(
        ok=not missing,
        reachable=True,
        models_missing=missing,
        models_available=available,
        latency_ms=_ms(started),
        error=f"not pulled: {', '.join(missing)} (ollama pull {missing[0]})" if missing else None,
        **base,
    )


async def openai_status(settings: Settings, llm) -> OpenAIStatus:  # OpenAICompatibleLLM or None
    """Reachable, the key accepted, and the model listed (through its /v1/models)."""
    model = settings.openai_model or None
    if llm is None:
        return OpenAIStatus(configured=False, ok=False, base_url=None, model=model, error="OPENAI_BASE_URL is not set")
    started = time.perf_counter()
    try:
        listed = await asyncio.wait_for(llm.list_models(), timeout=PROBE_TIMEOUT_SECONDS)
    except LLMUnavailable as exc:
        return OpenAIStatus(
            configured=True, ok=False, base_url=shown_url(llm.base_url), model=model, latency_ms=_ms(started), error=exc.message
        )
    except TimeoutError as exc:
        return OpenAIStatus(
            configured=True,
            ok=False,
            base_url=shown_url(llm.base_url),
            model=model,
            latency_ms=_ms(started),
            error=_describe(exc),
        )
    names = [m["name"] for m in listed]
    missing = model is not None and model not in names
    return OpenAIStatus(
        configured=True,
        ok=not missing,
        base_url=shown_url(llm.base_url),
        model=model,
        models_available=names,
        latency_ms=_ms(started),
        error=f"the server has no model '{model}'" if missing else None,
    )


def describe_embedded(settings: Settings) -> dict[str, Any]:
    from backend.runtime import make_embedded

    return make_embedded(settings).describe()


def engines_status(settings: Settings, ollama: OllamaStatus, embedded: EmbeddedStatus, openai: OpenAIStatus) -> EnginesStatus:
    ready = {"ollama": ollama.ok, "embedded": embedded.ok, "openai": openai.ok}
    provider = settings.llm_provider
    if provider == "auto":
        answering = "ollama" if ollama.ok else ("embedded" if embedded.ok else None)
    else:
        answering = provider if ready[provider] else None
    return EnginesStatus(provider=provider, answering=answering, embedded=embedded, openai=openai)


# Per bridge: a cheap authenticated read, the header carrying the key, and the setting holding it.
GATEWAY_PROBES = {
    "waha": ("/api/server/version", "X-Api-Key", "WAHA_API_KEY"),
    "evolution": ("/instance/fetchInstances", "apikey", "EVOLUTION_API_KEY"),
}


async def gateway_status(
    settings: Settings, http: aiohttp.ClientSession, provider: str, channels: dict[str, int]
) -> GatewayStatus:
    if provider == "sandbox":
        return GatewayStatus(provider=provider, url=None, configured=True, ok=True, reachable=True, channels=channels)
    path, header, key_setting = GATEWAY_PROBES[provider]
    url: str = getattr(settings, f"{provider}_url")
    key: str = getattr(settings, key_setting.lower()).get_secret_value()
    configured = settings.gateway_provider == provider or bool(key) or bool(channels)
    common = {"provider": provider, "url": shown_url(url), "configured": configured, "channels": channels}
    if not url.strip():
        return GatewayStatus(ok=False, reachable=False, error=f"{provider.upper()}_URL is not set", **common)
    started = time.perf_counter()
    status: int | None = None
    failure: str | None = None
    try:
        async with http.get(
            url.rstrip("/") + path,
            headers={header: key} if key else {},
            timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT_SECONDS),
        ) as response:
            status = response.status
    except Exception as exc:  # refused, DNS, timeout: all mean unreachable
        failure = _describe(exc)
    outcome = "ok" if status is not None and status < 400 else "error"
    metrics.GATEWAY_CALLS.labels(provider=provider, operation="status", outcome=outcome).observe(time.perf_counter() - started)
    if status is None:
        return GatewayStatus(ok=False, reachable=False, latency_ms=_ms(started), error=failure, **common)
    if status in (401, 403):
        error = f"the gateway refused the API key (check {key_setting})"
    elif status >= 400:
        error = f"the gateway answered HTTP {status}"
    else:
        error = None
    return GatewayStatus(ok=error is None, reachable=True, latency_ms=_ms(started), error=error, **common)


async def refresh_queue_gauges(db: Database) -> dict[str, Any]:
    """Read the job queue and publish it as gauges (called on every /metrics scrape)."""
    depth = await jobs_store.queue_depth(db)
    for state in ("queued", "running", "failed"):
        metrics.JOB_QUEUE_DEPTH.labels(status=state).set(depth[state])
    metrics.JOB_QUEUE_OLDEST_AGE.set(float(depth["oldest_queued_age_seconds"]))
    return depth


async def refresh_database_gauges(db: Database) -> None:
    """The gauges every instance reads from the database on a /metrics scrape: the queue, the golden regressions."""
    await refresh_queue_gauges(db)
    metrics.GOLDEN_REGRESSIONS.set(await golden_store.regressed_question_count(db))


async def collect_status(
    settings: Settings,
    db: Database | None,
    http: aiohttp.ClientSession,
    *,
    embedded: dict[str, Any],
    openai_llm=None,  # the runtime's OpenAICompatibleLLM, None when not configured
    not_ready_reason: str | None = None,
    uptime_seconds: float = 0.0,
    loaded_models: list[ModelStatus] | None = None,
) -> Status:
    database = await database_status(settings, db, not_ready_reason)
    required = [settings.ollama_model]
    channels: dict[str, dict[str, int]] = {}
    queue = None
    if database.ok and db is not None:
        models, channels, depth = await asyncio.gather(
            assistant_models(db), status_store.channel_counts(db), refresh_queue_gauges(db)
        )
        required += [m for m in models if ollama_model_name(m) not in {ollama_model_name(r) for r in required}]
        queue = QueueStatus(
            queued=depth["queued"],
            running=depth["running"],
            failed=depth["failed"],
            oldest_queued_age_seconds=round(float(depth["oldest_queued_age_seconds"]), 1),
        )
    ollama_state, openai_state, *gateways = await asyncio.gather(
        ollama_status(settings, required),
        openai_status(settings, openai_llm),
        *(gateway_status(settings, http, provider, channels.get(provider, {})) for provider in GATEWAYS),
    )
    embedded_state = EmbeddedStatus(ok=embedded["file_present"] and not embedded["error"], **embedded)
    engines = engines_status(settings, ollama_state, embedded_state, openai_state)
    loaded_models = loaded_models or []
    healthy = (
        database.ok
        and engines.answering is not None
        and all(g.ok for g in gateways if g.configured)
        and all(m.ok for m in loaded_models)
    )
    if not healthy:
        log.info(
            "status.degraded",
            database=database.ok,
            answering=engines.answering,
            gateways={g.provider: g.ok for g in gateways if g.configured},
            models={m.name: m.ok for m in loaded_models},
        )
    return Status(
        status="ok" if healthy else "degraded",
        database=database,
        ollama=ollama_state,
        engines=engines,
        gateways=gateways,
        queue=queue,
        workers=WorkersStatus(in_process=settings.run_workers, concurrency=settings.worker_concurrency),
        max_upload_mb=settings.max_upload_mb,
        uptime_seconds=round(uptime_seconds, 1),
        models=loaded_models,
    )


def model_statuses(loads: list, speech: dict[str, Any]) -> list[ModelStatus]:
    """The models loaded at start (`backend.model_loading.ModelLoad`), the speech model's with the error of a
    later load if it failed since (a voice note then gets the unclear-voice reply)."""
    statuses = [
        ModelStatus(name=load.name, model=load.model, ok=load.ok, seconds=load.seconds, error=load.error) for load in loads
    ]
    for index, status in enumerate(statuses):
        if status.name == "speech" and speech.get("error") and status.ok:
            statuses[index] = status.model_copy(update={"ok": False, "error": speech["error"]})
    return statuses
