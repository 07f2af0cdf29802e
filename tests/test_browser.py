"""The live console in a real headless Chromium: log in, pair WhatsApp in the sandbox, see QR and status;
stay signed in across reloads and tabs; see who waits for a person.

Debian's chromium (`/usr/bin/chromium`, installed by the test script) driven by Playwright for
Python; a plain `chromium --screenshot` would not wait for Streamlit's JavaScript to render.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect, sync_playwright

from tests.conftest import ADMIN, create_database, drop_database
from tests.fakes.console_stack import Process, admin_token, fake_ollama_in_thread, start_backend, start_console, wait_for

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture
def live(pg_url: str, template_url: str, tmp_path: Path) -> Iterator[tuple[Process, Process]]:
    """Backend (sandbox gateway, fake Ollama) and `streamlit run console/app.py`, both on loopback."""
    assert shutil.which(CHROMIUM), "Debian's chromium is needed: apt-get install -y chromium (scripts/test.sh does it)"
    url = asyncio.run(create_database(pg_url))
    with fake_ollama_in_thread() as ollama:
        ollama.set_models(["llama3.2"])
        backend = start_backend(url, tmp_path, ollama_host=ollama.url)
        try:
            console = start_console(backend.url, tmp_path)
            try:
                yield backend, console
            finally:
                console.stop()
        finally:
            backend.stop()
            asyncio.run(drop_database(pg_url, url))


def keep_offline(page: Page | BrowserContext) -> list[str]:
    """Refuse, and list, every request the page (or every tab of a context) makes beyond loopback: a self-hosted
    console calls no one."""
    outside: list[str] = []

    def guard(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).scheme in ("http", "https", "ws", "wss") and urlsplit(url).hostname not in ("127.0.0.1", "localhost"):
            outside.append(url)
            route.abort()
        else:
            route.continue_()

    page.route("**/*", guard)
    return outside


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


def log_in(page: Page, console_url: str) -> None:
    page.goto(console_url)
    page.get_by_role("textbox", name="Email").fill(ADMIN["email"])
    page.get_by_role("textbox", name="Password").fill(ADMIN["password"])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible(timeout=30_000)


def test_operator_pairs_whatsapp_in_a_real_browser_and_sees_the_qr_and_status(live):
    backend, console = live
    with httpx.Client(base_url=backend.url, headers={"Authorization": f"Bearer {admin_token(backend.url)}"}) as api:
        assert api.post("/api/assistants", json={"name": "Corner Bakery", "model": "llama3.2"}).status_code == 201
    ARTIFACTS.mkdir(exist_ok=True)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            outside = keep_offline(page)
            log_in(page, console.url)
            # Client-side navigation keeps the Streamlit session (and so the login).
            page.get_by_test_id("stSidebarNav").get_by_text("WhatsApp", exact=True).click()
            expect(page.get_by_role("heading", name="WhatsApp")).to_be_visible(timeout=30_000)
            page.get_by_role("button", name="Connect WhatsApp").click()

            qr = page.get_by_test_id("stImage").locator("img")
            expect(qr).to_be_visible(timeout=30_000)
            badge = page.get_by_text("Waiting for QR scan", exact=True)
            expect(badge).to_be_visible()
            page.wait_for_function("img => img.complete && img.naturalWidth >= 200", arg=qr.element_handle())
            page.screenshot(path=str(ARTIFACTS / "console-whatsapp.png"), full_page=True)

            # The sandbox "phone" scans it; the live status switches by itself.
            page.get_by_role("textbox", name="Phone number to connect as").fill("+15550001234")
            page.get_by_role("button", name="Simulate scan").click()
            expect(page.get_by_text("Connected as +15550001234", exact=True)).to_be_visible(timeout=30_000)
            expect(qr).to_have_count(0)
            page.screenshot(path=str(ARTIFACTS / "console-whatsapp-connected.png"), full_page=True)
            assert not page.get_by_text("Traceback").count()
            # Every other page too: none may fetch a font, an icon or a script from the internet.
            for title in ("Overview", "Assistants", "Knowledge", "Knowledge gaps", "Conversations", "Account"):
                page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
                expect(page.get_by_role("heading", name=title).first).to_be_visible(timeout=30_000)
                page.wait_for_load_state("networkidle")
            assert not outside, f"the console reached beyond this machine: {outside}"
        finally:
            browser.close()

    assert (ARTIFACTS / "console-whatsapp.png").stat().st_size > 10_000


SESSION_COOKIE = "wa_console_session"


def session_cookie(context: BrowserContext) -> dict | None:
    return next((c for c in context.cookies() if c["name"] == SESSION_COOKIE), None)


def nav(page: Page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
    expect(page.get_by_role("heading", name=title).first).to_be_visible(timeout=30_000)


def test_a_reload_or_a_new_tab_stays_signed_in_on_its_page_until_logout_ends_it_everywhere(live, browser: Browser):
    _, console = live
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    outside = keep_offline(context)
    page = context.new_page()
    log_in(page, console.url)
    cookie = wait_for(lambda: session_cookie(context), timeout=30, what="the session cookie")
    # Kept where page scripts cannot read it, sent to this site only.
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert SESSION_COOKIE not in page.evaluate("document.cookie")
    assert cookie["expires"] > 0, "the cookie should expire with the token, not outlive it"

    nav(page, "Conversations")
    assert page.url.rstrip("/").endswith("/conversations")
    page.reload()
    expect(page.get_by_role("heading", name="Conversations")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("textbox", name="Password")).to_have_count(0)
    assert page.url.rstrip("/").endswith("/conversations")

    other_tab = context.new_page()
    other_tab.goto(f"{console.url}/inbox")
    expect(other_tab.get_by_role("heading", name="Needs a person")).to_be_visible(timeout=30_000)
    expect(other_tab.get_by_text(f"Signed in as {ADMIN['email']}")).to_be_visible()

    # Another browser that kept the same cookie, to see what a revoked one looks like there.
    elsewhere = browser.new_context()
    outside += keep_offline(elsewhere)
    elsewhere.add_cookies([cookie])

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("textbox", name="Password")).to_be_visible(timeout=30_000)
    wait_for(lambda: session_cookie(context) is None, timeout=30, what="the cookie to go on logout")
    page.reload()
    expect(page.get_by_role("textbox", name="Password")).to_be_visible(timeout=30_000)
    other_tab.reload()
    expect(other_tab.get_by_role("textbox", name="Password")).to_be_visible(timeout=30_000)

    revoked = elsewhere.new_page()
    revoked.goto(f"{console.url}/conversations")
    expect(revoked.get_by_text("You were signed out: your session ended")).to_be_visible(timeout=30_000)
    expect(revoked.get_by_role("textbox", name="Password")).to_be_visible()
    assert not revoked.get_by_text("Traceback").count()
    wait_for(lambda: session_cookie(elsewhere) is None, timeout=30, what="the revoked cookie to be dropped")
    assert not outside, f"the console reached beyond this machine: {outside}"


def test_the_needs_a_person_count_appears_after_a_customer_asks_for_one_in_the_sandbox(live, browser: Browser):
    backend, console = live
    with httpx.Client(base_url=backend.url, headers={"Authorization": f"Bearer {admin_token(backend.url)}"}) as api:
        assistant = api.post("/api/assistants", json={"name": "Corner Bakery", "model": "llama3.2"}).json()
        channel = api.post("/api/channels", json={"assistant_id": assistant["id"], "provider": "sandbox"}).json()
        assert api.post(f"/api/channels/{channel['id']}/sandbox/scan", json={"phone_number": "+15550001234"}).is_success

    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    outside = keep_offline(page)
    log_in(page, console.url)
    menu = page.get_by_test_id("stSidebarNav")
    expect(menu.get_by_text("Needs a person", exact=True)).to_be_visible()
    nav(page, "WhatsApp")
    page.get_by_role("textbox", name="Message").fill("I want a real person")
    page.get_by_role("button", name="Send as customer").click()
    expect(page.get_by_text("a person from our team will reply here shortly")).to_be_visible(timeout=30_000)
    expect(menu.get_by_text("Needs a person (1)", exact=True)).to_be_visible(timeout=30_000)

    menu.get_by_text("Needs a person (1)", exact=True).click()
    expect(page.get_by_text("Asked to talk to a person").first).to_be_visible(timeout=30_000)
    page.wait_for_load_state("networkidle")
    assert not page.get_by_text("Traceback").count()
    assert not outside, f"the console reached beyond this machine: {outside}"
