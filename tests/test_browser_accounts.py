"""End-to-end tests of sign-in, API keys, usage and the admin pages in headless Chromium.

Most tests share one live server in accounts mode (an admin account exists before it
starts, sign-up is open). Each test makes its own extra accounts, so the order of the
tests does not matter. One test drives the single-user ("anonymous") mode instead.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from onebox.core.db import create_engine, create_sessionmaker
from onebox.core.migrate import upgrade
from onebox.core.settings import Settings
from onebox.llm.fake import FakeProvider
from onebox.users.service import AccountService
from tests.browser import ASSISTANT, CLIPBOARD, PageProblems, expect, launch_browser, new_page
from tests.conftest import LiveServer, run_live_server

pytestmark = pytest.mark.browser

SCREENSHOTS = Path("/tmp")

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password-1"
XSS = "<img src=x onerror=alert(1)>"


# ---------------------------------------------------------------------------- fixtures


async def make_account(settings: Settings, email: str, password: str, admin: bool) -> None:
    settings.prepare_data_dir()
    engine = create_engine(settings.resolved_database_url)
    await upgrade(engine)
    async with create_sessionmaker(engine)() as session:
        await AccountService(session).create_account(email, password, is_admin=admin)
        await session.commit()
    await engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_browser()


@pytest.fixture(scope="module")
def accounts_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A live server in accounts mode: one admin account, sign-up open."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path_factory.mktemp("accounts"),
        llm_provider="fake",
        model_name="fake-echo",
        signup_open=True,
        login_attempts_per_minute=1000,  # these tests sign in far more than 10 times a minute
    )
    in_thread(make_account(settings, ADMIN_EMAIL, ADMIN_PASSWORD, True))
    for server in run_live_server(
        settings, FakeProvider(model_name="fake-echo", context_size=4096, token_delay=0.005)
    ):
        # The server notices accounts within ~2 s: from then on nothing works signed out.
        deadline = time.monotonic() + 10
        while httpx.get(f"{server.url}/api/auth/me", timeout=5).status_code != 401:
            assert time.monotonic() < deadline, "the server stayed in single-user mode"
            time.sleep(0.1)
        yield server


def in_thread(coroutine: Any) -> None:
    """Runs a coroutine to completion. Playwright's sync API keeps an event loop running on
    the test's thread once a browser is open, so asyncio.run() must happen elsewhere."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coroutine).result()


def new_account(server: LiveServer, prefix: str, password: str) -> str:
    """Creates a (non-admin) account straight in the server's database; returns its email."""
    email = f"{prefix}-{uuid.uuid4().hex[:8]}@example.com"
    in_thread(make_account(server.settings, email, password, False))
    return email


@pytest.fixture
def problems() -> PageProblems:
    """Being signed out is normal here: the 401s Chromium logs are not counted."""
    return PageProblems(expected={401})


@pytest.fixture
def open_page(browser: Any, problems: PageProblems) -> Iterator[Callable[..., Any]]:
    """open_page(url, width=1280, height=820): a page in a fresh browser context (its own
    cookies, so two pages are two different browsers)."""
    with ExitStack() as pages:

        def make(url: str, width: int = 1280, height: int = 820) -> Any:
            return pages.enter_context(
                new_page(
                    browser,
                    url,
                    problems,
                    width=width,
                    height=height,
                    permissions=CLIPBOARD,
                    handle_dialogs=True,
                )
            )

        yield make


# ----------------------------------------------------------------------------- helpers


def sign_in(page: Any, email: str, password: str) -> None:
    page.goto("/")
    page.get_by_test_id("login-email").fill(email)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()
    page.wait_for_selector("html[data-ready='true']")
    expect(page.locator("#app")).to_be_visible()
    expect(page.get_by_test_id("account-name")).to_have_text(email)


def open_menu(page: Any, item: str) -> None:
    if page.locator("#menu-toggle").is_visible():  # narrow screen: open the drawer first
        page.locator("#menu-toggle").click()
    page.get_by_test_id("account-menu").click()
    page.get_by_test_id(item).click()


