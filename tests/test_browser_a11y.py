"""Accessibility of every screen, in light and dark, checked by axe-core in headless Debian
chromium: no serious or critical violation on the sign-in screen, the chat (empty, and a
conversation with citations), the shortcuts sheet, Documents, API keys, Usage, Admin,
System and the widget demo. The same walk takes the README's screenshots at a fixed
viewport (``ONEBOX_SCREENSHOTS=docs/screenshots`` writes them there; otherwise they go to
a temporary directory).

axe-core comes from ``node_modules`` (``npm ci``: package.json pins it); the page's strict
CSP would refuse the injected script, so these contexts bypass CSP.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from onebox.core.settings import Settings
from onebox.llm.fake import FakeProvider
from tests.browser import TIMEOUT_MS, PageProblems, expect, launch_browser
from tests.conftest import LiveServer, run_live_server
from tests.test_browser_accounts import in_thread, make_account, page_fetch

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js"
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password-1"
INGEST_TIMEOUT_MS = 120_000
VIEWPORT = {"width": 1280, "height": 800}
SCHEMES = ("light", "dark")
# The screens shown in the README.
SHOTS = {"login", "chat", "conversation", "documents", "system"}
NOTES_MD = (
    "# Lighthouse keeping\n\n## Lamps\n\n"
    "The lamp is lit at sunset and trimmed every four hours through the night.\n"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not AXE.exists():
        pytest.skip(f"{AXE} is missing: run npm ci")
    yield from launch_browser()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path_factory.mktemp("a11y") / "live",
        llm_provider="fake",
        model_name="fake-echo",
    )
    in_thread(make_account(settings, ADMIN_EMAIL, ADMIN_PASSWORD, True))  # accounts mode
    yield from run_live_server(
        settings, FakeProvider(model_name="fake-echo", context_size=8192, token_delay=0.01)
    )


@pytest.fixture
def shots_dir(tmp_path: Path) -> Path:
    wanted = os.environ.get("ONEBOX_SCREENSHOTS")
    target = Path(wanted) if wanted else tmp_path / "screenshots"
    target.mkdir(parents=True, exist_ok=True)
    return target


class Walk:
    """Runs axe on each screen in both schemes and keeps what it found."""

    def __init__(self, page: Any, shots: Path) -> None:
        self.page = page
        self.shots = shots
        self.found: dict[str, list[str]] = {}

    def check(self, name: str, *, themed: bool = True) -> None:
        for scheme in SCHEMES:
            self.page.emulate_media(color_scheme=scheme)
            if themed:
                expect(self.page.locator("html")).to_have_attribute("data-theme", scheme)
            self.page.add_script_tag(path=str(AXE))
            violations = self.page.evaluate(
                """async () => {
                    const result = await axe.run(document, {resultTypes: ["violations"]});
                    return result.violations
                        .filter((v) => v.impact === "serious" || v.impact === "critical")
                        .map((v) => `${v.id} (${v.impact}): ` + v.nodes.slice(0, 4)
                            .map((n) => n.target.join(" ") + " — " + n.failureSummary.split("\\n").slice(1, 2).join(""))
                            .join(" | "));
                }"""
            )
            self.found[f"{name}/{scheme}"] = violations
            if name in SHOTS:
                self.screenshot(f"{name}-{scheme}.png")

    def screenshot(self, filename: str) -> None:
        data = self.page.screenshot(animations="disabled", caret="hide")
        try:
            from PIL import Image  # optional: smaller files when installed
        except ImportError:
            (self.shots / filename).write_bytes(data)
            return
        image = Image.open(io.BytesIO(data)).convert("RGB").quantize(colors=128)
        image.save(self.shots / filename, optimize=True)


def open_menu(page: Any, item: str) -> None:
    page.get_by_test_id("account-menu").click()
    page.get_by_test_id(item).click()


def test_every_screen_has_no_serious_violation_in_light_and_dark(
    browser: Any, server: LiveServer, shots_dir: Path
) -> None:
    problems = PageProblems(expected={401})  # signed out until the form is sent
    context = browser.new_context(
        base_url=server.url, viewport=VIEWPORT, bypass_csp=True, reduced_motion="reduce"
    )
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", problems.page_error)
        page.on("console", problems.console)
        walk = Walk(page, shots_dir)

        page.goto("/")
        expect(page.get_by_test_id("login-form")).to_be_visible()
        walk.check("login")

        page.get_by_test_id("login-email").fill(ADMIN_EMAIL)
        page.get_by_test_id("login-password").fill(ADMIN_PASSWORD)
        page.get_by_test_id("login-submit").click()
        page.wait_for_selector("html[data-ready='true']")
        expect(page.locator("#empty-state")).to_be_visible()
        walk.check("chat")

        page.get_by_test_id("open-shortcuts").click()
        expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_visible()
        walk.check("shortcuts")
        page.keyboard.press("Escape")

        page.get_by_test_id("attach-input").set_input_files(
            [{"name": "lighthouse.md", "mimeType": "text/markdown", "buffer": NOTES_MD.encode()}]
        )
        expect(page.get_by_test_id("attachment")).to_have_attribute(
            "data-status", "ready", timeout=INGEST_TIMEOUT_MS
        )
        composer = page.get_by_test_id("composer")
        composer.fill("When is the lamp lit? [1]")
        composer.press("Enter")
        reply = page.locator('[data-testid="message"][data-role="assistant"]')
        expect(reply).to_have_attribute("data-status", "complete")
        expect(reply.locator(".citation")).not_to_have_count(0)
        page.locator("#composer").blur()
        walk.check("conversation")

        page.get_by_test_id("open-documents").click()
        expect(page.get_by_test_id("panel-documents")).to_be_visible()
        page.get_by_test_id("collection-open").first.click()
        expect(page.get_by_test_id("collection-detail")).to_be_visible()
        walk.check("documents")

        open_menu(page, "menu-keys")
        expect(page.get_by_test_id("panel-title")).to_have_text("API keys")
        walk.check("keys")

        open_menu(page, "menu-usage")
        expect(page.get_by_test_id("panel-title")).to_have_text("Usage")
        walk.check("usage")

        open_menu(page, "menu-admin")
        expect(page.get_by_test_id("panel-title")).to_have_text("Admin")
        walk.check("admin")
        page.get_by_test_id("admin-system-tab").click()
        expect(page.locator("#admin-tabpanel")).to_have_attribute("data-tab", "system")
        expect(page.get_by_test_id("system-model-row")).to_have_count(1)
        walk.check("system")

        status, created = page_fetch(
            page,
            "POST",
            "/api/widget/keys",
            {"name": "Demo", "allowed_origins": [server.url]},
        )
        assert status == 201, created
        page.goto(f"/widget/demo?key={created['secret']}")
        expect(page.locator("onebox-widget")).to_have_attribute("data-state", "ready")
        page.get_by_test_id("widget-launcher").click()
        expect(page.get_by_test_id("widget-panel")).to_be_visible()
        walk.check("widget", themed=False)
    finally:
        context.close()

    failing = {screen: found for screen, found in walk.found.items() if found}
    assert failing == {}, "\n".join(f"{k}: {v}" for k, v in failing.items())
    assert len(walk.found) == 2 * 10
    problems.assert_clean()
    for name in SHOTS:
        for scheme in SCHEMES:
            assert (shots_dir / f"{name}-{scheme}.png").stat().st_size > 10_000
