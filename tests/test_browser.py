"""End-to-end tests of the web UI in headless Debian Chromium.

They drive the real page against the ``live_server`` fixture (a uvicorn server running
the real app with the deterministic fake provider, which replies ``"Echo: " + message``
one word a chunk, 20 ms apart).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from onebox.app import create_app
from onebox.core.settings import Settings
from onebox.llm.catalog import ModelSpec
from onebox.llm.fake import FakeProvider
from onebox.llm.registry import ModelEntry, ModelRegistry
from tests.browser import (
    ASSISTANT,
    CLIPBOARD,
    PageProblems,
    expect,
    launch_browser,
    new_page,
    open_app,
    send,
)
from tests.conftest import LiveServer, run_live_server

pytestmark = pytest.mark.browser

SCREENSHOT = Path("/tmp/onebox-ui.png")

MESSAGE = '[data-testid="message"]'
USER = '[data-testid="message"][data-role="user"]'
BODY = '[data-testid="message-body"]'


def _words(prefix: str, count: int) -> str:
    return " ".join(f"{prefix}{i}" for i in range(count))


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_browser()


@pytest.fixture
def problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def page(browser: Any, live_server: Any, problems: PageProblems) -> Iterator[Any]:
    yield from _open_page(browser, live_server.url, problems)


@pytest.fixture
def two_model_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A live server with two fake models: "echo" (the default) and "shouty"."""
    models = ModelRegistry(
        [
            ModelEntry(
                ModelSpec(name="echo", provider="fake", aliases=["default"]),
                FakeProvider(model_name="echo", context_size=4096, token_delay=0.01),
            ),
            ModelEntry(
                ModelSpec(name="shouty", provider="fake"),
                FakeProvider(
                    model_name="shouty", context_size=4096, reply="LOUD REPLY", token_delay=0.4
                ),
            ),
        ],
        default="echo",
    )
    settings = Settings(_env_file=None, data_dir=tmp_path / "two")  # type: ignore[call-arg]
    yield from run_live_server(
        settings,
        FakeProvider(model_name="unused", context_size=512),
        app_factory=lambda s: create_app(s, models=models),
    )


@pytest.fixture
def two_model_page(
    browser: Any, two_model_server: LiveServer, problems: PageProblems
) -> Iterator[Any]:
    yield from _open_page(browser, two_model_server.url, problems)


def _open_page(browser: Any, url: str, problems: PageProblems) -> Iterator[Any]:
    with new_page(browser, url, problems, permissions=CLIPBOARD) as page:
        yield page


# ----------------------------------------------------------------------------- helpers


def wait_final(message: Any, status: str = "complete") -> None:
    expect(message).to_have_attribute("data-status", status)


def current_conversation_id(page: Any) -> str:
    page.wait_for_url(re.compile(r"/c/[^/]+$"))
    return page.url.rsplit("/c/", 1)[1]


def sidebar_item(page: Any, conversation_id: str) -> Any:
    return page.locator(f'[data-testid="conversation-item"][data-id="{conversation_id}"]')


# ------------------------------------------------------------------------------- tests


def test_streams_reply_and_survives_reload(page: Any, problems: PageProblems) -> None:
    open_app(page)
    expect(page.locator("#empty-state")).to_be_visible()
    expect(page.get_by_test_id("composer")).to_be_focused()

    text = "Tell me a story " + _words("w", 60)  # ~64 chunks x 20 ms: well over a second
    reply = send(page, text)
    body = reply.locator(BODY)

    # Text arrives while the reply is still streaming: checked in one atomic look.
    page.wait_for_function(
        """() => {
            const rows = document.querySelectorAll('[data-testid="message"][data-role="assistant"]');
            const row = rows[rows.length - 1];
            const body = row && row.querySelector('[data-testid="message-body"]');
            return body && row.dataset.status === "streaming"
                && body.textContent.includes("Echo:") && !body.textContent.includes("w59");
        }"""
    )
    expect(page.get_by_test_id("stop")).to_be_visible()
    expect(page.get_by_test_id("send")).to_be_hidden()

    wait_final(reply)
    expect(body).to_have_text(f"Echo: {text}")
    assert body.locator("p").count() == 1  # rendered from the server's html
    expect(reply.locator(".message-stats")).to_contain_text("tokens")
    expect(page.get_by_test_id("send")).to_be_visible()
    expect(page.get_by_test_id("stop")).to_be_hidden()
    expect(page.get_by_test_id("composer")).to_be_focused()
    expect(page.get_by_test_id("composer")).to_have_value("")

    user = page.locator(USER).last
    expect(user.locator(BODY)).to_have_text(text)
    assert user.get_attribute("data-id")
    assert reply.get_attribute("data-id")

    conversation_id = current_conversation_id(page)
    item = sidebar_item(page, conversation_id)
    expect(item.get_by_test_id("conversation-title")).to_have_text(re.compile(r"^Tell me a story"))
    expect(item).to_have_class(re.compile(r"\bactive\b"))

    # Deep link: a reload of /c/{id} shows the stored conversation.
    page.reload()
    page.wait_for_selector("html[data-ready='true']")
    expect(page.locator(MESSAGE)).to_have_count(2)
    expect(page.locator(ASSISTANT).locator(BODY)).to_have_text(f"Echo: {text}")
    expect(page.locator(ASSISTANT)).to_have_attribute("data-status", "complete")

    # From the start page, a click in the sidebar opens it.
    open_app(page, "/")
    expect(page.locator(MESSAGE)).to_have_count(0)
    sidebar_item(page, conversation_id).get_by_test_id("conversation-title").click()
    page.wait_for_url(f"**/c/{conversation_id}")
    expect(page.locator(USER).locator(BODY)).to_have_text(text)
    expect(page.locator(ASSISTANT).locator(BODY)).to_have_text(f"Echo: {text}")
    problems.assert_clean()


