"""A fake Evolution API v2 on loopback: accepts its real HTTP API and posts webhooks built from
the real payloads in tests/fixtures/gateways/evolution/.

Use it from any test module:

    from tests.fakes.evolution import fake_evolution  # noqa: F401  (the pytest fixture)

    async def test_something(fake_evolution):
        settings = make_settings(..., gateway_provider="evolution", evolution_url=fake_evolution.url, ...)
        await fake_evolution.scan("+15550100001")            # connection.update open
        await fake_evolution.deliver_message("+15550109999", "hi", message_id="3EB0...", times=3)
        fake_evolution.sent                                   # every POST /message/sendText body (+ "instance")
        fake_evolution.fail_status = 500 / .hang = True / .drop_webhooks = True
        await fake_evolution.replay(fake_evolution.deliveries[-1])  # a captured webhook sent again
        await fake_evolution.deliver_media("+15550109999", b"OggS...", "audio/ogg; codecs=opus")  # base64 inline when the
                                                              # webhook says base64:true, else getBase64FromMediaMessage
        await fake_evolution.deliver_reaction("+15550109999", "BAE5...", "👍")

Webhooks carry the headers set with POST /webhook/set; a `jwt_key` header is replaced, as Evolution
does, by `Authorization: Bearer <HS256 JWT>` signed with it.
"""

from __future__ import annotations

import base64
import copy
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from aiohttp import web

from tests.fakes.waha import FakeGatewayServer, digits, load_fixture


def _error(status: int, message: str) -> web.Response:
    names = {400: "Bad Request", 403: "Forbidden", 404: "Not Found"}
    return web.json_response(
        {"status": status, "error": names.get(status, "Error"), "response": {"message": [message]}}, status=status
    )


