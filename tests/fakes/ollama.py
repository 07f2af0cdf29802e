"""A fake Ollama server on loopback that speaks Ollama's HTTP API, built from its documented bodies.

Use it from any test module:

    from tests.fakes.ollama import fake_ollama_server  # noqa: F401  (registers `fake_ollama`)

    async def test_something(fake_ollama):
        fake_ollama.reply = "Our shop opens at 9 [1]."       # what /api/chat answers
        fake_ollama.set_models(["llama3.2"])                 # what is "pulled" (/api/tags, /api/show, 404s)
        settings = make_settings(database_url, tmp_path, ollama_host=fake_ollama.url)
        ...
        assert fake_ollama.requests_to("/api/chat")[0].body["options"]["num_ctx"] >= 2048

What it does, as Ollama does:
- `GET|HEAD /` → 200 `Ollama is running` (text/plain); `GET /api/version` → `{"version": ...}`.
- `GET /api/tags` → the pulled models, entries shaped like the docs' example.
- `POST /api/show` → the docs' body with `<arch>.context_length` = `.context_length`; 404
  `{"error": "model 'x:latest' not found"}` (name normalised) when not pulled; 400 without a model.
- `POST /api/chat` → streams NDJSON by default, one JSON object with `"stream": false`; content is
  `.reply`; `prompt_eval_count` is the prompt's token count (≈ `.chars_per_token` chars a token)
  capped at `options.num_ctx` (default 4096) as the real server truncates; 404
  `{"error": "model 'x' not found"}` (name as sent) when not pulled. `.chat_delay` slows it down,
  `.fail_status` (e.g. 503, 500) makes chat answer that error.
- `POST /api/embed` → one deterministic unit vector of `.embed_dimensions` per input (same text →
  same vector); 404 when the model is not pulled.
- `POST /api/pull` → streamed progress lines (`pulling manifest`, per-layer `total`/`completed`, ...,
  `success`) and the model becomes pulled; a name in `.unpullable` streams `{"error": ...}`.
- Every request is recorded in `.requests` (`method`, `path`, `body`).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from tests.servers import serve_aiohttp

JSON_BODY = web.RequestKey("json_body", object)
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "ollama"


def _fixture(name: str) -> Any:
    text = (FIXTURES / name).read_text()
    if name.endswith(".ndjson"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text) if name.endswith(".json") else text


def full_name(model: str) -> str:
    return model if ":" in model else f"{model}:latest"


@dataclass
class RecordedRequest:
    method: str
    path: str
    body: Any


@dataclass
class FakeOllama:
    url: str = ""
    reply: str = "According to the documents, the answer is in source [1]."
    context_length: int = 8192
    chars_per_token: float = 4.0
    embed_dimensions: int = 384
    chat_delay: float = 0.0
    fail_status: int | None = None
    unpullable: set[str] = field(default_factory=set)
    requests: list[RecordedRequest] = field(default_factory=list)
    _models: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._models = [m["name"] for m in _fixture("tags_response.json")["models"]]

    def set_models(self, names: list[str]) -> None:
        """Which models count as pulled."""
        self._models = [full_name(n) for n in names]

    def backend_settings(self) -> dict[str, str]:
        """Pull the chat and embedding models here, and return the settings that point a backend at
        this fake for both (no embedding model to load: instant)."""
        self.set_models(["llama3.2", "all-minilm"])
        return {"ollama_host": self.url, "embedding_provider": "ollama", "embedding_model": "all-minilm"}

    @property
    def models(self) -> list[str]:
        return list(self._models)

    def has(self, model: str) -> bool:
        return full_name(model) in self._models

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    # -- handlers -------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        app.router.add_route("GET", "/", self.root)
        app.router.add_route("HEAD", "/", self.root)
        app.router.add_get("/api/version", self.version)
        app.router.add_get("/api/tags", self.tags)
        app.router.add_post("/api/show", self.show)
        app.router.add_post("/api/chat", self.chat)
        app.router.add_post("/api/embed", self.embed)
        app.router.add_post("/api/pull", self.pull)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler):
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        self.requests.append(RecordedRequest(request.method, request.path, body))
        request[JSON_BODY] = body
        return await handler(request)

    async def root(self, request: web.Request) -> web.Response:
        return web.Response(text=_fixture("root_response.txt"), content_type="text/plain")

    async def version(self, request: web.Request) -> web.Response:
        return web.json_response(_fixture("version_response.json"))

    async def tags(self, request: web.Request) -> web.Response:
        template = _fixture("tags_response.json")["models"][1]
        models = []
        for name in self._models:
            entry = copy.deepcopy(template)
            entry["name"] = entry["model"] = name
            entry["digest"] = hashlib.sha256(name.encode()).hexdigest()
            models.append(entry)
        return web.json_response({"models": models})

    def _body(self, request: web.Request) -> tuple[dict | None, web.Response | None]:
        body = request[JSON_BODY]
        if not isinstance(body, dict):
            return None, web.json_response({"error": "missing request body"}, status=400)
        if not (body.get("model") or body.get("name")):
            return None, web.json_response({"error": "model is required"}, status=400)
        return body, None

    def _not_found(self, model: str) -> web.Response:
        return web.json_response({"error": f"model '{model}' not found"}, status=404)

    async def show(self, request: web.Request) -> web.Response:
        body, error = self._body(request)
        if error:
            return error
        model = body.get("model") or body.get("name")
        if not self.has(model):
            return self._not_found(full_name(model))
        shown = _fixture("show_response.json")
        shown["model_info"]["llama.context_length"] = self.context_length
        shown["capabilities"] = ["completion"]
        return web.json_response(shown)

    def _prompt_eval_count(self, messages: list[dict], num_ctx: int) -> int:
        chars = sum(len(m.get("content", "")) for m in messages)
        tokens = int(chars / self.chars_per_token) + 8 * len(messages)
        return min(tokens, num_ctx)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body, error = self._body(request)
        if error:
            return error
        model = body["model"]
        if not self.has(model):
            return self._not_found(model)
        if self.fail_status:
            return web.json_response(
                {"error": "server busy, please try again. maximum pending requests exceeded"}, status=self.fail_status
            )
        if self.chat_delay:
            await asyncio.sleep(self.chat_delay)
        num_ctx = int((body.get("options") or {}).get("num_ctx") or 4096)
        stats = {"prompt_eval_count": self._prompt_eval_count(body.get("messages") or [], num_ctx)}
        if body.get("stream", True) is False:
            reply = _fixture("chat_response_nonstream.json")
            reply.update(model=model, done_reason="stop", **stats)
            reply["message"]["content"] = self.reply
            return web.json_response(reply)
        first, last = _fixture("chat_response_stream.ndjson")
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        for word in self.reply.split(" "):
            part = copy.deepcopy(first)
            part["model"] = model
            part["message"]["content"] = word + " "
            await response.write((json.dumps(part) + "\n").encode())
        last.update(model=model, done_reason="stop", **stats)
        await response.write((json.dumps(last) + "\n").encode())
        await response.write_eof()
        return response

    def vector(self, text: str) -> list[float]:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        vector = np.random.default_rng(seed).standard_normal(self.embed_dimensions)
        return (vector / np.linalg.norm(vector)).round(8).tolist()

    async def embed(self, request: web.Request) -> web.Response:
        body, error = self._body(request)
        if error:
            return error
        model = body["model"]
        if not self.has(model):
            return self._not_found(model)
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
        reply = _fixture("embed_response.json")
        reply.update(model=model, embeddings=[self.vector(text) for text in inputs])
        reply["prompt_eval_count"] = sum(len(text.split()) for text in inputs)
        return web.json_response(reply)

    async def pull(self, request: web.Request) -> web.StreamResponse:
        body, error = self._body(request)
        if error:
            return error
        model = body.get("model") or body.get("name")
        lines = _fixture("pull_response_stream.ndjson")
        if full_name(model) in {full_name(m) for m in self.unpullable}:
            lines = [lines[0], {"error": "pull model manifest: file does not exist"}]
        else:
            layer = lines[1]
            lines[1:2] = [{**layer, "completed": layer["total"] * step // 4} for step in range(0, 5)]  # progress as bytes arrive
        if body.get("stream", True) is False:
            if "error" in lines[-1]:
                return web.json_response(lines[-1], status=500)
            self._models.append(full_name(model))
            return web.json_response({"status": "success"})
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        for line in lines:
            await response.write((json.dumps(line) + "\n").encode())
            await asyncio.sleep(0.01)
        if "error" not in lines[-1] and not self.has(model):
            self._models.append(full_name(model))
        await response.write_eof()
        return response


@pytest.fixture(name="fake_ollama")
async def fake_ollama_server():
    """A `FakeOllama` listening on 127.0.0.1 (`.url`) for the length of one test."""
    fake = FakeOllama()
    runner, fake.url = await serve_aiohttp(fake.app())
    try:
        yield fake
    finally:
        await runner.cleanup()


fake_ollama = fake_ollama_server  # the same fixture under its own name, for `import fake_ollama`
