"""The headless Debian chromium the browser tests drive, and the scaffolding they share.

Each browser test module keeps its own thin ``browser``, ``problems`` and page fixtures
(``yield from launch_browser()``, ``PageProblems(...)``, ``with new_page(...)``), so the
differences that matter (viewport, permissions, the server) stay visible where they are used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags chromium keeps dialling out on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 15_000
CLIPBOARD = ("clipboard-read", "clipboard-write")
ASSISTANT = '[data-testid="message"][data-role="assistant"]'

# Importing this module skips the importing test module when playwright is missing.
playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = playwright_sync.expect
expect.set_options(timeout=TIMEOUT_MS)


def launch_browser() -> Iterator[Any]:
    """Yields a launched headless chromium (for a module-scoped fixture: ``yield from``);
    skips when chromium is not installed."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


class PageProblems:
    """JavaScript errors and console errors (CSP violations show up there), and dialogs.

    Chromium also logs every failed request as a console error; those whose status is in
    ``expected`` (none unless given) are not counted."""

    def __init__(self, expected: Iterable[int] = ()) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.expected: set[int] = set(expected)

    def page_error(self, exc: Any) -> None:
        self.errors.append(f"pageerror: {exc}")

    def console(self, msg: Any) -> None:
        if msg.type != "error":
            return
        status = re.search(r"status of (\d{3})", msg.text)
        if status and "Failed to load resource" in msg.text and int(status[1]) in self.expected:
            return
        self.errors.append(f"console.{msg.type}: {msg.text}")

    def dialog(self, dialog: Any) -> None:
        """Records every dialog; confirmations are accepted, anything else dismissed."""
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        if dialog.type == "confirm":
            dialog.accept()
        else:
            dialog.dismiss()

    def forget_http(self, status: int) -> None:
        """Drops the console errors already logged for refused requests with this status."""
        self.errors = [e for e in self.errors if f"status of {status}" not in e]

    def assert_clean(self) -> None:
        assert self.errors == [], f"the page reported errors: {self.errors}"


@contextmanager
def new_page(
    browser: Any,
    url: str,
    problems: PageProblems,
    *,
    width: int = 1280,
    height: int = 820,
    permissions: Sequence[str] = (),
    handle_dialogs: bool = False,
) -> Iterator[Any]:
    """A page in a fresh browser context (its own cookies) on ``url``, reporting to
    ``problems``; with ``handle_dialogs`` dialogs go to ``problems.dialog`` (otherwise the
    test handles them). The context is closed on exit."""
    context = browser.new_context(base_url=url, viewport={"width": width, "height": height})
    try:
        if permissions:
            context.grant_permissions(list(permissions), origin=url)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", problems.page_error)
        page.on("console", problems.console)
        if handle_dialogs:
            page.on("dialog", problems.dialog)
        yield page
    finally:
        context.close()


def open_app(page: Any, path: str = "/") -> None:
    page.goto(path)
    page.wait_for_selector("html[data-ready='true']")


def send(page: Any, text: str) -> Any:
    """Types ``text`` and presses Enter; returns the new assistant message's locator."""
    before = page.locator(ASSISTANT).count()
    composer = page.get_by_test_id("composer")
    composer.fill(text)
    composer.press("Enter")
    expect(page.locator(ASSISTANT)).to_have_count(before + 1)
    return page.locator(ASSISTANT).nth(before)
