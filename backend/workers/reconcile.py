"""Reconciliation: ask the gateways about channels a missed webhook may have left wrong."""

from __future__ import annotations

import asyncio

import structlog

from backend.runtime import Runtime
from backend.services.channels import refresh_channel
from backend.store import channels as store

log = structlog.get_logger(__name__)


async def reconcile_once(rt: Runtime) -> int:
    """Check every pending, disconnected or silent channel once; returns how many changed."""
    changed = 0
    for channel in await store.channels_to_reconcile(rt.db, rt.settings.channel_stale_seconds):
        try:
            updated = await refresh_channel(rt, channel)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("reconcile.channel_failed", channel=channel.id)
            continue
        if (updated.status, updated.detail) != (channel.status, channel.detail):
            changed += 1
            log.info("reconcile.healed", channel=channel.id, status=updated.status, detail=updated.detail)
    return changed


async def reconcile_forever(rt: Runtime, interval: float) -> None:
    """A worker task (see runner.Workers): reconcile every `interval` seconds until cancelled."""
    while True:
        await asyncio.sleep(interval)
        try:
            await reconcile_once(rt)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("reconcile.failed")
