"""Roles, accounts and logging out in the console, through Streamlit's AppTest against a real backend on loopback.

Every test logs in through the login page as an account of its own: logging out or changing a
password ends all of that account's sessions, so no test may share its token with another.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from console.addresses import browser_address
from console.api import Api, ApiError, forwarded
from tests.fakes.console_stack import Process, admin_token, backend_on_new_database, wait_for
from tests.test_console_pages import new_assistant, ready_channel, select_assistant

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "console" / "main.py")
FORWARDED_SECRET = "console-accounts-forwarded-secret"
PASSWORD = "operator-password-1"
LOGIN_PAGE = ["WhatsApp assistants"]


@pytest.fixture(scope="module")
def stack(pg_url: str, template_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    with backend_on_new_database(
        pg_url, tmp_path_factory.mktemp("accounts"), extra_env={"FORWARDED_SECRET": FORWARDED_SECRET}
    ) as backend:
        yield backend


@pytest.fixture(scope="module")
def api(stack: Process) -> Iterator[httpx.Client]:
    """The first admin, to set the scene and check what the console did (never logged in to the console)."""
    with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {admin_token(stack.url)}"}, timeout=30) as client:
        yield client


@pytest.fixture
def new_account(api: httpx.Client) -> Callable[..., dict[str, Any]]:
    def create(role: str = "operator") -> dict[str, Any]:
        email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
        response = api.post("/api/operators", json={"email": email, "password": PASSWORD, "role": role})
        assert response.status_code == 201, response.text
        return {**response.json(), "password": PASSWORD}

    return create


@pytest.fixture
def console(stack: Process, monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, Any]], AppTest]:
    """A console session logged in through the login page as `account`."""
    monkeypatch.setenv("BACKEND_URL", stack.url)
    monkeypatch.setenv("FORWARDED_SECRET", FORWARDED_SECRET)

    def log_in(account: dict[str, Any]) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=30)
        at.run()
        at.text_input[0].set_value(account["email"])
        at.text_input[1].set_value(account["password"])
        at.button[0].click().run()
        assert not at.exception, [e.value for e in at.exception]
        assert [t.value for t in at.title] == ["Overview"]
        return at

    return log_in


def open_page(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def button(at: AppTest, label: str):
    found = [b for b in at.button if b.label == label]
    assert found, f"no {label!r} button"
    return found[0]


def form(at: AppTest, key: str):
    return next(f for f in at.form if f.key == key)


def login_status(stack: Process, email: str, password: str) -> int:
    return httpx.post(f"{stack.url}/api/auth/login", json={"email": email, "password": password}, timeout=10).status_code


# -- what each role is offered ---------------------------------------------------------------


@pytest.fixture(scope="module")
def scene(api: httpx.Client) -> dict[str, Any]:
    """An assistant with a document and a paired number, one waiting for its QR scan, one with no number."""
    paired = new_assistant(api, "Paired shop")
    files = [("files", ("prices.txt", b"A loaf of bread costs 3 euros.", "text/plain"))]
    assert api.post(f"/api/assistants/{paired['id']}/documents", files=files).status_code == 201
    channel = ready_channel(api, paired["id"], "+15550008001")
    pending = new_assistant(api, "Pending shop")
    assert api.post("/api/channels", json={"assistant_id": pending["id"], "provider": "sandbox"}).status_code == 201
    wait_for(
        lambda: api.get(f"/api/assistants/{paired['id']}/documents").json()["items"][0]["status"] == "ready",
        timeout=90,
        what="the document indexed",
    )
    return {"paired": paired, "channel": channel, "pending": pending, "bare": new_assistant(api, "Bare shop")}


@pytest.mark.parametrize("role", ["operator", "admin"])
def test_only_an_admin_is_offered_the_admin_actions(console, new_account, scene, role):
    at = console(new_account(role))
    admin = role == "admin"
    for page in ("overview", "gaps", "conversations", "account"):
        open_page(at, page)  # every page opens for every role

    select_assistant(open_page(at, "assistants"), scene["paired"])
    assert any(f.key == "create" for f in at.form) is admin
    assert any(f.key == "pull" for f in at.form) is admin
    assert form(at, f"edit-{scene['paired']['id']}").button[0].disabled is not admin
    assert button(at, "Delete this assistant").disabled is not admin
    assert form(at, "playground").button[0].disabled is False  # everyone may test answers

    select_assistant(open_page(at, "knowledge"), scene["paired"])
    assert at.file_uploader  # everyone may upload
    assert button(at, "Re-index").disabled is False
    assert button(at, "Delete").disabled is not admin

    select_assistant(open_page(at, "whatsapp"), scene["paired"])
    assert button(at, "Log out of WhatsApp").disabled is not admin
    assert button(at, "Remove connection").disabled is not admin
    assert form(at, f"chat-{scene['channel']['id']}").button[0].disabled is False  # writing as a customer is fine
    select_assistant(at, scene["pending"])
    assert button(at, "Simulate scan").disabled is not admin
    select_assistant(at, scene["bare"])
    assert button(at, "Connect WhatsApp").disabled is not admin

    reasons = [c.value for c in at.caption if c.value.startswith("Only an admin can")]
    assert reasons == ([] if admin else ["Only an admin can connect WhatsApp numbers."])


# -- the Account page ------------------------------------------------------------------------


def test_an_operator_changes_their_password_and_the_old_one_no_longer_logs_in(console, stack, new_account):
    account = new_account()
    at = open_page(console(account), "account")
    old_token = at.session_state["token"]
    assert not any(f.key == "add-operator" for f in at.form)  # operators manage no one

    def change(current: str, new: str, repeat: str) -> None:
        fields = form(at, "own-password")
        for field, value in zip(fields.text_input, (current, new, repeat), strict=True):
            field.set_value(value)
        fields.button[0].click()
        at.run()
        assert not at.exception, [e.value for e in at.exception]

    change("not-my-password", "a-brand-new-password", "a-brand-new-password")
    assert [e.value for e in at.error] == ["Your current password is not right."]
    change(PASSWORD, "short", "short")
    assert [w.value for w in at.warning] == ["The new password needs at least 8 characters."]
    change(PASSWORD, "a-brand-new-password", "a-brand-new-pasword")
    assert [w.value for w in at.warning] == ["The two new passwords are not the same."]
    change(PASSWORD, "a-brand-new-password", "a-brand-new-password")
    assert [s.value for s in at.success] == ["Password changed. You stay signed in here; your other sessions have ended."]

    assert [t.value for t in at.title] == ["Account"]  # still signed in, with a new token
    new_token = at.session_state["token"]
    assert httpx.get(f"{stack.url}/api/auth/me", headers={"Authorization": f"Bearer {new_token}"}).status_code == 200
    assert httpx.get(f"{stack.url}/api/auth/me", headers={"Authorization": f"Bearer {old_token}"}).status_code == 401
    assert login_status(stack, account["email"], PASSWORD) == 401
    assert login_status(stack, account["email"], "a-brand-new-password") == 200


def test_an_admin_adds_an_operator_changes_their_role_resets_their_password_and_deletes_them(console, api, stack, new_account):
    admin = new_account("admin")
    at = open_page(console(admin), "account")
    email = f"sam-{uuid.uuid4().hex[:8]}@example.com"

    def add(password: str) -> None:
        fields = form(at, "add-operator")
        fields.text_input[0].set_value(email)
        fields.text_input[1].set_value(password)
        fields.button[0].click()
        at.run()
        assert not at.exception, [e.value for e in at.exception]

    add("short")
    assert [w.value for w in at.warning] == ["The initial password needs at least 8 characters."]
    add("sam-first-password")
    assert any(s.value.startswith("Added") and s.value.endswith("as operator.") for s in at.success)
    sam = next(o for o in api.get("/api/operators").json()["items"] if o["email"] == email)
    assert sam["role"] == "operator"
    assert login_status(stack, email, "sam-first-password") == 200

    role = form(at, f"role-{sam['id']}")
    role.selectbox[0].select("admin")
    role.button[0].click()
    at.run()
    assert not at.exception
    assert next(o for o in api.get("/api/operators").json()["items"] if o["email"] == email)["role"] == "admin"

    reset = form(at, f"reset-{sam['id']}")
    reset.text_input[0].set_value("sam-second-password")
    reset.button[0].click()
    at.run()
    assert not at.exception
    assert (login_status(stack, email, "sam-first-password"), login_status(stack, email, "sam-second-password")) == (401, 200)

    assert f"delete-operator-{admin['id']}" not in [b.key for b in at.button]  # nobody deletes their own account
    next(b for b in at.button if b.key == f"delete-operator-{sam['id']}").click().run()
    assert email in [o["email"] for o in api.get("/api/operators").json()["items"]]  # nothing deleted before "yes"
    button(at, "Yes, delete").click().run()
    assert not at.exception
    assert email not in [o["email"] for o in api.get("/api/operators").json()["items"]]
    assert login_status(stack, email, "sam-second-password") == 401


# -- logging out -----------------------------------------------------------------------------


def test_logging_out_in_the_console_ends_the_session_in_every_browser(console, stack, new_account):
    account = new_account()
    here, elsewhere = console(account), console(account)
    token = here.session_state["token"]

    here.sidebar.button[0].click().run()  # Log out
    assert not here.exception
    assert [t.value for t in here.title] == LOGIN_PAGE
    assert "You are logged out." in [s.value for s in here.success]
    revoked = httpx.get(f"{stack.url}/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert revoked.status_code == 401 and revoked.json()["error"]["code"] == "token_revoked"

    elsewhere.run()  # the other browser's next click
    assert not elsewhere.exception
    assert [t.value for t in elsewhere.title] == LOGIN_PAGE
    assert [w.value for w in elsewhere.warning] == [
        "Your session has ended: you logged out, or a password or role was changed. Please log in again."
    ]


# -- the browser's address, for the login throttle -------------------------------------------


def test_the_console_forwards_each_browser_address_so_a_guesser_locks_out_only_itself(stack, new_account):
    account = new_account()
    email = account["email"]
    with Api(stack.url) as client:
        for guesser in ("203.0.113.9", "2001:db8::9"):
            for i in range(5):
                with pytest.raises(ApiError) as wrong:
                    client.login(email, f"guess-{i}", guesser, FORWARDED_SECRET)
                assert wrong.value.code == "bad_credentials"
            with pytest.raises(ApiError) as throttled:
                client.login(email, PASSWORD, guesser, FORWARDED_SECRET)
            assert throttled.value.status == 429
        # Ten wrong guesses, none counted against the operator's browser or the console's own address.
        assert client.login(email, PASSWORD, "198.51.100.4", FORWARDED_SECRET)
        assert client.login(email, PASSWORD)


def test_the_forwarded_header_needs_both_an_address_and_the_secret():
    assert forwarded("198.51.100.4", "s3cret") == {"Forwarded": 'for="198.51.100.4";secret="s3cret"'}
    assert forwarded("2001:db8::1", "s3cret") == {"Forwarded": 'for="[2001:db8::1]";secret="s3cret"'}
    assert forwarded(None, "s3cret") == forwarded("198.51.100.4", None) == {}


@pytest.mark.parametrize(
    ("forwarded_for", "connecting", "proxies", "expected"),
    [
        ([], "198.51.100.4", 0, "198.51.100.4"),  # the browser connects to the console directly
        (["203.0.113.9, 198.51.100.4"], "10.0.0.1", 0, "10.0.0.1"),  # no proxy: the header is only the browser's word
        (["203.0.113.9, 198.51.100.4"], "10.0.0.1", 1, "198.51.100.4"),  # Render: what its proxy saw, appended last
        (["203.0.113.9", "198.51.100.4, 10.0.0.2"], None, 2, "198.51.100.4"),  # two proxies, two header lines
        (["198.51.100.4"], None, 2, None),  # fewer entries than proxies: not through them, unknown
        ([], None, 0, None),  # localhost: Streamlit gives no address
        (["not-an-address"], None, 1, None),
        (['1.2.3.4";secret="guessed'], None, 1, None),  # nothing but an address reaches the Forwarded header
        (["2001:DB8::1"], None, 1, "2001:db8::1"),
    ],
)
def test_the_browser_address_is_the_one_the_trusted_proxies_saw(forwarded_for, connecting, proxies, expected):
    assert browser_address(forwarded_for, connecting, proxies) == expected
