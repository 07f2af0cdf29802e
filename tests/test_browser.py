"""The live console in a real headless Chromium: log in, pair WhatsApp in the sandbox, see QR and status.

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
from playwright.sync_api import Page, Route, expect, sync_playwright

from tests.conftest import ADMIN, create_database, drop_database
from tests.fakes.console_stack import Process, admin_token, fake_ollama_in_thread, start_backend, start_console

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


def keep_offline(page: Page) -> list[str]:
    """Refuse, and list, every request the page makes beyond loopback: a self-hosted console calls no one."""
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
