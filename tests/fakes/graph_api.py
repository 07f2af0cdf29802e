"""A fake of Meta's Graph API (the WhatsApp Cloud API part) on loopback: it accepts the real
calls with the real shapes (tests/fixtures/gateways/cloud/), checks the bearer token, serves media
bytes, injects Meta's errors, records what it received, and signs webhooks as Meta does.

    from tests.fakes.graph_api import fake_graph_api  # noqa: F401  (the pytest fixture)

    async def test_something(fake_graph_api):
        settings = Settings(..., cloud_api_url=fake_graph_api.url)          # version: fake_graph_api.version
        fake_graph_api.add_number("106540352242922", token="good-token")   # a number the token may use
        media_id = fake_graph_api.add_media(b"OggS...", "audio/ogg")        # GET /{id} → url → bytes
        fake_graph_api.fail_next_send(131047)                               # the next send is refused so
        fake_graph_api.expire_token("good-token")                           # every call now answers 190
        fake_graph_api.damage_downloads = True                              # media arrives truncated
        fake_graph_api.sent / .calls / .downloads                           # what the gateway sent
        body = message_webhook("106540352242922", "16505551234", "hi")      # a customer message, as Meta posts it
        headers = signed_headers(body, app_secret)                          # X-Hub-Signature-256
        await fake_graph_api.post_webhook(backend_url, body, app_secret, times=2)
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.fakes.waha import load_fixture
from tests.servers import free_port, serve_aiohttp

VERSION = "v23.0"
# Meta's error answers: code → (HTTP status, message, details), as its error-code reference words them.
ERRORS = {
    131047: (
        400,
        "(#131047) Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
    ),
    130429: (400, "(#130429) Rate limit hit", "Cloud API message throughput has been reached."),
    131056: (400, "(#131056) (Business Account, Consumer Account) pair rate limit hit", "Too many messages to this user."),
    100: (400, "Unsupported get request. Object with ID does not exist.", None),
}


def graph_error(code: int) -> web.Response:
    if code == 190:
        return web.json_response(load_fixture("cloud", "api.error.token.json"), status=401)
    status, message, details = ERRORS[code]
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": secrets.token_hex(6)}
    if details:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return web.json_response({"error": error}, status=status)


def sign(body: bytes, app_secret: str) -> str:
    """The X-Hub-Signature-256 value Meta sends with `body`."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def signed_headers(body: bytes, app_secret: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, app_secret)}


def _envelope(phone_number_id: str, value: dict) -> dict:
    """A fixture's envelope around `value`, for our number."""
    doc = load_fixture("cloud", "webhook.messages.text.json")
    change = doc["entry"][0]["changes"][0]
    metadata = {**change["value"]["metadata"], "phone_number_id": phone_number_id}
    change["value"] = {"messaging_product": "whatsapp", "metadata": metadata, **value}
    return doc


def message_webhook(
    phone_number_id: str,
    sender: str,
    text: str,
    message_id: str | None = None,
    *,
    user_id: str | None = None,
    name: str = "Sheena Nelson",
) -> bytes:
    """A customer's text message as Meta posts it (`user_id`: the business-scoped id, when given)."""
    contact: dict[str, Any] = {"profile": {"name": name}, "wa_id": sender}
    text_example = load_fixture("cloud", "webhook.messages.text.json")
    message = copy.deepcopy(text_example["entry"][0]["changes"][0]["value"]["messages"][0])
    message.update({"from": sender, "id": message_id or f"wamid.{uuid.uuid4().hex.upper()}", "timestamp": str(int(time.time()))})
    message["text"] = {"body": text}
    if user_id:
        contact["user_id"] = user_id
        message["from_user_id"] = user_id
    return json.dumps(_envelope(phone_number_id, {"contacts": [contact], "messages": [message]})).encode()


def status_webhook(phone_number_id: str, message_id: str, status: str, *, error_code: int | None = None) -> bytes:
    """A delivery status of one of our messages (`error_code` with status "failed")."""
    failed = load_fixture("cloud", "webhook.statuses.failed.131047.json")
    item = copy.deepcopy(failed["entry"][0]["changes"][0]["value"]["statuses"][0])
    item.update(id=message_id, status=status, timestamp=str(int(time.time())))
    if error_code is None:
        item.pop("errors", None)
    else:
        _, message, details = ERRORS.get(error_code, (400, f"Error {error_code}", None))
        item["errors"] = [{"code": error_code, "title": message.partition(") ")[2] or message, "message": message}]
        if details:
            item["errors"][0]["error_data"] = {"details": details}
    return json.dumps(_envelope(phone_number_id, {"statuses": [item]})).encode()


