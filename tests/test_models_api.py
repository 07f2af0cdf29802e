"""Ollama models through the API: listing (also when Ollama is down or a model is missing) and pulling."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from backend.app import create_app
from tests.conftest import login, make_settings
from tests.fakes.ollama import fake_ollama_server  # noqa: F401
from tests.servers import serve_app


@pytest.fixture
async def client(database_url, tmp_path, fake_ollama):
    settings = make_settings(database_url, tmp_path / "data", ollama_host=fake_ollama.url)
    app = create_app(settings, name=f"models_{uuid.uuid4().hex[:8]}")
    async with serve_app(app) as backend, backend.client(await login(backend)) as api:
        yield api


async def test_models_lists_what_ollama_has(client):
    body = (await client.get("/api/models")).json()
    assert body["reachable"] is True and body["configured_model"] == "llama3.2" and body["configured_model_pulled"] is True
    assert [m["name"] for m in body["models"]] == ["deepseek-r1:latest", "llama3.2:latest"]
    assert body["models"][0]["parameter_size"] and body["missing_models"] == [] and body["reason"] is None


async def test_a_missing_model_is_named_clearly(client, fake_ollama):
    fake_ollama.set_models(["deepseek-r1"])
    await client.post("/api/assistants", json={"name": "French", "model": "mistral:7b"})
    body = (await client.get("/api/models")).json()
    assert body["reachable"] is True and body["configured_model_pulled"] is False
    assert body["reason"] == "model_not_found" and body["missing_models"] == ["llama3.2", "mistral:7b"]
    assert "Not pulled in Ollama: llama3.2, mistral:7b" in body["message"]


async def test_ollama_down_is_reported_with_200_and_a_reason(api):
    response = await api.get("/api/models")
    assert response.status_code == 200
    body = response.json()
    assert body["reachable"] is False and body["reason"] == "ollama_unreachable" and body["models"] == []
    assert "unreachable" in body["message"]


async def test_pulling_a_model_reports_progress_until_done(client, fake_ollama):
    fake_ollama.set_models([])
    started = await client.post("/api/models/pull", json={"model": "llama3.2"})
    assert started.status_code == 202 and started.json()["status"] in ("queued", "running", "done")
    job_id = started.json()["job_id"]
    async with asyncio.timeout(30):
        while (status := (await client.get(f"/api/models/pull/{job_id}")).json())["status"] != "done":
            await asyncio.sleep(0.1)
    assert status["percent"] == 100 and status["model"] == "llama3.2" and status["error"] is None
    assert fake_ollama.requests_to("/api/pull")[0].body["model"] == "llama3.2"
    assert (await client.get("/api/models")).json()["configured_model_pulled"] is True


async def test_a_model_that_does_not_exist_fails_its_pull(client, fake_ollama):
    fake_ollama.unpullable = {"no-such-model"}
    job_id = (await client.post("/api/models/pull", json={"model": "no-such-model"})).json()["job_id"]
    async with asyncio.timeout(30):
        while (status := (await client.get(f"/api/models/pull/{job_id}")).json())["status"] != "failed":
            await asyncio.sleep(0.1)
    assert "file does not exist" in status["error"]


async def test_bad_pull_requests_are_refused(client):
    assert (await client.post("/api/models/pull", json={})).status_code == 400
    assert (await client.post("/api/models/pull", json={"model": "bad name; rm"})).status_code == 400
    missing = await client.get("/api/models/pull/424242")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "pull_not_found"


@pytest.mark.parametrize(
    "name",
    ["10.0.0.5:8443/x/y", "127.0.0.1:11434/library/llama3.2", "registry.internal/team/model:1", "hf.co/user/repo:Q4",
     "localhost:5000/x", "http://10.0.0.5/x", "team.corp/x"],
)  # fmt: skip
async def test_a_model_from_a_registry_host_is_refused_before_ollama_hears_of_it(client, fake_ollama, name):
    refused = await client.post("/api/models/pull", json={"model": name})
    assert refused.status_code == 400, refused.text
    assert "registry host" in refused.json()["error"]["details"][0]["message"]
    assert fake_ollama.requests_to("/api/pull") == []


@pytest.mark.parametrize("name", ["llama3.2", "qwen2.5:0.5b", "library/llama3.2:latest", "my_team/model-x:v1.2"])
async def test_library_model_names_are_pulled(client, fake_ollama, name):
    started = await client.post("/api/models/pull", json={"model": name})
    assert started.status_code == 202, started.text
