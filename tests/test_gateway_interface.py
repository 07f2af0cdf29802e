"""Every gateway implements the whole Gateway interface, with the same parameters, so callers can
use any provider the same way (send_text's reply_to, download_media, request_pairing_code, ...)."""

from __future__ import annotations

import inspect

import pytest

from backend.gateways import PROVIDERS
from backend.gateways.base import Gateway
from backend.gateways.cloud import CloudGateway
from backend.gateways.evolution import EvolutionGateway
from backend.gateways.sandbox import SandboxGateway
from backend.gateways.waha import WahaGateway

IMPLEMENTATIONS = {"sandbox": SandboxGateway, "waha": WahaGateway, "evolution": EvolutionGateway, "cloud": CloudGateway}
METHODS = [name for name, value in vars(Gateway).items() if inspect.isfunction(value) and not name.startswith("_")]


def test_every_provider_has_an_implementation():
    assert set(PROVIDERS) == set(IMPLEMENTATIONS)


@pytest.mark.parametrize("provider", sorted(IMPLEMENTATIONS))
def test_each_gateway_has_every_method_with_the_interface_s_parameters(provider):
    implementation = IMPLEMENTATIONS[provider]
    assert implementation.name == provider
    assert hasattr(implementation, "reply_window")
    for method in METHODS:
        ours = inspect.signature(getattr(implementation, method))
        theirs = inspect.signature(getattr(Gateway, method))
        assert list(ours.parameters) == list(theirs.parameters), f"{provider}.{method}"
        assert [p.default for p in ours.parameters.values()] == [p.default for p in theirs.parameters.values()], method
        assert inspect.iscoroutinefunction(getattr(implementation, method)) == inspect.iscoroutinefunction(
            getattr(Gateway, method)
        ), f"{provider}.{method} async-ness"