def page_fetch(page: Any, method: str, path: str, body: Any = None, csrf: bool = True) -> Any:
    """fetch() from inside the page (its cookies); returns [status, json-or-null]."""
    return page.evaluate(
        """async ([method, path, body, csrf]) => {
            const headers = {"Content-Type": "application/json"};
            const match = document.cookie.match(/(?:^|;\\s*)onebox_csrf=([^;]+)/);
            if (csrf && match) headers["X-CSRF-Token"] = decodeURIComponent(match[1]);
            const init = {method, headers};
            if (body !== null) init.body = JSON.stringify(body);
            const response = await fetch(path, init);
            const text = await response.text();
            return [response.status, text ? JSON.parse(text) : null];
        }""",
        [method, path, body, csrf],
    )


def create_key_in_ui(page: Any, name: str) -> tuple[str, str]:
    """Creates a secret key in the open "API keys" panel; returns (id, secret)."""
    page.get_by_test_id("key-name").fill(name)
    page.get_by_test_id("key-kind").select_option("secret")
    page.get_by_test_id("key-create").click()
    secret_node = page.get_by_test_id("key-secret")
    expect(secret_node).to_be_visible()
    secret = (secret_node.text_content() or "").strip()
    row = page.get_by_test_id("key-row").filter(has_text=name)
    expect(row).to_have_count(1)
    return row.get_attribute("data-id") or "", secret


def v1_status(server: LiveServer, secret: str) -> int:
    headers = {"Authorization": f"Bearer {secret}"}
    return httpx.get(f"{server.url}/v1/models", headers=headers, timeout=10).status_code


def no_overflow(page: Any, selector: str) -> None:
    sizes = page.locator(selector).evaluate("n => [n.scrollWidth, n.clientWidth]")
    assert sizes[0] <= sizes[1] + 1, f"{selector} overflows sideways: {sizes}"


# ------------------------------------------------------------------------------- tests


def test_sign_in_reload_and_sign_out(
    accounts_server: LiveServer, open_page: Callable[..., Any], problems: PageProblems
) -> None:
    page = open_page(accounts_server.url)
    page.goto("/")
    email = page.get_by_test_id("login-email")
    expect(email).to_be_visible()
    expect(email).to_be_focused()
    expect(page.locator("#app")).to_be_hidden()
    expect(page.get_by_test_id("show-signup")).to_be_visible()  # sign-up is open here
    page.screenshot(path=str(SCREENSHOTS / "onebox-signin.png"))

    # A wrong password: an error, and still no app.
    email.fill(ADMIN_EMAIL)
    page.get_by_test_id("login-password").fill("not-the-password")
    page.get_by_test_id("login-password").press("Enter")
    error = page.get_by_test_id("login-error")
    expect(error).to_be_visible()
    expect(error).to_have_text("Incorrect email or password")
    expect(page.locator("#app")).to_be_hidden()
    expect(page.get_by_test_id("login-password")).to_be_focused()
    expect(page.get_by_test_id("login-submit")).to_be_enabled()
    page.screenshot(path=str(SCREENSHOTS / "onebox-signin-error.png"))

    # The right one: the app, with the account at the bottom of the sidebar.
    page.get_by_test_id("login-password").fill(ADMIN_PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.wait_for_selector("html[data-ready='true']")
    expect(page.locator("#app")).to_be_visible()
    expect(page.get_by_test_id("auth-screen")).to_be_hidden()
    expect(page.get_by_test_id("account-name")).to_have_text(ADMIN_EMAIL)
    expect(page.get_by_test_id("account-role")).to_have_text("Admin")
    expect(page.get_by_test_id("composer")).to_be_focused()

    # The session survives a reload.
    page.reload()
    page.wait_for_selector("html[data-ready='true']")
    expect(page.locator("#app")).to_be_visible()
    expect(page.get_by_test_id("login-email")).to_be_hidden()
    expect(page.get_by_test_id("account-name")).to_have_text(ADMIN_EMAIL)

    # The account menu: keyboard friendly, with every item an admin gets.
    menu = page.get_by_test_id("account-menu")
    menu.focus()
    menu.press("Enter")
    expect(page.get_by_test_id("menu-keys")).to_be_focused()
    for item in ("menu-keys", "menu-usage", "menu-password", "menu-admin", "menu-logout"):
        expect(page.get_by_test_id(item)).to_be_visible()
    page.keyboard.press("ArrowDown")
    expect(page.get_by_test_id("menu-usage")).to_be_focused()
    page.screenshot(path=str(SCREENSHOTS / "onebox-account-menu.png"))
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("menu-keys")).to_be_hidden()
    expect(menu).to_be_focused()

    # Sign out: back to the sign-in screen, and the cookie no longer opens the API.
    open_menu(page, "menu-logout")
    expect(page.get_by_test_id("login-email")).to_be_visible()
    expect(page.locator("#app")).to_be_hidden()
    assert not [c for c in page.context.cookies() if c["name"] == "onebox_session"]
    assert page_fetch(page, "GET", "/api/conversations")[0] == 401
    assert httpx.get(f"{accounts_server.url}/api/conversations").status_code == 401
    problems.assert_clean()