def test_code_blocks_get_a_copy_button(page: Any, problems: PageProblems) -> None:
    open_app(page)
    reply = send(
        page,
        "Here is a greeting function:\n```python\ndef greet(name):\n"
        "    return f'hello {name}'\n```\nThat's **all**.",
    )
    wait_final(reply)
    block = reply.locator(".code-block")
    expect(block).to_have_count(1)
    expect(block.locator("pre > code")).to_contain_text("def greet(name):")
    expect(block.locator(".code-lang")).to_have_text("python")
    copy = block.get_by_test_id("copy-code")
    expect(copy).to_have_text("Copy")
    copy.click()
    expect(copy).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert "def greet(name):" in copied
    expect(reply.locator(BODY).locator("strong")).to_have_text("all")
    page.screenshot(path=str(SCREENSHOT))
    problems.assert_clean()


def test_switching_between_conversations(page: Any, problems: PageProblems) -> None:
    open_app(page)
    wait_final(send(page, "first conversation alpha"))
    first = current_conversation_id(page)

    page.get_by_test_id("new-chat").click()
    page.wait_for_url(re.compile(r"/$"))
    expect(page.locator(MESSAGE)).to_have_count(0)
    expect(page.locator("#empty-state")).to_be_visible()
    expect(page.get_by_test_id("composer")).to_be_focused()

    wait_final(send(page, "second conversation beta"))
    second = current_conversation_id(page)
    assert second != first
    expect(sidebar_item(page, second).get_by_test_id("conversation-title")).to_have_text(
        "second conversation beta"
    )

    sidebar_item(page, first).click()
    page.wait_for_url(f"**/c/{first}")
    expect(page.locator(MESSAGE)).to_have_count(2)
    expect(page.locator(ASSISTANT).locator(BODY)).to_have_text("Echo: first conversation alpha")
    expect(sidebar_item(page, first)).to_have_class(re.compile(r"\bactive\b"))
    expect(sidebar_item(page, second)).not_to_have_class(re.compile(r"\bactive\b"))

    sidebar_item(page, second).click()
    page.wait_for_url(f"**/c/{second}")
    expect(page.locator(ASSISTANT).locator(BODY)).to_have_text("Echo: second conversation beta")

    # Browser history follows the switches.
    page.go_back()
    page.wait_for_url(f"**/c/{first}")
    expect(page.locator(ASSISTANT).locator(BODY)).to_have_text("Echo: first conversation alpha")

    # A follow-up lands in the open conversation.
    wait_final(send(page, "follow up gamma"))
    expect(page.locator(MESSAGE)).to_have_count(4)
    assert current_conversation_id(page) == first
    problems.assert_clean()


def test_model_and_user_text_cannot_inject_markup(page: Any, problems: PageProblems) -> None:
    page.on("dialog", lambda dialog: (problems.dialogs.append(dialog.message), dialog.dismiss()))
    open_app(page)
    payloads = [
        "<img src=x onerror=alert(1)>",
        "[click me](javascript:alert(1))",
        "<script>alert(2)</script> <svg onload=alert(3)>",
    ]
    for payload in payloads:
        wait_final(send(page, payload))

    def check() -> None:
        assert page.locator(f"{BODY} img, {BODY} script, {BODY} svg, {BODY} iframe").count() == 0
        hrefs = page.locator(f"{BODY} a").evaluate_all(
            "links => links.map(a => a.getAttribute('href'))"
        )
        for href in hrefs:
            assert not (href or "").strip().lower().startswith("javascript:"), hrefs
        users = page.locator(USER).locator(BODY).all_text_contents()
        assert users == payloads
        replies = [r.strip() for r in page.locator(ASSISTANT).locator(BODY).all_text_contents()]
        assert replies[0] == "Echo: <img src=x onerror=alert(1)>"
        assert "click me" in replies[1]
        assert "<script>alert(2)</script>" in replies[2]

    check()
    conversation_id = current_conversation_id(page)
    open_app(page, f"/c/{conversation_id}")  # stored html goes through the same checks
    expect(page.locator(MESSAGE)).to_have_count(2 * len(payloads))
    check()
    page.wait_for_timeout(300)
    assert problems.dialogs == []
    problems.assert_clean()


