"""Take the README's console screenshots: a seeded console on loopback, in headless Chromium.

    .venv/bin/python scripts/screenshots.py        # writes docs/console-*.png

Starts the backend (its embedded PostgreSQL in a temporary folder, the sandbox gateway, the test
suite's fake Ollama) and the console, seeds an assistant, a document and three customers through the
API and the sandbox phone, and two golden questions of which one regressed, then photographs the
overview, the assistant's golden questions, a thread with a degraded reply and the "Needs a person"
inbox. Needs the dev requirements and Debian's chromium (scripts/test.sh installs it).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

from tests.fakes.console_stack import admin_token, fake_ollama_in_thread, start_backend, start_console, wait_for  # noqa: E402
from tests.test_browser import CHROMIUM, CHROMIUM_FLAGS, keep_offline, log_in  # noqa: E402

DOCS = ROOT / "docs"
HOURS = b"""# Opening hours

We open at 7 am and close at 6 pm, Monday to Friday. On Saturdays we open at 8 am and close at 2 pm.
We are closed on Sundays.

# Orders

Cakes are ordered two days ahead, by phone or here on WhatsApp. A birthday cake for 10 people costs 32 euros.
"""


def seed(api: httpx.Client, ollama) -> None:  # the fake Ollama
    """One assistant with its document and WhatsApp number, and three customers: answered, degraded, waiting."""
    assistant = api.post(
        "/api/assistants", json={"name": "Corner Bakery", "model": "llama3.2", "policies": {"burst_window_seconds": 0}}
    ).json()
    files = [("files", ("opening-hours.md", HOURS, "text/markdown"))]
    assert api.post(f"/api/assistants/{assistant['id']}/documents", files=files).status_code == 201
    documents = f"/api/assistants/{assistant['id']}/documents"
    wait_for(lambda: all(d["status"] == "ready" for d in api.get(documents).json()["items"]), what="the document indexed")
    channel = api.post("/api/channels", json={"assistant_id": assistant["id"], "provider": "sandbox"}).json()
    assert api.post(f"/api/channels/{channel['id']}/sandbox/scan", json={"phone_number": "+15550001234"}).is_success

    def customer_writes(sender: str, text: str, replies: int) -> None:
        sent = api.post(f"/api/channels/{channel['id']}/sandbox/messages", json={"from": sender, "text": text})
        assert sent.is_success, sent.text

        def answered() -> bool:
            found = api.get("/api/contacts", params={"q": sender.lstrip("+")}).json()
            items = found["items"] if isinstance(found, dict) else found
            if not items:
                return False
            thread = api.get(f"/api/contacts/{items[0]['id']}/messages").json()
            return sum(m["direction"] == "out" for m in thread["items"]) >= replies

        wait_for(answered, timeout=60, what=f"the reply to {sender}")

    ollama.reply = "We open at 7 am on weekdays and at 8 am on Saturdays [1]."
    customer_writes("+15557770001", "Hello! When do you open on Saturday?", 1)
    ollama.fail_status = 500  # Ollama answers with an error: the customer gets the best passage instead
    customer_writes("+15557770002", "How much is a birthday cake for 10 people?", 1)
    ollama.fail_status = None
    customer_writes("+15557770003", "I want to talk to a real person please", 1)
    seed_golden(api, ollama, assistant["id"])


def seed_golden(api: httpx.Client, ollama, assistant_id: int) -> None:  # the fake Ollama
    """Two golden questions, a run, then new instructions after which the Saturday hours are lost: a regression."""
    base = f"/api/assistants/{assistant_id}"
    for question, fact in (("When do you open on Saturday?", "8 am"), ("How much is a birthday cake for 10 people?", "32 euros")):
        assert api.post(f"{base}/golden", json={"question": question, "must_contain": [fact]}).is_success

    def runs_over(count: int) -> bool:
        runs = api.get(f"{base}/golden/runs").json()["items"]
        return len(runs) >= count and all(r["status"] in ("done", "failed") for r in runs)

    ollama.reply = "A birthday cake for 10 people costs 32 euros [1]. We open at 8 am on Saturdays [1]."
    assert api.post(f"{base}/golden/run").is_success
    wait_for(lambda: runs_over(1), timeout=60, what="the first golden run")
    ollama.reply = "A birthday cake for 10 people costs 32 euros [1]."
    assert api.patch(base, json={"instructions": "Answer in one short sentence."}).is_success
    wait_for(lambda: runs_over(2), timeout=60, what="the golden run after the new instructions")


def photograph(page: Page, console_url: str) -> None:
    log_in(page, console_url)
    menu = page.get_by_test_id("stSidebarNav")
    page.wait_for_load_state("networkidle")
    expect(page.get_by_text("Corner Bakery").first).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("stMetric")).to_have_count(4, timeout=30_000)
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(4, timeout=30_000)  # messages, outcomes, reactions, reply time
    for chart in page.get_by_test_id("stVegaLiteChart").all():
        expect(chart.locator("canvas, svg").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("regressed after the instructions changed").first).to_be_visible(timeout=30_000)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(DOCS / "console-overview.png"), full_page=True)

    menu.get_by_text("Assistants", exact=True).click()
    page.get_by_role("tab", name="Golden questions").click()
    expect(page.get_by_text("Regression: passed before, fails now").first).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("stVegaLiteChart").first.locator("canvas, svg").first).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("stDataFrame").first.locator("canvas").first).to_be_visible(timeout=30_000)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(DOCS / "console-golden.png"), full_page=True)

    menu.get_by_text("Conversations", exact=True).click()
    expect(page.get_by_role("heading", name="Conversations")).to_be_visible(timeout=30_000)
    page.get_by_role("button", name="15557770002").first.click()
    expect(page.get_by_text("so the best passage from the documents was sent instead").first).to_be_visible(timeout=30_000)
    expect(page.get_by_role("textbox", name="Reply as a person")).to_be_visible(timeout=30_000)
    page.get_by_text("Sources and trace").click()  # the passages and timings behind the reason
    expect(page.get_by_text("Passages found for the question").first).to_be_visible(timeout=30_000)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(DOCS / "console-degraded-reply.png"), full_page=True)

    menu.get_by_text("Needs a person (1)", exact=True).click()
    expect(page.get_by_text("Asked to talk to a person").first).to_be_visible(timeout=30_000)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(DOCS / "console-inbox.png"), full_page=True)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="console-screenshots-") as folder, fake_ollama_in_thread() as ollama:
        workdir = Path(folder)
        ollama.set_models(["llama3.2"])
        backend = start_backend(None, workdir, ollama_host=ollama.url)
        try:
            console = start_console(backend.url, workdir)
            try:
                with httpx.Client(
                    base_url=backend.url, headers={"Authorization": f"Bearer {admin_token(backend.url)}"}, timeout=120
                ) as api:
                    seed(api, ollama)
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
                    try:
                        page = browser.new_page(viewport={"width": 1400, "height": 1000})
                        outside = keep_offline(page)
                        photograph(page, console.url)
                        assert not outside, f"the console reached beyond this machine: {outside}"
                    finally:
                        browser.close()
            finally:
                console.stop()
        finally:
            backend.stop()
    for name in ("console-overview.png", "console-golden.png", "console-degraded-reply.png", "console-inbox.png"):
        print(f"docs/{name}: {(DOCS / name).stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