def test_api_key_lifecycle(
    accounts_server: LiveServer, open_page: Callable[..., Any], problems: PageProblems
) -> None:
    page = open_page(accounts_server.url)
    sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    open_menu(page, "menu-keys")
    expect(page.get_by_test_id("panel-title")).to_have_text("API keys")
    expect(page.get_by_test_id("composer")).to_be_hidden()

    key_id, secret = create_key_in_ui(page, "CI key")
    assert re.fullmatch(r"obx_[A-Za-z0-9_-]{20,}", secret), secret
    expect(page.get_by_test_id("key-secret-box")).to_contain_text("won't be able to see it again")
    page.get_by_test_id("key-secret-copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    row = page.locator(f'[data-testid="key-row"][data-id="{key_id}"]')
    expect(row).to_contain_text(secret[:12])
    assert secret not in (row.text_content() or "")
    page.screenshot(path=str(SCREENSHOTS / "onebox-keys.png"), full_page=True)

    # The key works on the OpenAI-compatible API, and its use shows up under Usage.
    assert v1_status(accounts_server, secret) == 200
    reply = httpx.post(
        f"{accounts_server.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {secret}"},
        json={"model": "fake-echo", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text

    # The secret is shown once: leaving and coming back does not show it again.
    page.get_by_test_id("panel-back").click()
    expect(page.get_by_test_id("composer")).to_be_visible()
    expect(page.get_by_test_id("key-secret")).to_have_count(0)
    open_menu(page, "menu-keys")
    expect(row).to_be_visible()
    expect(page.get_by_test_id("key-secret")).to_have_count(0)
    assert secret not in page.content()

    deadline = time.monotonic() + 10
    while True:  # usage is written in batches about once a second
        open_menu(page, "menu-usage")
        usage_row = page.get_by_test_id("usage-row").filter(has_text=secret[:12])
        page.wait_for_selector('[data-testid="usage-table"], [data-testid="usage-table-empty"]')
        if usage_row.count() or time.monotonic() > deadline:
            break
        page.wait_for_timeout(300)
    expect(usage_row).to_have_count(1)
    expect(usage_row).to_contain_text("fake-echo")
    expect(page.get_by_test_id("usage-month")).not_to_have_text("0")
    page.screenshot(path=str(SCREENSHOTS / "onebox-usage.png"), full_page=True)

    # Revoke (after a confirmation): within a few seconds the key stops working.
    open_menu(page, "menu-keys")
    row.get_by_test_id("key-revoke").click()
    expect(row).to_have_attribute("data-status", "revoked")
    expect(row.get_by_test_id("key-revoke")).to_have_count(0)
    assert any("Revoke the key" in d for d in problems.dialogs)
    deadline = time.monotonic() + 6
    while v1_status(accounts_server, secret) != 401:
        assert time.monotonic() < deadline, "the revoked key still works"
        time.sleep(0.2)
    problems.assert_clean()


def test_admin_creates_and_disables_a_user(
    accounts_server: LiveServer, open_page: Callable[..., Any], problems: PageProblems
) -> None:
    admin = open_page(accounts_server.url)
    sign_in(admin, ADMIN_EMAIL, ADMIN_PASSWORD)

    # The admin has a conversation of their own.
    composer = admin.get_by_test_id("composer")
    composer.fill("admin-only secret plans")
    composer.press("Enter")
    expect(admin.locator(ASSISTANT)).to_have_attribute("data-status", "complete")
    admin.wait_for_url(re.compile(r"/c/[^/]+$"))
    admin_conversation = admin.url.rsplit("/c/", 1)[1]

    # Create a user from the Admin page.
    email = f"member-{uuid.uuid4().hex[:8]}@example.com"
    open_menu(admin, "menu-admin")
    expect(admin.get_by_test_id("admin-users-tab")).to_have_attribute("aria-selected", "true")
    admin.get_by_test_id("admin-new-email").fill(email)
    admin.get_by_test_id("admin-new-name").fill("Member One")
    admin.get_by_test_id("admin-new-password").fill("member-password-1")
    admin.get_by_test_id("admin-new-submit").click()
    user_row = admin.locator(f'[data-testid="admin-user-row"][data-email="{email}"]')
    expect(user_row).to_be_visible()
    expect(user_row).to_contain_text("Member One")
    expect(user_row).to_have_attribute("data-role", "user")
    me_row = admin.locator(f'[data-testid="admin-user-row"][data-email="{ADMIN_EMAIL}"]')
    expect(me_row.get_by_test_id("admin-user-toggle-active")).to_be_disabled()
    admin.screenshot(path=str(SCREENSHOTS / "onebox-admin-users.png"), full_page=True)

    # The role toggle works both ways.
    user_row.get_by_test_id("admin-user-toggle-role").click()
    expect(user_row).to_have_attribute("data-role", "admin")
    user_row.get_by_test_id("admin-user-toggle-role").click()
    expect(user_row).to_have_attribute("data-role", "user")

    # The new user signs in elsewhere and sees none of the admin's conversations.
    member = open_page(accounts_server.url)
    sign_in(member, email, "member-password-1")
    expect(member.get_by_test_id("account-role")).to_have_text("User")
    expect(member.get_by_test_id("conversation-item")).to_have_count(0)
    expect(member.locator("#conversation-empty")).to_be_visible()
    assert page_fetch(member, "GET", "/api/conversations")[1]["items"] == []
    member.get_by_test_id("account-menu").click()
    expect(member.get_by_test_id("menu-admin")).to_be_hidden()
    expect(member.get_by_test_id("menu-keys")).to_be_visible()
    member.keyboard.press("Escape")
    problems.expected.update({403, 404})
    assert page_fetch(member, "GET", "/api/admin/users")[0] == 403
    member.goto(f"/c/{admin_conversation}")
    expect(member.get_by_test_id("error-banner")).to_contain_text("no longer exists")
    expect(member.locator(ASSISTANT)).to_have_count(0)

    # Other tabs (arrow keys move between them): every key with its owner, usage over 30
    # days, the audit log.
    admin.get_by_test_id("admin-users-tab").focus()
    admin.keyboard.press("ArrowRight")
    expect(admin.get_by_test_id("admin-keys-tab")).to_be_focused()
    expect(admin.get_by_test_id("admin-keys-tab")).to_have_attribute("aria-selected", "true")
    expect(admin.get_by_test_id("admin-users-tab")).to_have_attribute("aria-selected", "false")
    admin.wait_for_selector('[data-testid="keys-table"], [data-testid="keys-table-empty"]')
    admin.get_by_test_id("admin-usage-tab").click()
    expect(admin.get_by_test_id("usage-row").filter(has_text=ADMIN_EMAIL).first).to_be_visible()
    admin.screenshot(path=str(SCREENSHOTS / "onebox-admin-usage.png"), full_page=True)
    admin.get_by_test_id("admin-audit-tab").click()
    audit = admin.get_by_test_id("audit-row")
    expect(audit.filter(has_text="admin_user_create").filter(has_text=email)).to_have_count(1)
    expect(audit.filter(has_text="login").first).to_be_visible()
    admin.screenshot(path=str(SCREENSHOTS / "onebox-admin-audit.png"), full_page=True)

    # The admin disables the user: their next action lands on the sign-in screen, and
    # what they had typed is still there once they may sign in again.
    admin.get_by_test_id("admin-users-tab").click()
    user_row.get_by_test_id("admin-user-toggle-active").click()
    expect(user_row).to_have_attribute("data-active", "false")
    assert any(f"Disable {email}?" in d for d in problems.dialogs)

    member.get_by_test_id("new-chat").click()
    draft = "a message typed before the account was disabled"
    member.get_by_test_id("composer").fill(draft)
    member.get_by_test_id("composer").press("Enter")
    expect(member.get_by_test_id("login-email")).to_be_visible()
    expect(member.locator("#app")).to_be_hidden()
    expect(member.get_by_test_id("login-note")).to_contain_text("session has ended")

    member.get_by_test_id("login-email").fill(email)
    member.get_by_test_id("login-password").fill("member-password-1")
    member.get_by_test_id("login-submit").click()
    expect(member.get_by_test_id("login-error")).to_have_text("Incorrect email or password")

    user_row.get_by_test_id("admin-user-toggle-active").click()
    expect(user_row).to_have_attribute("data-active", "true")
    member.get_by_test_id("login-submit").click()
    expect(member.locator("#app")).to_be_visible()
    expect(member.get_by_test_id("composer")).to_have_value(draft)
    member.get_by_test_id("composer").press("Enter")
    expect(member.locator(ASSISTANT)).to_have_attribute("data-status", "complete")
    expect(member.locator(ASSISTANT)).to_contain_text(draft)
    problems.assert_clean()


def test_user_text_stays_inert(
    accounts_server: LiveServer, open_page: Callable[..., Any], problems: PageProblems
) -> None:
    admin = open_page(accounts_server.url)
    sign_in(admin, ADMIN_EMAIL, ADMIN_PASSWORD)

    # A display name (admin form), a key name and allowed origins full of markup.
    email = f"xss-{uuid.uuid4().hex[:8]}@example.com"
    open_menu(admin, "menu-admin")
    admin.get_by_test_id("admin-users-tab").click()
    admin.get_by_test_id("admin-new-email").fill(email)
    admin.get_by_test_id("admin-new-name").fill(XSS)
    admin.get_by_test_id("admin-new-password").fill("xss-password-01")
    admin.get_by_test_id("admin-new-submit").click()
    row = admin.locator(f'[data-testid="admin-user-row"][data-email="{email}"]')
    expect(row).to_contain_text(XSS)

    open_menu(admin, "menu-keys")
    admin.get_by_test_id("key-name").fill(XSS)
    admin.get_by_test_id("key-kind").select_option("widget")
    origins = admin.get_by_test_id("key-origins")
    expect(origins).to_be_visible()
    origins.fill(f"https://example.com\n{XSS}")  # not an origin: the error quotes it
    problems.expected.add(400)
    admin.get_by_test_id("key-create").click()
    expect(admin.get_by_test_id("key-error")).to_contain_text(XSS)
    origins.fill("https://example.com")
    admin.get_by_test_id("key-create").click()
    secret = admin.get_by_test_id("key-secret")
    expect(secret).to_have_text(re.compile(r"^obw_"))
    key_row = admin.get_by_test_id("key-row").filter(has_text=XSS).first
    expect(key_row).to_contain_text("https://example.com")
    expect(admin.get_by_test_id("key-secret-box")).to_contain_text(XSS)

    # The admin's "every key" and audit views show the same text.
    open_menu(admin, "menu-admin")
    admin.get_by_test_id("admin-keys-tab").click()
    expect(admin.get_by_test_id("admin-key-row").filter(has_text=XSS).first).to_be_visible()
    admin.get_by_test_id("admin-audit-tab").click()
    expect(admin.get_by_test_id("audit-row").first).to_be_visible()

    # Sign-up with markup in the name; the new account's menu shows it as text.
    visitor = open_page(accounts_server.url)
    visitor.goto("/")
    visitor.get_by_test_id("show-signup").click()
    expect(visitor.get_by_test_id("signup-email")).to_be_focused()
    visitor.get_by_test_id("signup-name").fill(XSS)
    visitor.get_by_test_id("signup-email").fill(f"self-{uuid.uuid4().hex[:8]}@example.com")
    visitor.get_by_test_id("signup-password").fill("short")
    visitor.get_by_test_id("signup-submit").click()  # the browser's own check stops it
    expect(visitor.get_by_test_id("signup-form")).to_be_visible()
    visitor.get_by_test_id("signup-password").fill("visitor-password-1")
    visitor.get_by_test_id("signup-submit").click()
    visitor.wait_for_selector("html[data-ready='true']")
    expect(visitor.locator("#account-detail")).to_have_text(XSS)
    expect(visitor.get_by_test_id("account-role")).to_have_text("User")

    for page in (admin, visitor):
        page.wait_for_timeout(200)
        assert page.locator("img").count() == 0
        assert page.evaluate("document.querySelectorAll('[onerror]').length") == 0
    assert not [d for d in problems.dialogs if not d.startswith("confirm")]
    problems.assert_clean()


def test_csrf_header_is_required(
    accounts_server: LiveServer, open_page: Callable[..., Any], problems: PageProblems
) -> None:
    page = open_page(accounts_server.url)
    sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    problems.expected.add(403)

    status, body = page_fetch(page, "POST", "/api/conversations", {"title": "no"}, csrf=False)
    assert status == 403
    assert body["error"]["code"] == "csrf_failed"
    status, body = page_fetch(page, "POST", "/api/conversations", {"title": "yes"}, csrf=True)
    assert status == 201, body
    assert body["title"] == "yes"

    # The page's own calls carry the header: rename and delete through the UI work.
    page.reload()
    page.wait_for_selector("html[data-ready='true']")
    item = page.locator(f'[data-testid="conversation-item"][data-id="{body["id"]}"]')
    item.hover()
    item.get_by_test_id("rename").click()
    item.locator("input").fill("Renamed with CSRF")
    item.locator("input").press("Enter")
    expect(item.get_by_test_id("conversation-title")).to_have_text("Renamed with CSRF")
    item.hover()
    item.get_by_test_id("delete").click()
    expect(item).to_have_count(0)
    problems.expected.add(404)
    assert page_fetch(page, "GET", f"/api/conversations/{body['id']}")[0] == 404
    problems.assert_clean()


def test_change_password(
    accounts_server: LiveServer, open_page: Callable[..., Any], problems: PageProblems
) -> None:
    old, new = "first-password-1", "second-password-2"
    email = new_account(accounts_server, "pw", old)
    page = open_page(accounts_server.url)
    sign_in(page, email, old)
    open_menu(page, "menu-password")
    expect(page.get_by_test_id("panel-title")).to_have_text("Change password")
    status = page.get_by_test_id("password-status")

    # A wrong current password is an error on the form (a 400), not a sign-out.
    problems.expected.add(400)
    page.get_by_test_id("password-current").fill("wrong-password-9")
    page.get_by_test_id("password-new").fill(new)
    page.get_by_test_id("password-repeat").fill(new)
    page.get_by_test_id("password-submit").click()
    expect(status).to_contain_text("current password is not correct")
    expect(page.locator("#app")).to_be_visible()
    expect(page.get_by_test_id("login-email")).to_be_hidden()

    # Mismatched repeats never reach the server.
    page.get_by_test_id("password-current").fill(old)
    page.get_by_test_id("password-repeat").fill(new + "x")
    page.get_by_test_id("password-submit").click()
    expect(status).to_contain_text("do not match")

    page.get_by_test_id("password-repeat").fill(new)
    page.get_by_test_id("password-submit").click()
    expect(status).to_contain_text("Password changed")
    expect(page.get_by_test_id("password-current")).to_have_value("")
    page.screenshot(path=str(SCREENSHOTS / "onebox-password.png"))

    open_menu(page, "menu-logout")
    expect(page.get_by_test_id("login-email")).to_be_visible()
    page.get_by_test_id("login-email").fill(email)
    page.get_by_test_id("login-password").fill(old)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("login-error")).to_have_text("Incorrect email or password")
    page.get_by_test_id("login-password").fill(new)
    page.get_by_test_id("login-submit").click()
    page.wait_for_selector("html[data-ready='true']")
    expect(page.get_by_test_id("account-name")).to_have_text(email)
    problems.assert_clean()


def test_narrow_screen_views(
    accounts_server: LiveServer, open_page: Callable[..., Any], problems: PageProblems
) -> None:
    page = open_page(accounts_server.url, width=390, height=780)
    page.goto("/")
    expect(page.get_by_test_id("login-email")).to_be_visible()
    no_overflow(page, ".auth-screen")
    page.screenshot(path=str(SCREENSHOTS / "onebox-signin-narrow.png"))
    sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)

    page.locator("#menu-toggle").click()
    page.get_by_test_id("account-menu").click()
    expect(page.get_by_test_id("menu-admin")).to_be_in_viewport()
    page.wait_for_timeout(250)  # slide-in transition
    page.screenshot(path=str(SCREENSHOTS / "onebox-menu-narrow.png"))
    page.get_by_test_id("menu-keys").click()
    expect(page.get_by_test_id("panel-title")).to_have_text("API keys")
    expect(page.get_by_test_id("new-chat")).not_to_be_in_viewport()  # the drawer closed
    create_key_in_ui(page, "Phone key")
    no_overflow(page, "#panel")
    page.screenshot(path=str(SCREENSHOTS / "onebox-keys-narrow.png"), full_page=True)

    for tab in ("admin-users-tab", "admin-keys-tab", "admin-usage-tab", "admin-audit-tab"):
        if tab == "admin-users-tab":
            open_menu(page, "menu-admin")
        page.get_by_test_id(tab).click()
        expect(page.locator(".tab-panel .loading-note")).to_have_count(0)
        no_overflow(page, "#panel")
        page.screenshot(path=str(SCREENSHOTS / f"onebox-{tab}-narrow.png"), full_page=True)
    open_menu(page, "menu-usage")
    expect(page.get_by_test_id("usage-today")).to_be_visible()
    no_overflow(page, "#panel")
    page.get_by_test_id("panel-back").click()
    expect(page.get_by_test_id("composer")).to_be_visible()
    problems.assert_clean()


