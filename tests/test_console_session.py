"""The console's own HTTP route that keeps an operator signed in: an http-only cookie, set from a
one-time ticket and dropped only for the token it holds, for the console's pages only.

The route is served by Starlette in-process (its test client speaks real HTTP semantics to the ASGI
app); the whole story in a browser is in `tests/test_browser.py`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from console import browser_session

HOST = "console.example"
SAME_SITE = {"Origin": f"http://{HOST}", "Sec-Fetch-Site": "same-origin"}


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(Starlette(routes=browser_session.routes()), base_url=f"http://{HOST}") as test_client:
        yield test_client


def test_a_ticket_becomes_an_http_only_strict_cookie_once(client: TestClient):
    ticket = browser_session.tickets().issue("the-token", 3600)
    response = client.post(browser_session.ROUTE, content=ticket, headers=SAME_SITE)
    assert response.status_code == 204
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{browser_session.COOKIE}=the-token;")
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/", "max-age=3600"} <= flags
    assert "secure" not in flags  # plain http on this machine: a Secure cookie would never come back

    again = client.post(browser_session.ROUTE, content=ticket, headers=SAME_SITE)
    assert again.status_code == 404 and "set-cookie" not in again.headers
    assert client.post(browser_session.ROUTE, content="guessed", headers=SAME_SITE).status_code == 404


def test_over_https_behind_a_proxy_the_cookie_is_secure(client: TestClient, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CONSOLE_PROXIES_COUNT", "1")
    ticket = browser_session.tickets().issue("the-token", 60)
    response = client.post(browser_session.ROUTE, content=ticket, headers=SAME_SITE | {"X-Forwarded-Proto": "https"})
    assert "secure" in {part.strip().lower() for part in response.headers["set-cookie"].split(";")}


def test_another_site_can_neither_set_nor_drop_the_cookie(client: TestClient):
    ticket = browser_session.tickets().issue("the-token", 60)
    for headers in ({"Origin": "https://elsewhere.example", "Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}):
        refused = client.post(browser_session.ROUTE, content=ticket, headers=headers)
        assert refused.status_code == 403 and "set-cookie" not in refused.headers
    client.cookies.set(browser_session.COOKIE, "the-token")
    assert client.delete(browser_session.ROUTE, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403


def test_the_cookie_is_dropped_only_for_the_token_it_holds(client: TestClient):
    client.cookies.set(browser_session.COOKIE, "newer-token")
    # A tab that still had an older, dead token lets it go: the newer sign-in of another tab stays.
    stale = client.request("DELETE", browser_session.ROUTE, content=browser_session.fingerprint("older-token"), headers=SAME_SITE)
    assert stale.status_code == 204 and "set-cookie" not in stale.headers
    ended = client.request("DELETE", browser_session.ROUTE, content=browser_session.fingerprint("newer-token"), headers=SAME_SITE)
    assert ended.status_code == 204
    dropped = ended.headers["set-cookie"].lower()
    assert dropped.startswith(f'{browser_session.COOKIE}="";') and "max-age=0" in dropped
