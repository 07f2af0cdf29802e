"""A fake WAHA on loopback: accepts WAHA's real HTTP API and posts signed webhooks built from
the real payloads in tests/fixtures/gateways/waha/.

Use it from any test module:

    from tests.fakes.waha import fake_waha  # noqa: F401  (the pytest fixture)

    async def test_something(fake_waha):
        settings = make_settings(..., gateway_provider="waha", waha_url=fake_waha.url, public_base_url=backend_url)
        ...
        await fake_waha.scan("+15550100001")              # the phone scans: WORKING + session.status webhook
        await fake_waha.deliver_message("+15550109999", "hi", message_id="false_...", times=3)
        fake_waha.sent                                      # every POST /api/sendText body, in order
        fake_waha.fail_status = 503                         # every API call answers 503 (None = normal)
        fake_waha.hang = True                               # every API call hangs (the client times out)
        fake_waha.drop_webhooks = True                      # state changes without telling the backend
        await fake_waha.replay(fake_waha.deliveries[-1])    # a captured webhook sent again, byte for byte
        await fake_waha.deliver_media("+15550109999", b"OggS...", "audio/ogg; codecs=opus")  # GET media.url with the key
        await fake_waha.deliver_reaction("+15550109999", "true_...", "👍")
        fake_waha.files_fail = 1                            # the next file downloads answer 500

Sessions remember their `config.webhooks` (url, events, hmac key) as set by the backend; webhooks go
only to subscribed events, signed like WAHA Plus (X-Webhook-Hmac = hex HMAC-SHA512 of the raw body).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.servers import free_port, serve_aiohttp

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gateways"


def load_fixture(provider: str, name: str) -> Any:
    return json.loads((FIXTURES / provider / name).read_text())


def digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())


class FakeGatewayServer:
    """What both fakes share: an aiohttp app on loopback, failure switches, a request log."""

    def __init__(self, api_key: str = "") -> None:
        self.api_key = api_key
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.fail_status: int | None = None
        self.hang = False
        self.drop_webhooks = False
        self.requests: list[tuple[str, str]] = []
        self.sent: list[dict] = []
        self.calls: list[tuple[str, dict]] = []  # seen, typing, ...: (operation, body)
        self.webhooks: list[tuple[str, int]] = []  # (event, status the backend answered)
        self.deliveries: list[tuple[str, bytes, dict[str, str]]] = []  # (url, body, headers) as sent, to replay
        self._release = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    def authorised(self, request: web.Request) -> bool:
        raise NotImplementedError

    @web.middleware
    async def _switches(self, request: web.Request, handler):
        self.requests.append((request.method, request.path))
        if self.hang:
            try:
                await asyncio.wait_for(self._release.wait(), timeout=30)
            except TimeoutError:
                pass
            return web.json_response({"message": "too late"}, status=504)
        if self.fail_status is not None:
            return web.json_response({"statusCode": self.fail_status, "message": "fake gateway failure"}, status=self.fail_status)
        if not self.authorised(request):
            return web.json_response({"statusCode": 401, "message": "Unauthorized"}, status=401)
        return await handler(request)

    async def start(self) -> None:
        app = web.Application(middlewares=[self._switches])
        app.add_routes(self.routes())
        self._runner, _ = await serve_aiohttp(app, port=self.port)
        self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def replay(self, delivery: tuple[str, bytes, dict[str, str]]) -> tuple[int, dict]:
        """Send a recorded delivery again, byte for byte (what someone who captured it could do)."""
        assert self._client is not None
        url, body, headers = delivery
        async with self._client.post(url, data=body, headers={"Content-Type": "application/json", **headers}) as response:
            return response.status, await response.json()

    async def stop(self) -> None:
        self._release.set()
        await self.idle()
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def idle(self) -> None:
        """Wait until every webhook the fake started sending has been answered."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def in_background(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def post(self, url: str, body: bytes, headers: dict[str, str], event: str) -> int:
        assert self._client is not None
        self.deliveries.append((url, body, headers))
        async with self._client.post(url, data=body, headers={"Content-Type": "application/json", **headers}) as response:
            await response.read()
            self.webhooks.append((event, response.status))
            return response.status


