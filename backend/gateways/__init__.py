"""WhatsApp gateways: one interface (`base.Gateway`), one module per provider."""

from __future__ import annotations


def make_gateway(provider, settings, http, db):  # noqa: ANN001, ANN201
    raise NotImplementedError(provider)