def test_stop_keeps_a_partial_reply(page: Any, problems: PageProblems) -> None:
    open_app(page)
    text = "Please ramble " + _words("r", 300)  # ~6 s of streaming
    reply = send(page, text)
    expect(reply.locator(BODY)).to_contain_text("Echo: Please ramble")
    expect(reply).to_have_attribute("data-status", "streaming")
    page.get_by_test_id("stop").click()

    wait_final(reply, "partial")
    expect(reply.locator(".message-marker")).to_be_visible()
    expect(reply.locator(".message-marker")).to_contain_text("Stopped")
    expect(page.get_by_test_id("send")).to_be_visible()
    expect(page.get_by_test_id("stop")).to_be_hidden()
    expect(page.get_by_test_id("composer")).to_be_focused()
    shown = reply.locator(BODY).text_content() or ""
    assert shown.startswith("Echo: Please ramble")
    assert "r299" not in shown

    # The server kept the partial reply.
    conversation_id = current_conversation_id(page)
    open_app(page, f"/c/{conversation_id}")
    stored = page.locator(ASSISTANT)
    expect(stored).to_have_attribute("data-status", "partial")
    expect(stored.locator(".message-marker")).to_be_visible()
    assert "r299" not in (stored.locator(BODY).text_content() or "")

    # And the conversation carries on.
    wait_final(send(page, "short one"))
    problems.assert_clean()


def test_rename_and_delete(page: Any, problems: PageProblems) -> None:
    open_app(page)
    wait_final(send(page, "conversation to rename"))
    conversation_id = current_conversation_id(page)
    item = sidebar_item(page, conversation_id)
    title = item.get_by_test_id("conversation-title")
    expect(title).to_have_text("conversation to rename")

    # Rename button, Enter saves.
    item.hover()
    item.get_by_test_id("rename").click()
    field = item.locator("input")
    expect(field).to_be_focused()
    expect(field).to_have_value("conversation to rename")
    field.fill("Renamed chat")
    field.press("Enter")
    expect(title).to_have_text("Renamed chat")
    expect(page.locator("#chat-title")).to_have_text("Renamed chat")

    # Double-click, Escape cancels.
    title.dblclick()
    field = item.locator("input")
    expect(field).to_be_focused()
    field.fill("Not this one")
    field.press("Escape")
    expect(item.locator("input")).to_have_count(0)
    expect(title).to_have_text("Renamed chat")

    open_app(page, "/")
    expect(sidebar_item(page, conversation_id).get_by_test_id("conversation-title")).to_have_text(
        "Renamed chat"
    )
    sidebar_item(page, conversation_id).click()
    page.wait_for_url(f"**/c/{conversation_id}")
    expect(page.locator(MESSAGE)).to_have_count(2)

    # Delete: dismissing the confirmation keeps it, accepting removes it.
    item = sidebar_item(page, conversation_id)
    page.once("dialog", lambda dialog: dialog.dismiss())
    item.hover()
    item.get_by_test_id("delete").click()
    page.wait_for_timeout(200)
    expect(item).to_have_count(1)

    dialogs: list[str] = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    item.hover()
    item.get_by_test_id("delete").click()
    expect(item).to_have_count(0)
    assert dialogs
    assert "Renamed chat" in dialogs[0]
    page.wait_for_url(re.compile(r"/$"))
    expect(page.locator(MESSAGE)).to_have_count(0)
    expect(page.locator("#empty-state")).to_be_visible()

    open_app(page, "/")
    expect(sidebar_item(page, conversation_id)).to_have_count(0)
    problems.assert_clean()


