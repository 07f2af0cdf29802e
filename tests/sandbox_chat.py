"""A customer writing to an assistant through a paired sandbox channel: what the reply tests share."""

from __future__ import annotations

# Replies at once, nothing held back: no burst window, no typing pause, no channel rate limit.
POLICY = {
    "burst_window_seconds": 0,
    "typing_seconds_per_char": 0,
    "max_replies_per_channel_per_minute": 100000,
}


async def make_sandbox(api, **policies) -> tuple[int, int]:
    """An assistant with a ready sandbox channel: (assistant_id, channel_id)."""
    assistant = await api.post("/api/assistants", json={"name": "Shop", "policies": {**POLICY, **policies}})
    assert assistant.status_code == 201, assistant.text
    channel = await api.post("/api/channels", json={"assistant_id": assistant.json()["id"], "provider": "sandbox"})
    assert channel.status_code in (200, 201), channel.text
    channel_id = channel.json()["id"]
    scanned = await api.post(f"/api/channels/{channel_id}/sandbox/scan", json={})
    assert scanned.status_code == 200 and scanned.json()["status"] == "ready", scanned.text
    return assistant.json()["id"], channel_id


async def write(api, channel_id: int, text: str, *, sender: str = "+15550001", message_id: str | None = None) -> str:
    body = {"from": sender, "text": text, **({"id": message_id} if message_id else {})}
    response = await api.post(f"/api/channels/{channel_id}/sandbox/messages", json=body)
    assert response.status_code == 200, response.text
    return response.json()["outcome"]


async def outbox(api, channel_id: int) -> list[dict]:
    return (await api.get(f"/api/channels/{channel_id}/sandbox/outbox", params={"limit": 500})).json()["items"]