def test_single_user_mode_menu(
    live_server: LiveServer, open_page: Callable[..., Any], problems: PageProblems
) -> None:
    page = open_page(live_server.url)
    page.goto("/")
    page.wait_for_selector("html[data-ready='true']")
    expect(page.get_by_test_id("account-name")).to_have_text("Single-user mode")
    expect(page.get_by_test_id("account-role")).to_be_hidden()
    page.get_by_test_id("account-menu").click()
    expect(page.locator("#account-hint")).to_contain_text("onebox users create EMAIL --admin")
    for hidden in ("menu-password", "menu-admin", "menu-logout"):
        expect(page.get_by_test_id(hidden)).to_be_hidden()
    page.screenshot(path=str(SCREENSHOTS / "onebox-single-user-menu.png"))

    page.get_by_test_id("menu-keys").click()
    _, secret = create_key_in_ui(page, "Local key")
    assert secret.startswith("obx_")
    assert v1_status(live_server, secret) == 200
    open_menu(page, "menu-usage")
    expect(page.get_by_test_id("usage-today")).to_be_visible()
    page.get_by_test_id("new-chat").click()
    expect(page.get_by_test_id("panel")).to_be_hidden()
    expect(page.get_by_test_id("composer")).to_be_focused()
    problems.assert_clean()


def test_sign_in_throttle_is_explained(
    tmp_path: Path, open_page: Callable[..., Any], problems: PageProblems
) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "throttled",
        llm_provider="fake",
        model_name="fake-echo",
        login_attempts_per_minute=1,
    )
    in_thread(make_account(settings, ADMIN_EMAIL, ADMIN_PASSWORD, True))
    for server in run_live_server(settings, FakeProvider("fake-echo", context_size=4096)):
        problems.expected.add(429)
        page = open_page(server.url)
        page.goto("/")
        page.get_by_test_id("login-email").fill(ADMIN_EMAIL)
        page.get_by_test_id("login-password").fill("wrong-password-1")
        page.get_by_test_id("login-submit").click()
        error = page.get_by_test_id("login-error")
        expect(error).to_have_text("Incorrect email or password")
        page.get_by_test_id("login-password").fill(ADMIN_PASSWORD)
        page.get_by_test_id("login-submit").click()
        expect(error).to_have_text(
            re.compile(r"^Too many sign-in attempts .* Try again in \d+ s\.$")
        )
        expect(page.locator("#app")).to_be_hidden()
        problems.assert_clean()
