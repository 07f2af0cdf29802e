"""Which address an operator's browser connects from, so the backend's login throttle can tell operators apart."""

from __future__ import annotations

import ipaddress


def browser_address(forwarded_for: list[str], connecting_address: str | None, proxies_count: int) -> str | None:
    """The browser's address: with `proxies_count` = N > 0 proxies in front of the console, the N-th
    X-Forwarded-For entry from the right (the one the outermost trusted proxy saw; entries further
    left are whatever the browser claimed); with none, the connecting address. None when unknown."""
    if proxies_count > 0:
        entries = [entry.strip() for header in forwarded_for for entry in header.split(",")]
        candidate = entries[-proxies_count] if len(entries) >= proxies_count else None
    else:
        candidate = connecting_address
    if not isinstance(candidate, str):  # Streamlit's test runner gives a stand-in object
        return None
    try:
        return str(ipaddress.ip_address(candidate.strip()))
    except ValueError:
        return None
