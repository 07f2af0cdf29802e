"""A realistic session leaves no secret in the logs: tokens, passwords, API keys, HMAC keys, webhook secrets."""

from __future__ import annotations

import uuid

import pytest

from backend.app import create_app
from tests.conftest import ADMIN, make_settings
from tests.e2e_support import eventually
from tests.fakes.ollama import fake_ollama  # noqa: F401 - fixture
from tests.fakes.waha import running_fake_waha
from tests.servers import free_port, serve_app

WAHA_API_KEY = "waha-api-key-7f3a9c1e5b2d4f60"
EVOLUTION_API_KEY = "evolution-api-key-1c9e7a3b5d2f4e80"
SECRET_KEY = "signing-key-for-tokens-d41d8cd98f00b204e9800998ecf8427e"
OPERATOR_PASSWORD = "operator-password-a8b7c6d5e4"
FAST_POLICY = {"burst_window_seconds": 0, "typing_seconds_per_char": 0}


async def _run_session(database_url, data_dir, ollama_url: str, waha) -> dict[str, str]:
    """Everything an operator and two customers do in a day; returns the secrets that were in play."""
    port = free_port()
    settings = make_settings(
        database_url,
        data_dir,
        secret_key=SECRET_KEY,
        waha_url=waha.url,
        waha_api_key=WAHA_API_KEY,
        evolution_api_key=EVOLUTION_API_KEY,
        gateway_provider="waha",
        public_base_url=f"http://127.0.0.1:{port}",
        channel_reconcile_seconds=0,
        gateway_timeout_seconds=2,
        ollama_host=ollama_url,
        embedding_provider="ollama",
        embedding_model="all-minilm",
        rag_min_score=0.0,
        log_level="DEBUG",
    )
    secrets: dict[str, str] = {
        "admin password": ADMIN["password"],
        "operator password": OPERATOR_PASSWORD,
        "secret key": SECRET_KEY,
        "WAHA API key": WAHA_API_KEY,
        "Evolution API key": EVOLUTION_API_KEY,
    }
    app = create_app(settings, name=f"secrets_{uuid.uuid4().hex[:8]}")
    async with serve_app(app, port=port) as running:
        async with running.client() as anonymous:
            await anonymous.post("/api/auth/login", json={"email": ADMIN["email"], "password": "wrong-" + ADMIN["password"]})
            token = (await anonymous.post("/api/auth/login", json=ADMIN)).json()["token"]
            await anonymous.get("/api/assistants", headers={"Authorization": f"Bearer {token}x"})  # a tampered token
        secrets["admin token"] = token
        async with running.client(token) as api:
            created = await api.post(
                "/api/operators", json={"email": "ana@example.com", "password": OPERATOR_PASSWORD, "role": "operator"}
            )
            assert created.status_code == 201, created.text
            async with running.client() as anonymous:
                operator = await anonymous.post(
                    "/api/auth/login", json={"email": "ana@example.com", "password": OPERATOR_PASSWORD}
                )
            secrets["operator token"] = operator.json()["token"]

            assistant = (await api.post("/api/assistants", json={"name": "Shop", "policies": FAST_POLICY})).json()
            upload = await api.post(
                f"/api/assistants/{assistant['id']}/documents",
                files={"files": ("hours.txt", b"The shop opens at nine and closes at five.", "text/plain")},
            )
            assert upload.status_code == 201, upload.text

            sandbox = (await api.post("/api/channels", json={"assistant_id": assistant["id"], "provider": "sandbox"})).json()
            await api.post(f"/api/channels/{sandbox['id']}/sandbox/scan", json={})
            await api.post(f"/api/channels/{sandbox['id']}/sandbox/messages", json={"from": "+15550001", "text": "Hours?"})

            waha_channel = await api.post("/api/channels", json={"assistant_id": assistant["id"], "provider": "waha"})
            assert waha_channel.status_code == 201, waha_channel.text
            await waha.idle()
            await waha.scan("+15550100001")
            await waha.deliver_message("+15550109999", "When do you open?")
            # A forged webhook is refused (and logged as such).
            await waha.deliver_message("+15550109999", "forged", hmac_key="attacker-key-0000")

            await eventually(lambda: _sent_everything(api, sandbox["id"], waha), within=30, what="both replies sent")

        for row in await app.ctx.db.fetch_all("SELECT webhook_secret FROM channels"):
            secrets[f"webhook secret {len(secrets)}"] = row["webhook_secret"]
        for hook in waha.session()["config"].get("webhooks") or []:
            if (hook.get("hmac") or {}).get("key"):
                secrets["WAHA HMAC key"] = hook["hmac"]["key"]
    return secrets


async def _sent_everything(api, sandbox_id: int, waha) -> bool:
    outbox = (await api.get(f"/api/channels/{sandbox_id}/sandbox/outbox")).json()["items"]
    return bool(outbox) and bool(waha.sent)


async def test_logs_of_a_realistic_session_contain_no_secret(database_url, tmp_path, fake_ollama, capfd):  # noqa: F811
    fake_ollama.set_models(["llama3.2", "all-minilm"])
    async with running_fake_waha(WAHA_API_KEY) as waha:
        secrets = await _run_session(database_url, tmp_path / "data", fake_ollama.url, waha)
    captured = capfd.readouterr()
    logs = captured.out + captured.err

    assert "auth.login" in logs and "webhook.refused" in logs, "the session's events were not captured"
    assert "WAHA HMAC key" in secrets and len(secrets) >= 9, sorted(secrets)
    leaked = {name for name, value in secrets.items() if value and value in logs}
    # A JWT's signature alone also lets nobody in, but its presence means the token was printed.
    leaked |= {name for name, value in secrets.items() if "token" in name and value.rsplit(".", 1)[-1] in logs}
    assert not leaked, f"secrets found in the logs: {sorted(leaked)}"


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_redaction_hides_secret_fields_and_bearer_tokens_in_both_log_formats(capfd, fmt):
    import structlog

    from backend.logging import configure_logging

    configure_logging("INFO", fmt)
    log = structlog.get_logger("secrets-test")
    log.info("probe", api_key=WAHA_API_KEY, password=OPERATOR_PASSWORD, error=f"header was Bearer {SECRET_KEY}")
    logs = capfd.readouterr().err
    assert "probe" in logs
    assert WAHA_API_KEY not in logs and OPERATOR_PASSWORD not in logs and SECRET_KEY not in logs
