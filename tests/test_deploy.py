"""Deployment files: the Procfile starts real processes, render.yaml is wired to things that exist."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from backend.settings import Settings
from tests.conftest import ADMIN
from tests.servers import free_port
from tests.test_docs import env_example_names, setting_env_names

ROOT = Path(__file__).resolve().parent.parent
RENDER = yaml.safe_load((ROOT / "render.yaml").read_text())
SERVICES = {service["name"]: service for service in RENDER["services"]}
GROUPS = {group["name"]: group for group in RENDER.get("envVarGroups", [])}
DATABASES = {database["name"] for database in RENDER.get("databases", [])}
# Variables for the platform or the libraries, not our settings.
PLATFORM_VARS = {"PYTHON_VERSION", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "BACKEND_HOSTPORT"}
OUR_SERVICES = [name for name, service in SERVICES.items() if service.get("runtime") == "python"]


def procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            entries[name.strip()] = command.strip()
    return entries


def env_entries(service: dict) -> list[dict]:
    """A service's env entries, with its groups' entries folded in."""
    entries = []
    for entry in service.get("envVars", []):
        if "fromGroup" in entry:
            entries += GROUPS[entry["fromGroup"]]["envVars"]
        else:
            entries.append(entry)
    return entries


def env_keys(service: dict) -> set[str]:
    return {entry["key"] for entry in env_entries(service)}


def command_target(command: str) -> tuple[str, str]:
    """("module", name) for `python -m name`, ("file", path) for `streamlit run path`."""
    words = [w for w in shlex.split(command) if not re.match(r"^[A-Z_]+=", w)]
    if words[:2] == ["python", "-m"]:
        return "module", words[2]
    if words[:2] == ["streamlit", "run"]:
        return "file", words[2]
    raise AssertionError(f"unexpected start command: {command}")


def assert_target_exists(command: str) -> None:
    kind, target = command_target(command)
    if kind == "module":
        assert importlib.util.find_spec(target) is not None, f"no module {target}"
        module = importlib.import_module(target if target != "backend" else "backend.__main__")
        assert callable(module.main)
    else:
        assert (ROOT / target).is_file(), f"{target} does not exist"


def test_procfile_has_web_console_and_worker_processes():
    entries = procfile()
    assert set(entries) == {"web", "console", "worker"}
    assert command_target(entries["web"]) == ("module", "backend")
    assert command_target(entries["worker"]) == ("module", "backend.worker")
    assert command_target(entries["console"]) == ("file", "console/app.py")
    for command in entries.values():
        assert_target_exists(command)


def test_run_script_starts_the_procfile_web_and_console():
    script = (ROOT / "scripts" / "run.sh").read_text()
    # honcho's own default would give the backend PORT=5000, not the port the console expects.
    assert 'honcho -f Procfile start -p "${PORT:-8000}" web console' in script
    assert os.access(ROOT / "scripts" / "run.sh", os.X_OK) and os.access(ROOT / "scripts" / "test.sh", os.X_OK)


def test_every_render_start_command_refers_to_code_that_exists():
    for name in OUR_SERVICES:
        assert_target_exists(SERVICES[name]["startCommand"])


def test_render_wiring_refers_to_resources_declared_in_the_file():
    for service in SERVICES.values():
        for entry in service.get("envVars", []):
            if "fromGroup" in entry:
                assert entry["fromGroup"] in GROUPS
            if "fromDatabase" in entry:
                assert entry["fromDatabase"]["name"] in DATABASES
                assert entry["fromDatabase"]["property"] == "connectionString"
            if "fromService" in entry:
                source = entry["fromService"]
                assert source["name"] in SERVICES, source
                assert SERVICES[source["name"]]["type"] == source["type"], source
                if "envVarKey" in source:
                    assert source["envVarKey"] in env_keys(SERVICES[source["name"]]), source
                else:
                    assert source["property"] in {"host", "port", "hostport"}, source


async def test_render_health_check_is_a_public_route_that_answers(backend):
    path = SERVICES["wa-backend"]["healthCheckPath"]
    assert path == "/readyz"
    async with backend.client() as client:  # no token: Render's probe has none
        response = await client.get(path)
    assert response.status_code == 200 and response.json() == {"status": "ready"}


def test_render_sets_only_real_settings_and_everything_a_cloud_deploy_needs():
    known = setting_env_names() | PLATFORM_VARS
    for name in OUR_SERVICES:
        keys = env_keys(SERVICES[name])
        assert keys <= known, f"{name} sets unknown variables: {keys - known}"
    backend = env_keys(SERVICES["wa-backend"])
    worker = env_keys(SERVICES["wa-worker"])
    # No embedded database, no secret key file, no loopback-only defaults in the cloud.
    assert {"DATABASE_URL", "SECRET_KEY", "ADMIN_PASSWORD", "HOST", "OLLAMA_HOST", "HF_HUB_OFFLINE"} <= backend
    assert {"DATABASE_URL", "SECRET_KEY", "OLLAMA_HOST", "WAHA_API_KEY", "EVOLUTION_API_KEY"} <= worker
    # Whatever is not set keeps the default documented in .env.example.
    assert setting_env_names() - backend <= env_example_names()


def test_render_values_are_accepted_by_the_settings():
    for name in ("wa-backend", "wa-worker"):
        values = {
            entry["key"].lower(): str(entry["value"])
            for entry in env_entries(SERVICES[name])
            if "value" in entry and entry["key"] not in PLATFORM_VARS
        }
        settings = Settings(_env_file=None, **values)
        assert settings.log_format == "json"
    backend = {e["key"]: e for e in env_entries(SERVICES["wa-backend"])}
    assert backend["HOST"]["value"] == "0.0.0.0"
    assert backend["SECRET_KEY"].get("generateValue") is True and backend["ADMIN_PASSWORD"].get("generateValue") is True
    # Ollama as Render gives it ("host:port") is understood.
    assert Settings(_env_file=None, ollama_host="wa-ollama-x1y2:11434").ollama_host == "http://wa-ollama-x1y2:11434"


def test_public_base_url_falls_back_to_renders_external_url(monkeypatch):
    monkeypatch.delenv("PUBLIC_BASE_URL", raising=False)
    monkeypatch.setenv("RENDER_EXTERNAL_URL", "https://wa-backend.onrender.com")
    assert Settings(_env_file=None).public_base_url == "https://wa-backend.onrender.com"
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://bot.example.com")
    assert Settings(_env_file=None).public_base_url == "https://bot.example.com"


def test_render_builds_install_the_cpu_torch_pinned_in_requirements():
    pinned = next(line for line in (ROOT / "requirements.txt").read_text().splitlines() if line.startswith("torch=="))
    for name in OUR_SERVICES:
        build = SERVICES[name]["buildCommand"]
        assert f"pip install {pinned} --index-url https://download.pytorch.org/whl/cpu" in build
        assert build.index("whl/cpu") < build.index("-r requirements.txt")


def test_render_console_reaches_the_backend_and_listens_on_renders_port():
    console = SERVICES["wa-console"]
    command = console["startCommand"]
    assert "--server.port $PORT" in command and "--server.address 0.0.0.0" in command
    assert "BACKEND_URL=" in command and "$BACKEND_HOSTPORT" in command
    wired = {e["key"]: e for e in console["envVars"]}["BACKEND_HOSTPORT"]["fromService"]
    assert wired == {"name": "wa-backend", "type": "web", "property": "hostport"}


def test_render_ollama_runs_the_official_image_with_a_disk_for_models():
    ollama = SERVICES["wa-ollama"]
    assert ollama["type"] == "pserv" and ollama["image"]["url"].startswith("docker.io/ollama/ollama")
    assert ollama["disk"]["mountPath"] == "/root/.ollama"


def wait_for(url: str, timeout: float = 90) -> httpx.Response:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer 200 within {timeout} s ({last})")


@pytest.fixture
def procfile_processes(database_url, tmp_path):
    """`honcho -f Procfile start -p PORT web console worker`, as the README's run command starts them
    (PORT is not in the environment: honcho alone decides the backend's port, as on a user's machine)."""
    backend_port, console_port = free_port(), free_port()
    env = {
        **{key: value for key, value in os.environ.items() if key != "PORT"},
        "DATABASE_URL": database_url,
        "DATA_DIR": str(tmp_path / "data"),
        "HOST": "127.0.0.1",
        "BACKEND_URL": f"http://127.0.0.1:{backend_port}",
        "CONSOLE_PORT": str(console_port),
        "SECRET_KEY": "procfile-test-secret-key-long-enough",
        "ADMIN_EMAIL": ADMIN["email"],
        "ADMIN_PASSWORD": ADMIN["password"],
        "OLLAMA_HOST": "http://127.0.0.1:9",
        "WORKER_CONCURRENCY": "1",
        "LOG_FORMAT": "json",
        "HF_HUB_OFFLINE": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    log = tmp_path / "honcho.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "honcho"),
                "-f",
                "Procfile",
                "start",
                "-p",
                str(backend_port),
                "web",
                "console",
                "worker",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield f"http://127.0.0.1:{backend_port}", f"http://127.0.0.1:{console_port}", log
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for_log(log: Path, pattern: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while not re.search(pattern, text := log.read_text(errors="replace")):
        assert time.monotonic() < deadline, f"no {pattern!r} in the log:\n{text[-3000:]}"
        time.sleep(0.3)
    return text


def test_procfile_processes_start_serve_and_answer_with_the_request_id_in_the_job_log(procfile_processes):
    backend_url, console_url, log = procfile_processes
    assert wait_for(backend_url + "/readyz").json() == {"status": "ready"}
    assert wait_for(console_url + "/_stcore/health").text == "ok"
    wait_for_log(log, r"worker\.1 .*worker\.ready")

    token = httpx.post(backend_url + "/api/auth/login", json=ADMIN, timeout=10).json()["token"]
    with httpx.Client(base_url=backend_url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as api:
        assistant = api.post("/api/assistants", json={"name": "Procfile shop"}).json()
        channel = api.post("/api/channels", json={"assistant_id": assistant["id"], "provider": "sandbox"}).json()
        api.post(f"/api/channels/{channel['id']}/sandbox/scan", json={"phone_number": "+15550002222"})
        sent = api.post(
            f"/api/channels/{channel['id']}/sandbox/messages",
            json={"from": "+15553334444", "text": "Hello?", "id": "procfile-1"},
            headers={"X-Request-Id": "trace-procfile-42"},
        )
        assert sent.status_code in (200, 201, 202), sent.text
        # Whichever process took the reply job (web's in-process workers or the worker), its log
        # line carries the request id of the webhook that started it.
        text = wait_for_log(log, r'"event": "job\.done".*"kind": "reply"|"kind": "reply".*"event": "job\.done"')
    done = [line for line in text.splitlines() if '"job.done"' in line and '"kind": "reply"' in line]
    assert done and all('"request_id": "trace-procfile-42"' in line for line in done), done
