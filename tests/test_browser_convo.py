"""End-to-end: the conversation menu in headless Chromium. Export downloads, a share link
opened signed out (a fresh browser context) and revoked, presets and the system prompt,
with XSS payloads everywhere they can go."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from markdown_it import MarkdownIt

from onebox.core.db import create_engine, create_sessionmaker
from onebox.core.migrate import upgrade
from onebox.core.settings import Settings
from onebox.llm.base import ChatRequest
from onebox.llm.fake import FakeProvider
from onebox.users.service import AccountService
from tests.browser import ASSISTANT, PageProblems, expect, launch_browser, new_page
from tests.conftest import LiveServer, run_live_server
from tests.convo_helpers import XSS, conversation_file, message, source

pytestmark = pytest.mark.browser

EMAIL = "owner@example.com"
PASSWORD = "owner-password-1"


async def _make_account(settings: Settings) -> None:
    settings.prepare_data_dir()
    engine = create_engine(settings.resolved_database_url)
    await upgrade(engine)
    async with create_sessionmaker(engine)() as session:
        await AccountService(session).create_account(EMAIL, PASSWORD, is_admin=False)
        await session.commit()
    await engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_browser()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path_factory.mktemp("convo"),
        llm_provider="fake",
        model_name="fake-echo",
        login_attempts_per_minute=1000,
    )
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _make_account(settings)).result()
    for live in run_live_server(
        settings, FakeProvider(model_name="fake-echo", context_size=4096, token_delay=0.005)
    ):
        deadline = time.monotonic() + 10
        while httpx.get(f"{live.url}/api/auth/me", timeout=5).status_code != 401:
            assert time.monotonic() < deadline, "the server stayed in single-user mode"
            time.sleep(0.1)
        yield live


@pytest.fixture
def problems() -> PageProblems:
    return PageProblems(expected={401, 404})


@pytest.fixture
def owner(browser: Any, server: LiveServer, problems: PageProblems) -> Iterator[Any]:
    with new_page(browser, server.url, problems, handle_dialogs=True) as page:
        page.goto("/")
        page.get_by_test_id("login-email").fill(EMAIL)
        page.get_by_test_id("login-password").fill(PASSWORD)
        page.get_by_test_id("login-submit").click()
        page.wait_for_selector("html[data-ready='true']")
        expect(page.get_by_test_id("account-name")).to_have_text(EMAIL)
        yield page


def menu(page: Any, item: str) -> None:
    page.get_by_test_id("convo-menu").click()
    page.get_by_test_id(item).click()


def current_id(page: Any) -> str:
    page.wait_for_url(re.compile(r"/c/[^/]+$"))
    return str(page.url.rsplit("/c/", 1)[1])


def api_get(page: Any, path: str) -> Any:
    response = page.request.get(path)
    assert response.ok, response.text()
    return response.json()


def test_share_export_and_revoke(
    owner: Any, browser: Any, server: LiveServer, problems: PageProblems, tmp_path: Path
) -> None:
    document = conversation_file(
        [
            message("1", None, "user", f"Tell me about {XSS}", 1),
            message(
                "2", "1", "assistant", f"**Bold** answer [1] {XSS} [x](javascript:alert(3))", 2,
                sources=[source(1, f"guide-{XSS}.md"), source(2, "unused.md", used=False)],
            ),
        ],
        title=f"Shared {XSS}",
    )  # fmt: skip
    upload = tmp_path / "conversation.json"
    upload.write_text(json.dumps(document))
    owner.get_by_test_id("convo-menu").click()
    with owner.expect_file_chooser() as chooser:
        owner.get_by_test_id("menu-import").click()
    chooser.value.set_files(str(upload))
    conversation_id = current_id(owner)
    expect(owner.locator(ASSISTANT)).to_have_count(1)
    expect(owner.locator("#chat-title")).to_have_text(f"Shared {XSS}")

    # Exports download as files; the Markdown carries no live HTML.
    with owner.expect_download() as markdown_download:
        menu(owner, "export-md")
    markdown = Path(markdown_download.value.path()).read_text()
    assert markdown_download.value.suggested_filename.endswith(".md")
    assert "Bold" in markdown
    shown = MarkdownIt("commonmark", {"html": True}).render(markdown)  # a trusting viewer
    assert not re.search(r"<(img|script)\b", shown), shown
    with owner.expect_download() as json_download:
        menu(owner, "export-json")
    exported = json.loads(Path(json_download.value.path()).read_text())
    assert [m["content"] for m in exported["messages"]] == [
        m["content"] for m in document["messages"]
    ]

    # A share link, shown once.
    menu(owner, "menu-share")
    owner.get_by_test_id("share-create").click()
    url = owner.get_by_test_id("share-url").input_value()
    assert re.fullmatch(rf"{re.escape(server.url)}/s/[A-Za-z0-9_-]{{43}}", url), url
    expect(owner.get_by_test_id("share-row")).to_have_count(1)

    # Someone else, signed out, in another browser.
    visitor_problems = PageProblems()
    with new_page(browser, server.url, visitor_problems) as visitor:
        dialogs: list[str] = []
        visitor.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        requested: list[str] = []
        visitor.on("request", lambda r: requested.append(r.url))
        response = visitor.goto(url)
        assert response.status == 200
        expect(visitor.locator("h1")).to_have_text(f"Shared {XSS}")
        expect(visitor.locator("article")).to_have_count(2)
        expect(visitor.locator(".shared-content strong")).to_have_text("Bold")
        sources = visitor.get_by_label("Sources").locator("li")
        expect(sources).to_have_count(2)
        expect(sources.first).to_contain_text(f"guide-{XSS}.md")
        expect(sources.first).to_contain_text("cited")
        assert visitor.locator("img, script, iframe, svg").count() == 0
        hrefs = visitor.locator("a").evaluate_all("links => links.map(a => a.href)")
        assert not any(h.lower().startswith("javascript:") for h in hrefs), hrefs
        assert EMAIL not in visitor.content()
        assert all(r.startswith(server.url) for r in requested), requested
        visitor.wait_for_timeout(200)
        assert dialogs == []
        visitor_problems.assert_clean()

        # Revoked: the same link is a 404 page.
        owner.get_by_test_id("share-revoke").click()
        expect(owner.get_by_test_id("share-list")).to_contain_text("No active links.")
        gone = visitor.goto(url)
        assert gone.status == 404
        expect(visitor.locator("h1")).to_have_text("Link not found")
        assert "Bold" not in visitor.content()
    assert api_get(owner, f"/api/conversations/{conversation_id}/shares") == []
    problems.forget_http(404)
    problems.assert_clean()


def test_presets_and_system_prompt(owner: Any, server: LiveServer, problems: PageProblems) -> None:
    seen: list[ChatRequest] = []
    original = server.provider.stream_chat

    def recording(request: ChatRequest):  # type: ignore[no-untyped-def]
        if request.purpose == "chat":  # not the background title requests
            seen.append(request)
        return original(request)

    server.provider.stream_chat = recording  # type: ignore[method-assign]
    try:
        name = f"Pirate {XSS}"
        prompt = f"Talk like a pirate. {XSS}"
        # The menu works from the keyboard (no conversation open: presets and import).
        button = owner.get_by_test_id("convo-menu")
        button.focus()
        owner.keyboard.press("Enter")
        expect(owner.get_by_test_id("menu-presets")).to_be_focused()
        owner.keyboard.press("ArrowDown")
        expect(owner.get_by_test_id("menu-import")).to_be_focused()
        owner.keyboard.press("Escape")
        expect(button).to_be_focused()
        expect(owner.locator("#convo-menu-popup")).to_be_hidden()
        owner.keyboard.press("Enter")
        owner.keyboard.press("Enter")  # "Presets…"
        expect(owner.get_by_test_id("presets-dialog")).to_be_visible()
        owner.get_by_test_id("preset-name-input").fill(name)
        owner.get_by_test_id("preset-system-prompt").fill(prompt)
        owner.get_by_test_id("preset-temperature").fill("0.4")
        owner.get_by_test_id("preset-save").click()
        row = owner.get_by_test_id("preset-row")
        expect(row).to_have_count(1)
        expect(row.get_by_test_id("preset-name")).to_have_text(name)  # text, not markup
        assert owner.locator("dialog img, dialog script").count() == 0

        row.get_by_test_id("preset-new-chat").click()
        expect(owner.get_by_test_id("presets-dialog")).to_have_count(0)
        conversation_id = current_id(owner)
        stored = api_get(owner, f"/api/conversations/{conversation_id}")
        assert (stored["system_prompt"], stored["temperature"]) == (prompt, 0.4)

        composer = owner.get_by_test_id("composer")
        composer.fill("ahoy")
        composer.press("Enter")
        expect(owner.locator(ASSISTANT)).to_have_attribute("data-status", "complete")
        assert prompt in seen[-1].messages[0].content
        assert seen[-1].params.temperature == 0.4

        # The system prompt editor shows the prompt as text and saves a new one.
        menu(owner, "menu-system-prompt")
        editor = owner.get_by_test_id("system-prompt")
        expect(editor).to_have_value(prompt)
        editor.fill("Answer in haiku.")
        owner.get_by_test_id("temperature").fill("")
        owner.get_by_test_id("settings-save").click()
        expect(owner.get_by_test_id("settings-dialog")).to_have_count(0)
        stored = api_get(owner, f"/api/conversations/{conversation_id}")
        assert (stored["system_prompt"], stored["temperature"]) == ("Answer in haiku.", None)

        # Applying the preset to the open chat brings its settings back.
        menu(owner, "menu-presets")
        owner.get_by_test_id("preset-apply").click()
        expect(owner.get_by_test_id("presets-notice")).to_contain_text("Applied")
        stored = api_get(owner, f"/api/conversations/{conversation_id}")
        assert (stored["system_prompt"], stored["temperature"]) == (prompt, 0.4)
        owner.keyboard.press("Escape")
        expect(owner.get_by_test_id("presets-dialog")).to_have_count(0)
        assert owner.locator("img, script:not([src])").count() == 0
    finally:
        server.provider.stream_chat = original  # type: ignore[method-assign]
    problems.assert_clean()