class FakeWaha(FakeGatewayServer):
    def __init__(self, api_key: str = "") -> None:
        super().__init__(api_key)
        self.sessions: dict[str, dict] = {}
        self.messages: dict[tuple[str, str], list[dict]] = {}  # (session, chat) → newest last
        self.files: dict[str, tuple[bytes, str]] = {}  # file name under /api/files/ → (bytes, mimetype)
        self.files_fail = 0  # this many file downloads answer 500 first

    def authorised(self, request: web.Request) -> bool:
        return not self.api_key or request.headers.get("X-Api-Key") == self.api_key

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/sessions", self.create_session),
            web.get("/api/sessions/{name}", self.get_session),
            web.put("/api/sessions/{name}", self.update_session),
            web.delete("/api/sessions/{name}", self.delete_session),
            web.post("/api/sessions/{name}/{action:start|stop|restart|logout}", self.session_action),
            web.get("/api/sessions/{name}/me", self.get_me),
            web.get("/api/{name}/auth/qr", self.get_qr),
            web.post("/api/sendText", self.send_text),
            web.post("/api/sendSeen", self.record("send_seen")),
            web.post("/api/startTyping", self.record("start_typing")),
            web.post("/api/stopTyping", self.record("stop_typing")),
            web.get("/api/{name}/chats/{chat}/messages", self.chat_messages),
            web.post("/api/{name}/auth/request-code", self.request_code),
            web.get("/api/files/{file:.+}", self.get_file),
        ]

    # -- state --

    def session(self, name: str | None = None) -> dict:
        if name is None:
            assert self.sessions, "no WAHA session yet"
            return list(self.sessions.values())[-1]
        return self.sessions[name]

    def _set_status(self, session: dict, status: str) -> None:
        session["status"] = status
        if status == "SCAN_QR_CODE":
            session["qr"] = f"2@fake-waha-{secrets.token_urlsafe(12)},{secrets.token_urlsafe(16)}"
        self.in_background(self.send_status(session))

    def _start(self, session: dict) -> None:
        self._set_status(session, "WORKING" if session["me"] else "SCAN_QR_CODE")

    def _info(self, session: dict) -> dict:
        info = load_fixture("waha", "api.sessions.get.response.json")
        info.update(name=session["name"], status=session["status"], config=session["config"], me=session["me"])
        return info

    # -- API --

    async def create_session(self, request: web.Request) -> web.Response:
        body = await request.json()
        name = body.get("name") or "default"
        if name in self.sessions:
            return web.json_response({"statusCode": 422, "message": f"Session '{name}' already exists"}, status=422)
        session = {"name": name, "status": "STOPPED", "config": body.get("config") or {}, "me": None, "qr": None}
        self.sessions[name] = session
        if body.get("start", True):
            session["status"] = "STARTING"
            self._start(session)
        return web.json_response({"name": name, "status": session["status"], "config": session["config"]}, status=201)

    def _find(self, request: web.Request) -> dict | None:
        return self.sessions.get(request.match_info["name"])

    async def get_session(self, request: web.Request) -> web.Response:
        session = self._find(request)
        if session is None:
            return web.json_response({"statusCode": 404, "message": "Session not found"}, status=404)
        return web.json_response(self._info(session))

    async def update_session(self, request: web.Request) -> web.Response:
        session = self._find(request)
        if session is None:
            return web.json_response({"statusCode": 404, "message": "Session not found"}, status=404)
        session["config"] = (await request.json()).get("config") or {}
        return web.json_response(self._info(session))

    async def delete_session(self, request: web.Request) -> web.Response:
        if self.sessions.pop(request.match_info["name"], None) is None:
            return web.json_response({"statusCode": 404, "message": "Session not found"}, status=404)
        return web.json_response({})

    async def session_action(self, request: web.Request) -> web.Response:
        session = self._find(request)
        if session is None:
            return web.json_response({"statusCode": 404, "message": "Session not found"}, status=404)
        action = request.match_info["action"]
        if action == "stop":
            self._set_status(session, "STOPPED")
        elif action == "logout":
            session["me"] = None
            self._set_status(session, "SCAN_QR_CODE")  # WAHA starts over, waiting for a new scan
        else:
            self._start(session)
        return web.json_response({"name": session["name"], "status": session["status"]}, status=201)

    async def get_me(self, request: web.Request) -> web.Response:
        session = self._find(request)
        return web.json_response(session["me"] if session and session["status"] == "WORKING" else None)

    async def get_qr(self, request: web.Request) -> web.Response:
        session = self._find(request)
        if session is None or session["status"] != "SCAN_QR_CODE":
            status = session["status"] if session else "missing"
            return web.json_response({"statusCode": 422, "message": f"Session status is not as expected: {status}"}, status=422)
        if request.query.get("format") == "raw":
            return web.json_response({"value": session["qr"]})
        return web.json_response(load_fixture("waha", "api.auth.qr.base64.response.json"))

    async def send_text(self, request: web.Request) -> web.Response:
        body = await request.json()
        session = self.sessions.get(body.get("session"))
        if not body.get("chatId") or not isinstance(body.get("text"), str):
            return web.json_response({"statusCode": 400, "message": ["chatId and text are required"]}, status=400)
        if session is None or session["status"] != "WORKING":
            return web.json_response({"statusCode": 422, "message": "Session status is not as expected"}, status=422)
        self.sent.append(body)
        message = {
            "id": f"true_{body['chatId']}_{uuid.uuid4().hex.upper()[:20]}",
            "timestamp": int(time.time()),
            "from": session["me"]["id"],
            "fromMe": True,
            "to": body["chatId"],
            "body": body["text"],
            "hasMedia": False,
            "ack": 1,
        }
        self.messages.setdefault((session["name"], body["chatId"]), []).append(message)
        return web.json_response(message, status=201)

    def record(self, operation: str):
        async def handler(request: web.Request) -> web.Response:
            self.calls.append((operation, await request.json()))
            return web.json_response({}, status=201)

        return handler

    async def request_code(self, request: web.Request) -> web.Response:
        session = self._find(request)
        body = await request.json()
        if session is None or session["status"] != "SCAN_QR_CODE":
            status = session["status"] if session else "missing"
            return web.json_response({"statusCode": 422, "message": f"Session status is not as expected: {status}"}, status=422)
        if not str(body.get("phoneNumber") or "").isdigit():
            return web.json_response({"statusCode": 400, "message": ["phoneNumber must be digits"]}, status=400)
        self.calls.append(("request_code", body))
        return web.json_response(load_fixture("waha", "api.auth.request-code.response.json"))

    async def get_file(self, request: web.Request) -> web.Response:
        found = self.files.get(request.match_info["file"])
        if found is None:
            return web.json_response({"statusCode": 404, "message": "File not found"}, status=404)
        if self.files_fail > 0:
            self.files_fail -= 1
            return web.json_response({"statusCode": 500, "message": "file not ready"}, status=500)
        data, mimetype = found
        return web.Response(body=data, content_type=mimetype.split(";")[0])

    def add_file(self, data: bytes, mimetype: str, message_id: str) -> str:
        """Keep a media file as WAHA does; its URL as WAHA writes it (with WAHA's own idea of its
        address, not the one the backend uses)."""
        extension = {"audio": "oga", "image": "jpeg", "video": "mp4"}.get(mimetype.split("/")[0], "bin")
        name = f"{self.session()['name']}/{message_id}.{extension}"
        self.files[name] = (data, mimetype)
        return f"http://localhost:3000/api/files/{name}"

    async def deliver_media(
        self, sender: str, data: bytes, mimetype: str, caption: str = "", *, filename: str | None = None, times: int = 1
    ) -> tuple[dict, list[int]]:
        """A customer sends a file (with `caption` as its text): the payload sent, and the answers."""
        payload = self.message_payload(sender, caption)
        payload.update(
            hasMedia=True,
            media={
                "url": self.add_file(data, mimetype, payload["id"]),
                "mimetype": mimetype,
                "filename": filename,
                "error": None,
            },
        )
        payload["_data"]["type"] = "ptt" if mimetype.startswith("audio/ogg") else mimetype.split("/")[0]
        return payload, await self.send_webhook(self.session(), "message", payload, times=times)

    async def deliver_reaction(self, sender: str, message_id: str, emoji: str) -> list[int]:
        """A customer reacts to one of our messages ("" takes the reaction back)."""
        payload = copy.deepcopy(load_fixture("waha", "message.reaction.json")["payload"])
        chat = sender if "@" in sender else f"{digits(sender)}@c.us"
        me = (self.session()["me"] or {}).get("id", "0@c.us")
        payload.update(id=f"false_{chat}_{uuid.uuid4().hex.upper()[:20]}", to=me, participant=chat, timestamp=time.time())
        payload["from"] = chat
        payload["reaction"] = {"text": emoji, "messageId": message_id}
        return await self.send_webhook(self.session(), "message.reaction", payload)

    async def chat_messages(self, request: web.Request) -> web.Response:
        found = self.messages.get((request.match_info["name"], request.match_info["chat"]), [])
        limit = int(request.query.get("limit", "100"))
        return web.json_response(list(reversed(found))[:limit])

    # -- webhooks --

    async def send_webhook(
        self, session: dict, event: str, payload: Any, *, hmac_key: str | None = None, times: int = 1
    ) -> list[int]:
        """POST one event to every webhook of the session subscribed to it; the answers' statuses."""
        statuses = []
        if self.drop_webhooks:
            return statuses
        for hook in session["config"].get("webhooks") or []:
            events = hook.get("events") or []
            if event not in events and "*" not in events:
                continue
            envelope = {
                "id": f"evt_{uuid.uuid4().hex}",
                "timestamp": int(time.time() * 1000),
                "event": event,
                "session": session["name"],
                "metadata": session["config"].get("metadata") or {},
                "me": session["me"],
                "payload": payload,
                "engine": "WEBJS",
                "environment": {"version": "2024.10.1", "engine": "WEBJS", "tier": "PLUS"},
            }
            body = json.dumps(envelope).encode()
            headers = {"X-Webhook-Request-Id": uuid.uuid4().hex, "X-Webhook-Timestamp": str(envelope["timestamp"])}
            key = hmac_key if hmac_key is not None else (hook.get("hmac") or {}).get("key")
            if key:
                headers["X-Webhook-Hmac"] = hmac.new(key.encode(), body, hashlib.sha512).hexdigest()
                headers["X-Webhook-Hmac-Algorithm"] = "sha512"
            for _ in range(times):
                statuses.append(await self.post(hook["url"], body, headers, event))
        return statuses

    async def send_status(self, session: dict) -> list[int]:
        template = "session.status.WORKING.json" if session["status"] == "WORKING" else "session.status.SCAN_QR_CODE.json"
        payload = copy.deepcopy(load_fixture("waha", template)["payload"])
        payload.update(name=session["name"], status=session["status"])
        return await self.send_webhook(session, "session.status", payload)

    async def scan(self, phone: str, session: str | None = None) -> list[int]:
        """The phone scans the QR: the session turns WORKING as `phone` and says so."""
        found = self.session(session)
        found["me"] = {"id": f"{digits(phone)}@c.us", "pushName": "Fake phone"}
        found["status"] = "WORKING"
        return await self.send_status(found)

    async def expire_qr(self, session: str | None = None) -> list[int]:
        """Nobody scanned: WAHA turns the session FAILED by itself."""
        found = self.session(session)
        found["status"] = "FAILED"
        return await self.send_status(found)

    async def unlink(self, session: str | None = None) -> None:
        """The phone removed the linked device; with `drop_webhooks` the backend is not told."""
        found = self.session(session)
        found["me"] = None
        found["status"] = "FAILED"
        await self.send_status(found)

    def message_payload(self, sender: str, text: str, message_id: str | None = None, *, from_me: bool = False) -> dict:
        payload = copy.deepcopy(load_fixture("waha", "message.text.fromMe.json")["payload"])
        chat = sender if "@" in sender else f"{digits(sender)}@c.us"
        me = (self.session()["me"] or {}).get("id", "0@c.us")
        payload.update(
            id=message_id or f"{str(from_me).lower()}_{chat}_{uuid.uuid4().hex.upper()[:20]}",
            timestamp=int(time.time()) + 1,
            fromMe=from_me,
            body=text,
            **({"from": me, "to": chat, "source": "app"} if from_me else {"from": chat, "to": me}),
        )
        payload["_data"].update(notifyName="Customer", body=text)
        return payload

    async def deliver_message(
        self,
        sender: str,
        text: str,
        message_id: str | None = None,
        *,
        times: int = 1,
        session: str | None = None,
        hmac_key: str | None = None,
    ) -> list[int]:
        """A customer writes `text`; the `message` webhook is delivered `times` times."""
        payload = self.message_payload(sender, text, message_id)
        return await self.send_webhook(self.session(session), "message", payload, hmac_key=hmac_key, times=times)

    async def deliver_ack(self, message_id: str, ack: int = 3, session: str | None = None) -> list[int]:
        payload = copy.deepcopy(load_fixture("waha", "message.ack.json")["payload"])
        names = {-1: "ERROR", 0: "PENDING", 1: "SERVER", 2: "DEVICE", 3: "READ", 4: "PLAYED"}
        payload.update(id=message_id, ack=ack, ackName=names[ack])
        return await self.send_webhook(self.session(session), "message.ack", payload)