class FakeGraphApi:
    def __init__(self, version: str = VERSION) -> None:
        self.version = version
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.numbers: dict[str, dict] = {}  # phone_number_id → {token, display_phone_number, verified_name}
        self.expired: set[str] = set()
        self.media: dict[str, dict] = {}  # media id → {data, mime_type}
        self.sent: list[dict] = []  # every accepted message (POST .../messages of a message), in order
        self.calls: list[tuple[str, dict]] = []  # ("mark_read", body), ...
        self.downloads: list[str | None] = []  # the Authorization header of each media download
        self.requests: list[tuple[str, str]] = []
        self._failures: list[int] = []
        self.damage_downloads = False  # media downloads lose their last byte (a truncated transfer)
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None

    # -- set-up --

    def add_number(
        self, phone_number_id: str, *, token: str, display: str = "+1 555-078-3881", name: str = "Jasper's Market"
    ) -> None:
        self.numbers[phone_number_id] = {"token": token, "display_phone_number": display, "verified_name": name}

    def expire_token(self, token: str) -> None:
        self.expired.add(token)

    def add_media(self, data: bytes, mime_type: str = "audio/ogg") -> str:
        media_id = str(1003383421387256 + len(self.media))
        self.media[media_id] = {"data": data, "mime_type": mime_type}
        return media_id

    def fail_next_send(self, code: int, times: int = 1) -> None:
        """The next `times` POSTs of a message answer Meta's error `code` (131047, 130429, 131056, 190)."""
        self._failures.extend([code] * times)

    # -- server --

    async def start(self) -> None:
        app = web.Application(middlewares=[self._log])
        app.add_routes(
            [
                web.get("/media-download/{media_id}", self.download),
                web.get("/{version}/{object_id}", self.get_object),
                web.post("/{version}/{object_id}/messages", self.post_message),
            ]
        )
        self._runner, _ = await serve_aiohttp(app, port=self.port)
        self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _log(self, request: web.Request, handler):
        self.requests.append((request.method, request.path))
        return await handler(request)

    def _token(self, request: web.Request) -> str | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return token if scheme == "Bearer" and token else None

    def _authorised_for(self, request: web.Request, phone_number_id: str | None) -> bool:
        token = self._token(request)
        if token is None or token in self.expired:
            return False
        if phone_number_id is None:  # media: any token of the app
            return any(number["token"] == token for number in self.numbers.values())
        number = self.numbers.get(phone_number_id)
        return number is not None and number["token"] == token

    def _wrong_version(self, request: web.Request) -> web.Response | None:
        if request.match_info["version"] == self.version:
            return None
        error = {"message": f"Unknown path components: /{request.match_info['version']}", "type": "OAuthException", "code": 2500}
        return web.json_response({"error": error}, status=400)

    async def get_object(self, request: web.Request) -> web.Response:
        if (wrong := self._wrong_version(request)) is not None:
            return wrong
        object_id = request.match_info["object_id"]
        if object_id in self.media:
            if not self._authorised_for(request, request.query.get("phone_number_id")):
                return graph_error(190)
            media = self.media[object_id]
            answer = load_fixture("cloud", "api.media.get.response.json")
            answer.update(
                id=object_id,
                mime_type=media["mime_type"],
                file_size=len(media["data"]),
                sha256=base64.b64encode(hashlib.sha256(media["data"]).digest()).decode(),  # base64, as Meta gives it
                url=f"{self.url}/media-download/{object_id}?ext={int(time.time())}&hash={secrets.token_urlsafe(8)}",
            )
            return web.json_response(answer)
        if object_id not in self.numbers:
            return graph_error(100)
        if not self._authorised_for(request, object_id):
            return graph_error(190)
        answer = load_fixture("cloud", "api.phone_number.get.response.json")
        number = self.numbers[object_id]
        answer.update(id=object_id, display_phone_number=number["display_phone_number"], verified_name=number["verified_name"])
        return web.json_response(answer)

    async def post_message(self, request: web.Request) -> web.Response:
        if (wrong := self._wrong_version(request)) is not None:
            return wrong
        number_id = request.match_info["object_id"]
        if not self._authorised_for(request, number_id):
            return graph_error(190)
        body = await request.json()
        if body.get("messaging_product") != "whatsapp":
            return web.json_response({"error": {"message": "messaging_product is required", "code": 100}}, status=400)
        if body.get("status") == "read":
            if not str(body.get("message_id") or "").startswith("wamid."):
                return web.json_response({"error": {"message": "Invalid message_id", "code": 100}}, status=400)
            self.calls.append(("mark_read", body))
            return web.json_response({"success": True})
        text = (body.get("text") or {}).get("body") if body.get("type") == "text" else None
        target = body.get("to") or body.get("recipient")
        if not isinstance(text, str) or not text or len(text) > 4096 or not target:
            return web.json_response({"error": {"message": "(#100) Invalid parameter", "code": 100}}, status=400)
        if self._failures:
            return graph_error(self._failures.pop(0))
        self.sent.append(body)
        answer = load_fixture("cloud", "api.messages.send.response.json")
        key = "wa_id" if body.get("to") else "user_id"
        answer["contacts"] = [{"input": target, key: target}]
        answer["messages"] = [{"id": f"wamid.{uuid.uuid4().hex.upper()}"}]
        return web.json_response(answer)

    async def download(self, request: web.Request) -> web.Response:
        self.downloads.append(request.headers.get("Authorization"))
        media = self.media.get(request.match_info["media_id"])
        if media is None:
            return web.json_response({"error": {"message": "not found", "code": 100}}, status=404)
        if not self._authorised_for(request, None):
            return graph_error(190)
        data = media["data"][:-1] if self.damage_downloads else media["data"]
        return web.Response(body=data, content_type=media["mime_type"])

    # -- webhooks --

    async def post_webhook(self, url: str, body: bytes, app_secret: str, *, times: int = 1) -> list[int]:
        """POST a webhook body signed with `app_secret`, `times` times (Meta delivers at least once)."""
        assert self._client is not None
        statuses = []
        for _ in range(times):
            async with self._client.post(url, data=body, headers=signed_headers(body, app_secret)) as response:
                await response.read()
                statuses.append(response.status)
        return statuses


@asynccontextmanager
async def running_fake_graph_api(version: str = VERSION) -> AsyncIterator[FakeGraphApi]:
    fake = FakeGraphApi(version)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def fake_graph_api() -> AsyncIterator[FakeGraphApi]:
    """A fake Graph API on loopback, serving the WhatsApp Cloud API calls of version VERSION."""
    async with running_fake_graph_api() as fake:
        yield fake
