"""Schemathesis fuzzes every operation of the backend's own OpenAPI document, logged in.

What a user of the API would notice: no request, however odd, makes the server crash (500),
and every refusal is a JSON error `{"error": {"code", "message", "details"}}`.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from dataclasses import dataclass, field

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.transport import Response

from tests.conftest import login, make_settings
from tests.e2e_support import assert_error_shape
from tests.fakes.ollama import fake_ollama  # noqa: F401 - fixture

# Bounded so the whole test stays well under three minutes on two shared cores.
EXAMPLES_PER_OPERATION = 40


@pytest.fixture
def settings(database_url, tmp_path, fake_ollama):  # noqa: F811
    """The backend with the fake Ollama, so model routes (generate, pull, models) do real work."""
    return make_settings(database_url, tmp_path / "data", **fake_ollama.backend_settings())


@dataclass
class FuzzReport:
    failures: dict[str, str] = field(default_factory=dict)  # one line per distinct failure
    statuses: Counter = field(default_factory=Counter)
    requests: int = 0
    by_operation: Counter = field(default_factory=Counter)

    def check(self, label: str, response: Response) -> None:
        self.requests += 1
        self.statuses[response.status_code] += 1
        self.by_operation[f"{label} {response.status_code}"] += 1
        status = response.status_code
        if status < 400:
            return
        problem = _shape_problem(response)
        if status == 500 or (status >= 500 and problem):
            self.failures.setdefault(f"{label} -> {status}", f"{response.content[:300]!r} ({_curl_hint(response)})")
        elif problem:
            self.failures.setdefault(f"{label} -> {status} {problem}", f"{response.content[:300]!r} ({_curl_hint(response)})")


def _content_type(response: Response) -> str:
    values = {key.lower(): value for key, value in response.headers.items()}.get("content-type") or [""]
    return values[0] if isinstance(values, list) else values


def _curl_hint(response: Response) -> str:
    request = response.request
    body = request.body if isinstance(request.body, str) else (request.body or b"")[:200]
    return f"{request.method} {request.url} body={body!r}"


def _shape_problem(response: Response) -> str | None:
    if not _content_type(response).startswith("application/json"):
        return f"not JSON ({_content_type(response)})"
    try:
        body = json.loads(response.content)
    except ValueError:
        return "unparseable JSON"
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not {"code", "message", "details"} <= set(error):
        return "not the error shape"
    if not error["code"] or not isinstance(error["message"], str):
        return "empty code or message"
    return None


async def _seed(client: httpx.AsyncClient) -> dict[str, int]:
    """Real ids for path parameters, so the fuzzer reaches handlers and not only 404s."""
    known: dict[str, int] = {"operator_id": 1}
    assistant = (await client.post("/api/assistants", json={"name": "Fuzzed shop", "instructions": "Be brief."})).json()
    known["assistant_id"] = assistant["id"]
    upload = await client.post(
        f"/api/assistants/{assistant['id']}/documents",
        files={"files": ("faq.txt", b"Opening hours: 9 to 5.", "text/plain")},
    )
    assert upload.status_code == 201, upload.text
    known["document_id"] = upload.json()["items"][0]["id"]
    channel = await client.post("/api/channels", json={"assistant_id": assistant["id"], "provider": "sandbox"})
    assert channel.status_code == 201, channel.text
    known["channel_id"] = channel.json()["id"]
    await client.post(f"/api/channels/{known['channel_id']}/sandbox/scan", json={})
    sent = await client.post(
        f"/api/channels/{known['channel_id']}/sandbox/messages", json={"from": "+15550001", "text": "Hello?"}
    )
    assert sent.status_code == 200, sent.text
    contacts = (await client.get("/api/contacts")).json()["items"]
    known["contact_id"] = contacts[0]["id"]
    return known


def _fuzz(schema_dict: dict, base_url: str, token: str, known: dict[str, int]) -> FuzzReport:
    schema = schemathesis.openapi.from_dict(schema_dict)
    report = FuzzReport()
    session = requests.Session()
    headers = {"Authorization": f"Bearer {token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    # Deletes last: an early DELETE of the seeded assistant would turn every later case into a 404.
    for operation in sorted(operations, key=lambda op: (op.method.upper() == "DELETE", op.path, op.method)):
        names = re.findall(r"{(\w+)}", operation.path)
        fixed = {name: known[name] for name in names if name in known}
        strategies = [
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        ]
        if fixed:
            strategies += [
                operation.as_strategy(generation_mode=GenerationMode.POSITIVE, path_parameters=fixed),
                operation.as_strategy(generation_mode=GenerationMode.NEGATIVE, path_parameters=fixed),
            ]

        @hypothesis_settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=st.one_of(strategies))
        def exercise(case) -> None:  # schemathesis Case
            response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
            report.check(case.operation.label, response)

        exercise()
    return report


async def test_fuzzed_requests_never_crash_the_server_and_every_error_has_the_json_shape(backend):
    token = await login(backend)
    async with backend.client(token) as client:
        known = await _seed(client)
        schema_dict = (await client.get("/openapi.json")).json()
    assert len(schema_dict["paths"]) >= 5

    report = await asyncio.to_thread(_fuzz, schema_dict, backend.url, token, known)

    print(f"fuzz: {report.requests} requests, statuses {dict(sorted(report.statuses.items()))}")
    print(dict(sorted(report.by_operation.items())))
    assert report.requests >= len(schema_dict["paths"]) * 5
    assert not report.failures, "\n".join(f"{key}: {value}" for key, value in sorted(report.failures.items()))
    async with backend.client() as client:
        assert (await client.get("/readyz")).status_code == 200


async def test_ids_beyond_what_the_database_can_store_are_refused_not_crashed(api, backend):
    """Every route with an integer in its path answers 4xx for an id no bigint column can hold."""
    huge = str(2**70)
    crashed = []
    for route in backend.app.router.routes:
        if not any(param.cast is int for param in route.params.values()):
            continue
        url = "/" + re.sub(r"<\w+:int>", huge, route.path).lstrip("/")
        url = re.sub(r"<\w+(?::[^>]*)?>", "sample", url)
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            response = await api.request(method, url, json={})
            if response.status_code >= 500:
                crashed.append(f"{method} {url} -> {response.status_code}")
    huge_query = await api.get("/api/assistants", params={"offset": huge})
    if huge_query.status_code >= 500:
        crashed.append(f"GET /api/assistants?offset={huge} -> {huge_query.status_code}")
    assert not crashed, "\n".join(crashed)


async def test_text_with_a_nul_character_is_refused_not_crashed(api, backend):
    """PostgreSQL text cannot hold U+0000: the API must say so (4xx), not fall over (500)."""
    assistant = (await api.post("/api/assistants", json={"name": "Shop"})).json()
    attempts = [
        ("POST", "/api/auth/login", {"email": "admin\u0000@example.com", "password": "x"}),
        ("POST", "/api/assistants", {"name": "Sh\u0000op"}),
        ("PATCH", f"/api/assistants/{assistant['id']}", {"instructions": "Be\u0000 brief."}),
        ("POST", "/api/operators", {"email": "new\u0000@example.com", "password": "long-enough-password"}),
        ("POST", f"/api/assistants/{assistant['id']}/search", {"query": "open\u0000ing hours"}),
        ("GET", "/api/contacts?q=a%00b", None),
    ]
    crashed = []
    for method, url, body in attempts:
        response = await api.request(method, url, json=body)
        if response.status_code >= 500:
            crashed.append(f"{method} {url} -> {response.status_code}")
        elif response.status_code >= 400:
            assert_error_shape(response)
    assert not crashed, "\n".join(crashed)


@pytest.mark.parametrize(
    ("question", "answer"), [(" \u00a0", "\u3000"), ("\u2003", "Nine to five."), ("When do you open?", " \n\t ")]
)
async def test_blank_faq_entries_are_refused_and_leave_nothing_behind(api, question, answer):
    assistant = (await api.post("/api/assistants", json={"name": "Shop"})).json()["id"]
    response = await api.post(f"/api/assistants/{assistant}/faq", json={"question": question, "answer": answer})
    assert response.status_code == 400, response.text
    assert_error_shape(response)
    assert (await api.get(f"/api/assistants/{assistant}/documents")).json()["total"] == 0
