"""Staying signed in across reloads and tabs: the operator's token kept in an http-only cookie.

A Streamlit script cannot answer an HTTP request, so the cookie is set by one route of the
console's own server (`routes()`, mounted by `console/app.py`): after a login the page posts a
one-time ticket there and the route answers with the cookie, so no page script ever holds the
token. A new session of that browser (a reload, another tab) reads it back with
`st.context.cookies`; the backend checks the token on every call, so any console process can.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from urllib.parse import urlsplit

import streamlit as st
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from console.config import console_settings

COOKIE = "wa_console_session"
ROUTE = "/console/session"
# A ticket is redeemed by the page within a second or two; an unredeemed one is worthless after this.
TICKET_SECONDS = 60.0
PENDING = "browser_session_pending"
CHECKED = "browser_session_checked"


class Tickets:
    """One-time tickets, each standing for one token for a minute, shared by this process's sessions and its route."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[str, int | None, float]] = {}

    def issue(self, token: str, max_age: int | None) -> str:
        ticket = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            self._items = {key: item for key, item in self._items.items() if item[2] > now}
            self._items[ticket] = (token, max_age, now + TICKET_SECONDS)
        return ticket

    def redeem(self, ticket: str) -> tuple[str, int | None] | None:
        with self._lock:
            item = self._items.pop(ticket, None)
        if item is None or item[2] <= time.monotonic():
            return None
        return item[0], item[1]


@st.cache_resource(show_spinner=False)
def tickets() -> Tickets:
    """The process's tickets: Streamlit's shared resource, the same object for the sessions' scripts and the route."""
    return Tickets()


def fingerprint(token: str) -> str:
    """Names a token without revealing it: what a page asks the route to forget."""
    return hashlib.sha256(token.encode()).hexdigest()


# -- in the page's script ---------------------------------------------------------------------


def remember(token: str, max_age: int | None) -> None:
    """After a login: have this browser keep the token for its next sessions (sent on this run's `apply_pending`)."""
    st.session_state[PENDING] = ("POST", tickets().issue(token, max_age))


def forget(token: str | None) -> None:
    """After a logout or a dead token: have this browser drop the cookie, if it still holds that token."""
    st.session_state[PENDING] = ("DELETE", fingerprint(token) if token else "")


def apply_pending() -> None:
    """The smallest script that has the browser call the route, drawn once (the token never appears in it)."""
    pending = st.session_state.pop(PENDING, None)
    if not pending:
        return
    method, body = pending
    options = json.dumps({"method": method, "body": body, "credentials": "same-origin"})
    st.html(f"<script>fetch({json.dumps(route_path())}, {options})</script>", unsafe_allow_javascript=True, width="content")


def kept_token() -> str | None:
    """The token this browser keeps, read on a session's first run only: later runs of the same session
    still see the cookie the page was opened with, even after logging out."""
    if st.session_state.get(CHECKED):
        return None
    st.session_state[CHECKED] = True
    kept = st.context.cookies.get(COOKIE)
    return kept if isinstance(kept, str) and kept else None  # no browser (AppTest): no cookie


# -- the route ----------------------------------------------------------------------------------


def route_path() -> str:
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}{ROUTE}" if base else ROUTE


def _same_origin(request: Request) -> bool:
    """Only the console's own pages may set or drop the cookie."""
    if request.headers.get("sec-fetch-site", "same-origin") != "same-origin":
        return False
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host")


def _over_https(request: Request) -> bool:
    if request.url.scheme == "https":
        return True
    # Behind a proxy that ends TLS (Render), the browser's scheme is in the proxy's header.
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip()
    return console_settings().console_proxies_count > 0 and proto == "https"


async def session_cookie(request: Request) -> Response:
    """POST a ticket: the cookie, http-only, for the token's life. DELETE a token's fingerprint: no cookie."""
    if not _same_origin(request):
        return Response("Cross-site requests are refused.", status_code=403)
    body = (await request.body()).decode("utf-8", "replace").strip()
    flags = {"path": "/", "secure": _over_https(request), "httponly": True, "samesite": "strict"}
    response = Response(status_code=204)
    if request.method == "DELETE":
        kept = request.cookies.get(COOKIE)
        # Another tab may have signed in since: drop the cookie only if it holds the token this page let go of.
        if kept and (not body or secrets.compare_digest(fingerprint(kept), body)):
            response.delete_cookie(COOKIE, **flags)
        return response
    redeemed = tickets().redeem(body)
    if redeemed is None:
        return Response("Unknown or used ticket.", status_code=404)
    token, max_age = redeemed
    response.set_cookie(COOKIE, token, max_age=max_age, **flags)
    return response


def routes() -> list[BaseRoute]:
    return [Route(route_path(), session_cookie, methods=["POST", "DELETE"])]