class FakeEvolution(FakeGatewayServer):
    def __init__(self, api_key: str = "") -> None:
        super().__init__(api_key)
        self.instances: dict[str, dict] = {}
        self.media: dict[str, tuple[bytes, str, str]] = {}  # message id → (bytes, mimetype, Baileys type)
        self.media_fail = 0  # this many getBase64FromMediaMessage calls answer 500 first

    def authorised(self, request: web.Request) -> bool:
        return not self.api_key or request.headers.get("apikey") == self.api_key

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/instance/create", self.create_instance),
            web.get("/instance/connect/{name}", self.connect),
            web.get("/instance/connectionState/{name}", self.connection_state),
            web.get("/instance/fetchInstances", self.fetch_instances),
            web.post("/instance/restart/{name}", self.restart),
            web.delete("/instance/logout/{name}", self.logout),
            web.delete("/instance/delete/{name}", self.delete),
            web.post("/webhook/set/{name}", self.set_webhook),
            web.post("/message/sendText/{name}", self.send_text),
            web.post("/chat/markMessageAsRead/{name}", self.record("mark_read")),
            web.post("/chat/sendPresence/{name}", self.record("send_presence")),
            web.post("/chat/findMessages/{name}", self.find_messages),
            web.post("/chat/getBase64FromMediaMessage/{name}", self.get_base64),
        ]

    def instance(self, name: str | None = None) -> dict:
        if name is None:
            assert self.instances, "no Evolution instance yet"
            return list(self.instances.values())[-1]
        return self.instances[name]

    def _find(self, request: web.Request) -> dict | None:
        return self.instances.get(request.match_info["name"])

    def _new_qr(self, instance: dict) -> None:
        instance["state"] = "connecting"
        instance["code"] = f"2@fake-evolution-{secrets.token_urlsafe(12)},{secrets.token_urlsafe(16)}"
        self.in_background(self.send_event(instance, "qrcode.updated", {"qrcode": self._qr_body(instance)}))

    def _qr_body(self, instance: dict) -> dict:
        return {
            "instance": instance["name"],
            "pairingCode": None,
            "code": instance["code"],
            "base64": "data:image/png;base64,iVBOR",
        }

    # -- API --

    async def create_instance(self, request: web.Request) -> web.Response:
        body = await request.json()
        name = body.get("instanceName")
        if not name:
            return _error(400, "instanceName is required")
        if name in self.instances:
            return _error(403, f'This name "{name}" is already in use.')
        instance = {"name": name, "state": "close", "owner": None, "code": None, "webhook": {}, "messages": []}
        self.instances[name] = instance
        answer = load_fixture("evolution", "api.instance.create.response.qrcode-count0.json")
        answer["instance"].update(instanceName=name, instanceId=str(uuid.uuid4()), status="connecting")
        if body.get("qrcode"):
            instance["state"] = "connecting"  # the QR comes a moment later (v2 answers {"count": 0})
        return web.json_response(answer, status=201)

    async def connect(self, request: web.Request) -> web.Response:
        instance = self._find(request)
        if instance is None:
            return _error(404, f'The "{request.match_info["name"]}" instance does not exist')
        if instance["state"] == "open":
            return web.json_response({"instance": {"instanceName": instance["name"], "state": "open"}})
        self._new_qr(instance)
        number = request.query.get("number")
        if number:  # a pairing code for that number, with the QR beside it (v2 answers a list)
            self.calls.append(("pairing_code", {"number": number}))
            answer = load_fixture("evolution", "api.instance.connect.response.pairing.json")
            answer[0].update(code=instance["code"])
            return web.json_response(answer)
        answer = load_fixture("evolution", "api.instance.connect.response.json")
        answer.update(code=instance["code"], base64="data:image/png;base64,iVBOR")
        return web.json_response(answer)

    async def connection_state(self, request: web.Request) -> web.Response:
        instance = self._find(request)
        if instance is None:
            return _error(404, f'The "{request.match_info["name"]}" instance does not exist')
        answer = load_fixture("evolution", "api.instance.connectionState.open.response.json")
        answer["instance"].update(instanceName=instance["name"], state=instance["state"])
        return web.json_response(answer)

    async def fetch_instances(self, request: web.Request) -> web.Response:
        template = load_fixture("evolution", "api.instance.fetchInstances.response.json")[0]
        wanted = request.query.get("instanceName")
        answer = []
        for instance in self.instances.values():
            if wanted and instance["name"] != wanted:
                continue
            item = copy.deepcopy(template)
            item["instance"].update(
                instanceName=instance["name"],
                owner=instance["owner"],
                status="open" if instance["state"] == "open" else "close",
            )
            answer.append(item)
        return web.json_response(answer)

    async def restart(self, request: web.Request) -> web.Response:
        instance = self._find(request)
        if instance is None:
            return _error(404, "instance does not exist")
        return web.json_response({"instance": {"instanceName": instance["name"], "state": instance["state"]}})

    async def logout(self, request: web.Request) -> web.Response:
        instance = self._find(request)
        if instance is None:
            return _error(404, "instance does not exist")
        if instance["state"] != "open":
            return _error(400, f'The "{instance["name"]}" instance is not connected')
        instance.update(state="close", owner=None)
        self.in_background(self.send_connection(instance, "close", 401))
        return web.json_response(load_fixture("evolution", "api.instance.logout.response.json"))

    async def delete(self, request: web.Request) -> web.Response:
        if self.instances.pop(request.match_info["name"], None) is None:
            return _error(404, "instance does not exist")
        return web.json_response({"status": "SUCCESS", "error": False, "response": {"message": "Instance deleted"}})

    async def set_webhook(self, request: web.Request) -> web.Response:
        instance = self._find(request)
        if instance is None:
            return _error(404, "instance does not exist")
        webhook = (await request.json()).get("webhook")
        if not isinstance(webhook, dict) or not webhook.get("url"):
            return _error(400, "webhook.url is required")
        instance["webhook"] = webhook
        answer = load_fixture("evolution", "api.webhook.set.response.json")
        answer["webhook"].update(instanceName=instance["name"])
        answer["webhook"]["webhook"].update(url=webhook["url"], events=webhook.get("events"), enabled=webhook.get("enabled"))
        return web.json_response(answer, status=201)

    async def send_text(self, request: web.Request) -> web.Response:
        instance = self._find(request)
        body = await request.json()
        if instance is None:
            return _error(404, "instance does not exist")
        if not body.get("number") or not isinstance(body.get("text"), str):
            return _error(400, "number and text are required")
        if instance["state"] != "open":
            return _error(400, "Connection Closed")
        self.sent.append({**body, "instance": instance["name"]})
        answer = load_fixture("evolution", "api.message.sendText.response.json")
        jid = body["number"] if "@" in body["number"] else f"{digits(body['number'])}@s.whatsapp.net"
        answer["key"].update(remoteJid=jid, id=f"BAE5{uuid.uuid4().hex[:12].upper()}")
        answer["message"]["extendedTextMessage"]["text"] = body["text"]
        answer["messageTimestamp"] = str(int(time.time()))
        instance["messages"].append(answer)
        return web.json_response(answer, status=201)

    def record(self, operation: str):
        async def handler(request: web.Request) -> web.Response:
            self.calls.append((operation, await request.json()))
            if operation == "mark_read":
                return web.json_response(load_fixture("evolution", "api.chat.markMessageAsRead.response.json"), status=201)
            return web.json_response({}, status=201)

        return handler

    async def find_messages(self, request: web.Request) -> web.Response:
        instance = self._find(request)
        body = await request.json()
        jid = ((body.get("where") or {}).get("key") or {}).get("remoteJid")
        found = [m for m in reversed(instance["messages"] if instance else []) if m["key"]["remoteJid"] == jid]
        return web.json_response({"messages": {"total": len(found), "pages": 1, "currentPage": 1, "records": found}})

    async def get_base64(self, request: web.Request) -> web.Response:
        body = await request.json()
        message_id = ((body.get("message") or {}).get("key") or {}).get("id")
        found = self.media.get(message_id) if self._find(request) else None
        if found is None:
            return _error(400, "Message not found")
        if self.media_fail > 0:
            self.media_fail -= 1
            return _error(500, "Error downloading media")
        data, mimetype, kind = found
        return web.json_response(
            {
                "mediaType": kind.removesuffix("Message"),
                "fileName": f"{message_id}.bin",
                "size": {"fileLength": str(len(data))},
                "mimetype": mimetype,
                "base64": base64.b64encode(data).decode(),
            },
            status=201,
        )

    # -- webhooks --

    async def send_event(self, instance: dict, event: str, data: Any, *, secret: str | None = None, times: int = 1) -> list[int]:
        """POST one event as Evolution does (lower-case dotted name, envelope, configured headers)."""
        webhook = instance["webhook"]
        subscribed = {name.lower().replace("_", ".") for name in webhook.get("events") or []}
        if self.drop_webhooks or not webhook.get("enabled") or event not in subscribed:
            return []
        envelope = {
            "event": event,
            "instance": instance["name"],
            "data": data,
            "destination": webhook["url"],
            "date_time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "sender": instance["owner"],
            "server_url": self.url,
            "apikey": None,
        }
        headers = {str(k): str(v) for k, v in (webhook.get("headers") or {}).items()}
        jwt_key = headers.pop("jwt_key", None)
        if secret is not None:  # a forged delivery
            headers = {"x-webhook-secret": secret} if headers.get("x-webhook-secret") else {}
            jwt_key = secret if jwt_key else None
        if jwt_key:
            now = int(time.time())
            token = jwt.encode({"iat": now, "exp": now + 600, "app": "evolution", "action": "webhook"}, jwt_key, "HS256")
            headers["Authorization"] = f"Bearer {token}"
        body = json.dumps(envelope).encode()
        return [await self.post(webhook["url"], body, headers, event) for _ in range(times)]

    async def send_connection(self, instance: dict, state: str, reason: int) -> list[int]:
        data: dict[str, Any] = {"instance": instance["name"], "state": state, "statusReason": reason}
        if state == "open":
            data.update(wuid=instance["owner"], profileName="Fake phone", profilePictureUrl=None)
        return await self.send_event(instance, "connection.update", data)

    async def scan(self, phone: str, instance: str | None = None) -> list[int]:
        found = self.instance(instance)
        found.update(state="open", owner=f"{digits(phone)}@s.whatsapp.net", code=None)
        return await self.send_connection(found, "open", 200)

    async def expire_qr(self, instance: str | None = None) -> list[int]:
        """The QR limit is reached: Evolution gives up and says so twice."""
        found = self.instance(instance)
        found.update(state="close", code=None)
        limit = {"message": "QR code limit reached, please login again", "statusCode": 428}
        return await self.send_event(found, "qrcode.updated", limit) + await self.send_connection(found, "refused", 428)

    async def unlink(self, instance: str | None = None) -> list[int]:
        found = self.instance(instance)
        found.update(state="close", owner=None)
        return await self.send_connection(found, "close", 401)

    def message_data(self, sender: str, text: str, message_id: str | None = None) -> dict:
        data = copy.deepcopy(load_fixture("evolution", "messages.upsert.fromMe.json")["data"])
        jid = sender if "@" in sender else f"{digits(sender)}@s.whatsapp.net"
        data["key"] = {"remoteJid": jid, "fromMe": False, "id": message_id or uuid.uuid4().hex.upper()[:32]}
        data.update(
            pushName="Customer",
            message={"conversation": text},
            messageType="conversation",
            messageTimestamp=int(time.time()) + 1,
            owner=self.instance()["name"],
        )
        return data

    async def deliver_message(
        self,
        sender: str,
        text: str,
        message_id: str | None = None,
        *,
        times: int = 1,
        instance: str | None = None,
        secret: str | None = None,
    ) -> list[int]:
        found = self.instance(instance)
        return await self.send_event(
            found, "messages.upsert", self.message_data(sender, text, message_id), secret=secret, times=times
        )

    async def deliver_media(
        self,
        sender: str,
        data: bytes,
        mimetype: str,
        caption: str = "",
        *,
        kind: str = "audioMessage",
        message_id: str | None = None,
        times: int = 1,
    ) -> tuple[dict, list[int]]:
        """A customer sends a file: kept for getBase64FromMediaMessage, and inline as `message.base64`
        when the webhook was set with base64 true (as Evolution does)."""
        found = self.instance()
        item = self.message_data(sender, caption, message_id)
        part: dict[str, Any] = {"mimetype": mimetype, "fileLength": str(len(data)), "mediaKey": "bWVkaWEta2V5"}
        if kind == "audioMessage":
            part.update(ptt=True, seconds=3)
        if caption:
            part["caption"] = caption
        item.update(message={kind: part}, messageType=kind)
        if found["webhook"].get("base64"):
            item["message"]["base64"] = base64.b64encode(data).decode()
        self.media[item["key"]["id"]] = (data, mimetype, kind)
        return item, await self.send_event(found, "messages.upsert", item, times=times)

    async def deliver_reaction(self, sender: str, message_id: str, emoji: str) -> list[int]:
        """A customer reacts to `message_id` ("" takes the reaction back): a Baileys reactionMessage."""
        found = self.instance()
        item = self.message_data(sender, "")
        target = {"remoteJid": item["key"]["remoteJid"], "fromMe": True, "id": message_id}
        reaction = {"key": target, "text": emoji, "senderTimestampMs": str(int(time.time() * 1000))}
        item.update(message={"reactionMessage": reaction}, messageType="reactionMessage")
        return await self.send_event(found, "messages.upsert", item)


@asynccontextmanager
async def running_fake_evolution(api_key: str = "") -> AsyncIterator[FakeEvolution]:
    fake = FakeEvolution(api_key)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def fake_evolution() -> AsyncIterator[FakeEvolution]:
    """A fake Evolution API server on loopback (API key 'test-evolution-key')."""
    async with running_fake_evolution("test-evolution-key") as fake:
        yield fake