@asynccontextmanager
async def running_fake_waha(api_key: str = "") -> AsyncIterator[FakeWaha]:
    fake = FakeWaha(api_key)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def fake_waha() -> AsyncIterator[FakeWaha]:
    """A fake WAHA server on loopback (API key 'test-waha-key')."""
    async with running_fake_waha("test-waha-key") as fake:
        yield fake


@asynccontextmanager
async def backend_with_gateway(database_url: str, data_dir: Path, **overrides: Any) -> AsyncIterator[Any]:
    """The real backend on a port chosen first, so PUBLIC_BASE_URL (the webhooks' target) is
    right: `backend_with_gateway(database_url, tmp_path, gateway_provider="waha", waha_url=fake.url)`.
    Reconciliation is off unless `channel_reconcile_seconds` is given."""
    from backend.app import create_app
    from tests.conftest import make_settings
    from tests.servers import serve_app

    port = free_port()
    values = {"public_base_url": f"http://127.0.0.1:{port}", "channel_reconcile_seconds": 0, "gateway_timeout_seconds": 2}
    settings = make_settings(database_url, data_dir, **{**values, **overrides})
    app = create_app(settings, name=f"backend_{uuid.uuid4().hex[:8]}")
    async with serve_app(app, port=port) as running:
        yield running
