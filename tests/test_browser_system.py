"""The admin System tab in headless Debian chromium: live figures and SVG charts after a
chat, usage charts, the models table, and a hostile model name shown as plain text."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from onebox.core.settings import Settings
from onebox.llm.fake import FakeProvider
from tests.browser import PageProblems, expect, launch_browser, new_page, send
from tests.conftest import LiveServer, run_live_server
from tests.test_browser_accounts import in_thread, make_account, sign_in

pytestmark = pytest.mark.browser

HOSTILE = '<img src=x onerror="window.__pwned=1">model'
ADMIN_EMAIL = "ops@example.com"
ADMIN_PASSWORD = "ops-password-1"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_browser()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "live",
        llm_provider="fake",
        model_name=HOSTILE,
    )
    in_thread(make_account(settings, ADMIN_EMAIL, ADMIN_PASSWORD, True))  # accounts mode
    yield from run_live_server(
        settings, FakeProvider(model_name=HOSTILE, context_size=4096, token_delay=0.01)
    )


def test_system_tab_draws_the_live_numbers(browser: Any, server: LiveServer) -> None:
    problems = PageProblems(expected={401})  # signed out until the form is sent
    with new_page(browser, server.url, problems, handle_dialogs=True) as page:
        sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
        reply = send(page, "one two three four five")
        expect(reply).to_have_attribute("data-status", "complete")

        page.get_by_test_id("account-menu").click()
        page.get_by_test_id("menu-admin").click()
        page.get_by_test_id("admin-system-tab").click()
        panel = page.locator("#admin-tabpanel")
        expect(panel).to_have_attribute("data-tab", "system")

        tokens = page.get_by_test_id("system-tokens-per-second")
        expect(tokens).not_to_have_text("—")
        assert float(tokens.inner_text()) > 0
        expect(page.get_by_test_id("system-p95-latency")).to_have_text(re.compile(r"^[\d.]+ m?s$"))
        expect(page.get_by_test_id("system-queue-depth")).to_have_text("0")
        expect(page.get_by_test_id("system-error-rate")).to_have_text("0.0%")
        for chart in ("tokens", "latency", "queue", "errors"):
            figure = page.get_by_test_id(f"system-chart-{chart}")
            expect(figure.locator("svg")).to_have_attribute("role", "img")
            assert figure.locator("polyline, circle").count() >= 1, chart
        expect(page.get_by_test_id("system-usage-tokens").locator("rect")).to_have_count(1)
        expect(page.get_by_test_id("system-usage-cost")).to_be_visible()

        row = page.get_by_test_id("system-model-row")
        expect(row).to_have_count(1)
        expect(row.locator("td").first).to_have_text(HOSTILE)  # text, not markup
        assert page.locator("#admin-tabpanel img").count() == 0
        assert page.evaluate("window.__pwned") is None
        expect(page.get_by_test_id("system-memory")).to_contain_text("GiB resident")

    problems.assert_clean()
    assert problems.dialogs == []