def test_errors_are_shown_and_input_is_kept(page: Any, problems: PageProblems) -> None:
    # A conversation that does not exist.
    open_app(page, "/c/does-not-exist")
    banner = page.get_by_test_id("error-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("no longer exists")
    page.wait_for_url(re.compile(r"/$"))
    problems.errors.clear()  # the 404 itself is logged to the console by Chromium

    # A message the server refuses (over the size limit): banner, text kept.
    open_app(page)
    wait_final(send(page, "a fine message"))
    conversation_id = current_conversation_id(page)
    too_long = "x" * 40_000
    composer = page.get_by_test_id("composer")
    composer.fill(too_long)
    composer.press("Enter")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("limit")
    expect(composer).to_have_value(too_long)
    expect(page.locator(MESSAGE)).to_have_count(2)
    assert current_conversation_id(page) == conversation_id
    problems.errors = [e for e in problems.errors if "400" not in e]

    # The banner can be dismissed and the next message goes through.
    page.locator("#error-close").click()
    expect(banner).to_be_hidden()
    wait_final(send(page, "still working"))
    expect(page.locator(MESSAGE)).to_have_count(4)
    problems.assert_clean()


def test_narrow_screen_sidebar(page: Any, problems: PageProblems) -> None:
    page.set_viewport_size({"width": 390, "height": 760})
    open_app(page)
    wait_final(send(page, "hello from a phone"))
    conversation_id = current_conversation_id(page)
    assert page.get_by_test_id("new-chat").evaluate("el => el.getBoundingClientRect().right") <= 0
    page.locator("#menu-toggle").click()
    expect(page.get_by_test_id("new-chat")).to_be_in_viewport()
    page.wait_for_timeout(250)  # slide-in transition
    page.screenshot(path=str(SCREENSHOT.with_name("onebox-ui-narrow.png")))
    page.get_by_test_id("new-chat").click()
    page.wait_for_url(re.compile(r"/$"))
    page.locator("#menu-toggle").click()
    sidebar_item(page, conversation_id).get_by_test_id("conversation-title").click()
    page.wait_for_url(f"**/c/{conversation_id}")
    expect(page.locator(MESSAGE)).to_have_count(2)
    problems.assert_clean()


def test_model_picker(two_model_page: Any, problems: PageProblems) -> None:
    page = two_model_page
    open_app(page)
    picker = page.get_by_test_id("model-picker")
    expect(picker).to_be_visible()
    expect(picker).to_be_enabled()
    assert picker.locator("option").evaluate_all("os => os.map(o => o.value)") == [
        "echo",
        "shouty",
    ]
    expect(picker).to_have_value("echo")

    # A model picked before the conversation exists is used when it is created.
    picker.select_option("shouty")
    reply = send(page, "hello there " + _words("w", 20))
    expect(picker).to_be_disabled()  # no switching mid-reply
    wait_final(reply)
    expect(reply.locator(BODY)).to_have_text("LOUD REPLY")
    expect(reply.locator(".message-stats")).to_have_text(re.compile(r"^shouty · \d+ tokens?"))
    expect(picker).to_be_enabled()
    expect(picker).to_have_value("shouty")
    loud = current_conversation_id(page)

    page.reload()
    page.wait_for_selector("html[data-ready='true']")
    expect(picker).to_have_value("shouty")
    expect(page.locator(ASSISTANT).locator(".message-stats")).to_contain_text("shouty")

    # A second new chat starts from the default model again.
    page.get_by_test_id("new-chat").click()
    page.wait_for_url(re.compile(r"/$"))
    expect(picker).to_have_value("echo")
    reply = send(page, "quiet please")
    wait_final(reply)
    expect(reply.locator(BODY)).to_have_text("Echo: quiet please")
    expect(reply.locator(".message-stats")).to_have_text(re.compile(r"^echo · "))
    quiet = current_conversation_id(page)
    assert quiet != loud

    # Switching conversations shows each one's model.
    sidebar_item(page, loud).click()
    page.wait_for_url(f"**/c/{loud}")
    expect(picker).to_have_value("shouty")
    sidebar_item(page, quiet).click()
    page.wait_for_url(f"**/c/{quiet}")
    expect(picker).to_have_value("echo")

    # Changing the model of an existing conversation is saved and used for the next reply.
    with page.expect_response(
        lambda r: r.request.method == "PATCH" and r.url.endswith(f"/api/conversations/{quiet}")
    ) as patched:
        picker.select_option("shouty")
    assert patched.value.ok
    reply = send(page, "now loudly")
    wait_final(reply)
    expect(reply.locator(BODY)).to_have_text("LOUD REPLY")
    expect(reply.locator(".message-stats")).to_contain_text("shouty")
    open_app(page, f"/c/{quiet}")
    expect(picker).to_have_value("shouty")
    stats = page.locator(ASSISTANT).locator(".message-stats").all_text_contents()
    assert [s.split(" · ")[0] for s in stats] == ["echo", "shouty"]
    page.screenshot(path=str(SCREENSHOT.with_name("onebox-ui-models.png")))
    problems.assert_clean()
