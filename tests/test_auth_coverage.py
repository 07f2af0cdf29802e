"""Every registered route refuses callers without a valid operator token; webhooks refuse bad signatures."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid

import jwt
import pytest

from backend.security import issue_token
from tests.e2e_support import assert_error_shape

# Reachable without a token on purpose: login, probes, the API description, Prometheus, and
# webhooks (which carry the gateway's signature instead).
PUBLIC_PATHS = {"/api/auth/login", "/healthz", "/readyz", "/openapi.json", "/metrics"}
SAMPLE_BY_TYPE = {"int": "7", "uuid": str(uuid.UUID(int=7)), "path": "a/b"}


def _filled(path: str) -> str:
    """A concrete URL for a route pattern, with a real-looking value for each parameter."""

    def value(match: re.Match) -> str:
        kind = (match.group(2) or "str").lower()
        return SAMPLE_BY_TYPE.get(kind, "sample")

    return "/" + re.sub(r"<(\w+)(?::([^>]*))?>", value, path).lstrip("/")


def protected_routes(app) -> list[tuple[str, str]]:
    routes = []
    for route in app.router.routes:
        path = "/" + route.path.lstrip("/")
        if path in PUBLIC_PATHS or path.startswith("/webhooks/"):
            continue
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            routes.append((method, path))
    return routes


def webhook_routes(app) -> list[tuple[str, str]]:
    return [
        (method, "/" + route.path.lstrip("/"))
        for route in app.router.routes
        if route.path.lstrip("/").startswith("webhooks/")
        for method in sorted(route.methods - {"HEAD", "OPTIONS"})
    ]


def bad_tokens(secret: str) -> dict[str, dict[str, str]]:
    now = int(time.time())
    expired = jwt.encode({"sub": "1", "ver": 0, "iat": now - 7200, "exp": now - 3600}, secret, algorithm="HS256")
    forged = issue_token("an-attacker-guessed-this-secret-key-of-32b", operator_id=1, version=0, ttl_seconds=600)
    unsigned = jwt.encode({"sub": "1", "ver": 0, "exp": now + 600}, None, algorithm="none")
    return {
        "missing": {},
        "not bearer": {"Authorization": "Basic YWRtaW46YWRtaW4="},
        "bearer without token": {"Authorization": "Bearer"},
        "expired": {"Authorization": f"Bearer {expired}"},
        "forged": {"Authorization": f"Bearer {forged}"},
        "alg none": {"Authorization": f"Bearer {unsigned}"},
        "garbage": {"Authorization": "Bearer not.a.jwt"},
    }


async def test_every_route_except_login_health_and_webhooks_refuses_missing_expired_and_forged_tokens(backend):
    app = backend.app
    routes = protected_routes(app)
    # The foundation alone has a handful; a route list this short means the walk itself broke.
    assert len(routes) >= 8, routes
    secret = app.ctx.settings.secret_key.get_secret_value()
    failures = []
    async with backend.client() as client:
        for method, path in routes:
            url = _filled(path)
            for label, headers in bad_tokens(secret).items():
                response = await client.request(method, url, headers=headers, json={})
                if response.status_code != 401:
                    failures.append(f"{method} {url} with {label} token -> {response.status_code}")
                    continue
                assert_error_shape(response)
    assert not failures, "\n".join(failures)


async def test_the_refusal_says_why(backend):
    secret = backend.app.ctx.settings.secret_key.get_secret_value()
    tokens = bad_tokens(secret)
    async with backend.client() as client:
        codes = {
            label: (await client.get("/api/assistants", headers=tokens[label])).json()["error"]["code"]
            for label in ("missing", "expired", "forged")
        }
    assert codes == {"missing": "missing_token", "expired": "token_expired", "forged": "invalid_token"}


async def test_public_routes_answer_without_a_token(backend):
    async with backend.client() as client:
        for path in ("/healthz", "/readyz", "/openapi.json"):
            assert (await client.get(path)).status_code == 200, path
        refused = await client.post("/api/auth/login", json={"email": "admin@example.com", "password": "wrong"})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "bad_credentials"


@pytest.mark.parametrize("path", ["/api/assistants", "/api/auth/me"])
async def test_a_valid_token_is_accepted(api, path):
    assert (await api.get(path)).status_code == 200


# -- webhooks: the gateway's signature or secret, per channel --

CHANNEL_SECRET = "channel-webhook-secret-for-tests-0123456789"
OTHER_SECRET = "not-the-channel-secret-0123456789abcdef"


def _waha_body(status: str = "WORKING") -> bytes:
    return json.dumps(
        {"event": "session.status", "session": "s", "payload": {"name": "s", "status": status}, "me": None}
    ).encode()


def _evolution_body() -> bytes:
    return json.dumps({"event": "connection.update", "instance": "s", "data": {"instance": "s", "state": "connecting"}}).encode()


def _sandbox_body() -> bytes:
    return json.dumps({"event": "session.status", "payload": {"status": "scan_qr"}}).encode()


def _hmac(key: str, body: bytes, digest=hashlib.sha512) -> str:
    return hmac.new(key.encode(), body, digest).hexdigest()


def _evolution_jwt(key: str, *, expires_in: int = 600) -> str:
    now = int(time.time())
    claims = {"iat": now, "exp": now + expires_in, "app": "evolution", "action": "webhook"}
    return jwt.encode(claims, key, algorithm="HS256")


WEBHOOK_CASES = {
    "waha": {
        "body": _waha_body,
        "good": lambda body: {"X-Webhook-Hmac": _hmac(CHANNEL_SECRET, body), "X-Webhook-Hmac-Algorithm": "sha512"},
        "bad": {
            "missing": lambda body: {},
            "forged key": lambda body: {"X-Webhook-Hmac": _hmac(OTHER_SECRET, body), "X-Webhook-Hmac-Algorithm": "sha512"},
            "signature of another body": lambda body: {"X-Webhook-Hmac": _hmac(CHANNEL_SECRET, _waha_body("FAILED"))},
            "weaker algorithm": lambda body: {
                "X-Webhook-Hmac": _hmac(CHANNEL_SECRET, body, hashlib.sha1),
                "X-Webhook-Hmac-Algorithm": "sha1",
            },
            "empty": lambda body: {"X-Webhook-Hmac": ""},
        },
    },
    "evolution": {
        "body": _evolution_body,
        "good": lambda body: {"Authorization": f"Bearer {_evolution_jwt(CHANNEL_SECRET)}"},
        "bad": {
            "missing": lambda body: {},
            "the secret as a static header (a bearer)": lambda body: {"x-webhook-secret": CHANNEL_SECRET},
            "forged jwt": lambda body: {"Authorization": f"Bearer {_evolution_jwt(OTHER_SECRET)}"},
            "expired jwt": lambda body: {"Authorization": f"Bearer {_evolution_jwt(CHANNEL_SECRET, expires_in=-60)}"},
            "garbage jwt": lambda body: {"Authorization": "Bearer not.a.jwt"},
        },
    },
    "sandbox": {
        "body": _sandbox_body,
        "good": lambda body: {"x-sandbox-secret": CHANNEL_SECRET},
        "bad": {
            "missing": lambda body: {},
            "wrong secret": lambda body: {"x-sandbox-secret": OTHER_SECRET},
            "secret prefix": lambda body: {"x-sandbox-secret": CHANNEL_SECRET[:-1]},
        },
    },
}


@pytest.mark.parametrize("provider", sorted(WEBHOOK_CASES))
async def test_webhooks_refuse_missing_or_forged_signatures(backend, api, provider):
    from backend.store.channels import insert_channel

    assistant = (await api.post("/api/assistants", json={"name": "Hooked"})).json()["id"]
    # A channel row with a secret we know (the API never reveals it): the webhook side is what is tested.
    channel = await insert_channel(backend.app.ctx.db, assistant, provider, f"session-{provider}", CHANNEL_SECRET)
    url = f"/webhooks/{provider}/{channel.id}"
    case = WEBHOOK_CASES[provider]
    body = case["body"]()
    async with backend.client() as client:
        for label, headers in case["bad"].items():
            response = await client.post(url, content=body, headers={"Content-Type": "application/json", **headers(body)})
            assert response.status_code == 401, (label, response.status_code, response.text)
            assert assert_error_shape(response)["code"] == "bad_signature"
        elsewhere = await client.post(
            f"/webhooks/{provider}/{channel.id + 1000}",
            content=body,
            headers={"Content-Type": "application/json", **case["good"](body)},
        )
        # A refused webhook changed nothing; the properly signed one is accepted.
        untouched = await backend.app.ctx.db.fetch_val("SELECT last_event_at FROM channels WHERE id = :id", {"id": channel.id})
        accepted = await client.post(url, content=body, headers={"Content-Type": "application/json", **case["good"](body)})
    # Another channel id answers like a bad signature: the answer does not say which channels exist.
    assert elsewhere.status_code == 401 and assert_error_shape(elsewhere)["code"] == "bad_signature"
    assert untouched is None
    assert accepted.status_code == 200, accepted.text
