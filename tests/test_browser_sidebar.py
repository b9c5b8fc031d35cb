"""The sidebar in headless Debian Chromium: search that jumps to a message, pin and archive,
the model's title arriving after the first reply, and markup that stays text."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from onebox.core.settings import Settings
from onebox.llm.base import ChatRequest, StreamChunk, TextDelta, Usage
from onebox.llm.fake import FakeProvider
from tests.browser import PageProblems, expect, launch_browser, new_page, open_app, send
from tests.conftest import LiveServer, run_live_server

pytestmark = pytest.mark.browser

MESSAGE = '[data-testid="message"]'
HIT = '[data-testid="search-hit"]'


@dataclass
class NamingFake(FakeProvider):
    """The fake model, which names every conversation "Fresh title"."""

    async def stream_chat(self, request: ChatRequest) -> AsyncGenerator[StreamChunk]:
        if request.purpose == "title":
            yield TextDelta('"Fresh title."')
            yield Usage(prompt_tokens=1, completion_tokens=1, finish_reason="stop")
            return
        async for chunk in super().stream_chat(request):
            yield chunk


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_browser()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "live",
        llm_provider="fake",
        model_name="fake-echo",
    )
    yield from run_live_server(
        settings, NamingFake(model_name="fake-echo", context_size=4096, token_delay=0.005)
    )


@pytest.fixture
def problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def page(browser: Any, server: LiveServer, problems: PageProblems) -> Iterator[Any]:
    with new_page(browser, server.url, problems, height=640) as page:
        yield page


def seed(server: LiveServer, messages: list[str], title: str = "") -> str:
    """A conversation with these user messages, each answered (through the real API)."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        conversation = client.post("/api/conversations", json={"title": title}).json()
        for content in messages:
            path = f"/api/conversations/{conversation['id']}/messages"
            response = client.post(path, json={"content": content})
            assert response.status_code == 200, response.text
        return str(conversation["id"])


def item(page: Any, conversation_id: str) -> Any:
    return page.locator(f'[data-testid="conversation-item"][data-id="{conversation_id}"]')


def lists_hold_only_items(page: Any) -> bool:
    return bool(
        page.evaluate(
            "() => [...document.querySelectorAll('#sidebar ul')].every("
            "ul => [...ul.children].every(child => child.tagName === 'LI'))"
        )
    )


def test_search_finds_a_message_and_jumps_to_it(
    page: Any, server: LiveServer, problems: PageProblems
) -> None:
    long = "\n".join(f"line {n}" for n in range(14))
    target = seed(server, ["Where do pelicans sleep?", long, long, long])
    other = seed(server, ["Nothing to see here"])
    open_app(page, f"/c/{other}")

    search = page.get_by_test_id("search-input")
    search.fill("pelicans")
    hits = page.locator(HIT)
    expect(hits).to_have_count(2)  # the question and its echo (the model titled it)
    expect(page.locator("#search-status")).to_have_text("2 results")
    question = hits.filter(has_text="You")
    expect(question.get_by_test_id("search-hit-title")).to_have_text("Fresh title")
    expect(question.get_by_test_id("search-hit-snippet")).to_have_text("Where do pelicans sleep?")
    expect(question.locator("mark")).to_have_text("pelicans")
    message_id = question.get_attribute("data-message-id")

    question.click()
    page.wait_for_url(f"**/c/{target}")
    row = page.locator(f'{MESSAGE}[data-id="{message_id}"]')
    expect(row).to_have_class(re.compile(r"\bsearch-target\b"))
    expect(row).to_have_attribute("id", f"msg-{message_id}")
    expect(row).to_be_focused()
    expect(row).to_be_in_viewport()
    # The newest message, where a conversation opens, is scrolled away.
    expect(page.locator(MESSAGE).last).not_to_be_in_viewport()

    # No word to look for: said beside the box, not as an error.
    search.fill("-- ***")
    expect(page.locator("#search-status")).to_contain_text("at least one word")
    problems.forget_http(400)
    search.press("Escape")
    expect(page.get_by_test_id("search-results")).to_be_hidden()
    expect(item(page, target)).to_be_visible()
    problems.assert_clean()


def test_pin_archive_and_unarchive(page: Any, server: LiveServer, problems: PageProblems) -> None:
    first = seed(server, [], title="First chat")
    second = seed(server, [], title="Second chat")
    open_app(page)
    assert lists_hold_only_items(page)
    groups = page.locator("#conversation-list h2.conversation-group")
    expect(groups).to_have_text(["Today"])

    # Pin: the older chat moves to the top, under "Pinned".
    item(page, first).hover()
    item(page, first).get_by_test_id("pin").click()
    expect(groups).to_have_text(["Pinned", "Today"])
    expect(page.locator(".conversation-section").first.locator("li")).to_have_attribute(
        "data-id", first
    )
    expect(item(page, first).get_by_test_id("unpin")).to_have_attribute(
        "aria-label", "Unpin “First chat”"
    )
    assert lists_hold_only_items(page)

    # Archive: it leaves the list, and is found under "Archived chats".
    item(page, second).hover()
    item(page, second).get_by_test_id("archive").click()
    expect(item(page, second)).to_have_count(0)
    toggle = page.get_by_test_id("archive-toggle")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#archived-heading")).to_be_visible()
    expect(page.locator('[data-testid="conversation-item"]')).to_have_count(1)
    archived = item(page, second)
    expect(archived.get_by_test_id("conversation-title")).to_have_text("Second chat")
    assert lists_hold_only_items(page)

    # It opens from there, and comes back with "Unarchive".
    archived.get_by_test_id("conversation-title").click()
    page.wait_for_url(f"**/c/{second}")
    archived.hover()
    archived.get_by_test_id("unarchive").click()
    expect(archived).to_have_count(0)
    expect(page.locator("#conversation-empty")).to_have_text("No archived chats.")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "false")
    expect(item(page, second)).to_be_visible()

    # All of it was saved.
    open_app(page)
    expect(groups).to_have_text(["Pinned", "Today"])
    expect(page.locator('[data-testid="conversation-item"]')).to_have_count(2)
    problems.assert_clean()


def test_the_models_title_replaces_the_first_line(page: Any, problems: PageProblems) -> None:
    open_app(page)
    send(page, "## hello there")
    title = page.locator('[data-testid="conversation-item"]').get_by_test_id("conversation-title")
    expect(title).to_have_text("Fresh title")
    expect(page.locator("#chat-title")).to_have_text("Fresh title")
    problems.assert_clean()


def test_markup_in_titles_and_messages_stays_text_in_results(
    page: Any, server: LiveServer, problems: PageProblems
) -> None:
    page.on("dialog", lambda dialog: (problems.dialogs.append(dialog.message), dialog.dismiss()))
    title = '<img src=x onerror="alert(1)">xsspayload'
    message = "<script>alert(2)</script> xsspayload <img src=x onerror=alert(3)>"
    seed(server, [message], title=title)
    open_app(page)
    page.get_by_test_id("search-input").fill("xsspayload")
    hits = page.locator(HIT)
    expect(hits).to_have_count(3)  # the title, the question, the echo
    results = page.get_by_test_id("search-results")
    assert results.locator("img, script, svg, iframe, [onerror]").count() == 0
    expect(results.locator("mark")).to_have_count(3)
    snippets = hits.get_by_test_id("search-hit-snippet").all_text_contents()
    assert snippets[0] == title
    assert message in snippets
    expect(hits.first.get_by_test_id("search-hit-title")).to_have_text(title)
    page.wait_for_timeout(300)
    assert problems.dialogs == []
    problems.assert_clean()
