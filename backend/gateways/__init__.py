"""WhatsApp gateways: one interface (`base.Gateway`), one module per provider."""

from __future__ import annotations

import aiohttp
from databases import Database

from backend.errors import Invalid
from backend.gateways.base import Gateway
from backend.settings import Settings

PROVIDERS = ("sandbox", "waha", "evolution", "cloud")


def make_gateway(provider: str, settings: Settings, http: aiohttp.ClientSession, db: Database) -> Gateway:
    """The gateway for `provider`; the sandbox keeps its state in `db`, the others talk over `http`
    (the Cloud API with each channel's own token, from `ChannelRef.config`)."""
    if provider == "sandbox":
        from backend.gateways.sandbox import SandboxGateway

        return SandboxGateway(db)
    if provider == "waha":
        from backend.gateways.waha import WahaGateway

        return WahaGateway(settings, http)
    if provider == "evolution":
        from backend.gateways.evolution import EvolutionGateway

        return EvolutionGateway(settings, http)
    if provider == "cloud":
        from backend.gateways.cloud import CloudGateway

        return CloudGateway(settings, http)
    raise Invalid(f"Unknown gateway provider '{provider}' (one of {', '.join(PROVIDERS)}).", code="unknown_provider")
