"""The toolbar under each message in headless Debian Chromium: regenerate, edit and resend,
the version switcher (remembered across reloads), thumbs with a comment, copy, the stats
tooltip, and a long conversation loaded in pages and windowed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

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
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser

USER = '[data-testid="message"][data-role="user"]'
BODY = '[data-testid="message-body"]'
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_browser()


@pytest.fixture
def problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def page(browser: Any, live_server: LiveServer, problems: PageProblems) -> Iterator[Any]:
    with new_page(browser, live_server.url, problems, permissions=CLIPBOARD) as page:
        yield page


def _final(row: Any) -> None:
    expect(row).to_have_attribute("data-status", "complete")


def _conversation_id(page: Any) -> str:
    page.wait_for_url(re.compile(r"/c/[^/]+$"))
    return str(page.url.rsplit("/c/", 1)[1])


def _position(row: Any) -> Any:
    return row.get_by_test_id("branch-position")


def test_regenerate_and_switch_is_remembered(
    page: Any, live_server: LiveServer, problems: PageProblems
) -> None:
    open_app(page)
    first = send(page, "hello")
    _final(first)
    first_id = first.get_attribute("data-id")
    expect(first.get_by_test_id("branch-switcher")).to_have_count(0)

    first.get_by_role("button", name="Regenerate reply").click()
    replies = page.locator(ASSISTANT)
    expect(replies).to_have_count(1)  # the new version replaces the old on screen
    again = replies.first
    _final(again)
    expect(again.locator(BODY)).to_have_text("Echo: hello")
    expect(_position(again)).to_have_text("2/2")
    second_id = again.get_attribute("data-id")
    assert second_id
    assert second_id != first_id
    expect(page.locator(USER)).to_have_count(1)  # the question was not stored again

    again.get_by_role("button", name="Previous version").click()
    expect(page.locator(ASSISTANT).first).to_have_attribute("data-id", str(first_id))
    expect(_position(page.locator(ASSISTANT).first)).to_have_text("1/2")
    expect(page.get_by_role("button", name="Next version")).to_be_focused()

    page.reload()
    page.wait_for_selector("html[data-ready='true']")
    expect(page.locator(ASSISTANT).first).to_have_attribute("data-id", str(first_id))
    expect(_position(page.locator(ASSISTANT).first)).to_have_text("1/2")
    problems.assert_clean()


def test_edit_branches_and_switch_back(page: Any, problems: PageProblems) -> None:
    open_app(page)
    _final(send(page, "one"))
    _final(send(page, "two"))
    question = page.locator(USER).nth(1)
    question.get_by_role("button", name="Edit and resend").click()
    box = question.get_by_role("textbox", name="Edit your message")
    expect(box).to_be_focused()
    expect(box).to_have_value("two")
    box.fill("two, edited")
    box.press("Enter")

    expect(page.locator(USER)).to_have_count(2)
    _final(page.locator(ASSISTANT).nth(1))
    expect(page.locator(ASSISTANT).nth(1).locator(BODY)).to_have_text("Echo: two, edited")
    edited = page.locator(USER).nth(1)
    expect(edited.locator(BODY)).to_have_text("two, edited")
    expect(_position(edited)).to_have_text("2/2")

    edited.get_by_role("button", name="Previous version").click()
    expect(page.locator(USER).nth(1).locator(BODY)).to_have_text("two")
    expect(page.locator(ASSISTANT).nth(1).locator(BODY)).to_have_text("Echo: two")
    expect(_position(page.locator(USER).nth(1))).to_have_text("1/2")

    page.reload()
    page.wait_for_selector("html[data-ready='true']")
    expect(page.locator(USER).nth(1).locator(BODY)).to_have_text("two")
    # The next message continues the branch shown.
    _final(send(page, "three"))
    expect(page.locator(USER).locator(BODY)).to_have_text(["one", "two", "three"])
    problems.assert_clean()


def test_thumbs_with_a_comment_are_stored_and_inert(
    page: Any, live_server: LiveServer, problems: PageProblems
) -> None:
    page.on("dialog", problems.dialog)
    open_app(page)
    reply = send(page, "rate this")
    _final(reply)
    reply.get_by_role("button", name="Bad reply").click()
    expect(reply.get_by_role("button", name="Bad reply")).to_have_attribute("aria-pressed", "true")
    comment = reply.get_by_role("textbox", name="Feedback comment")
    expect(comment).to_be_focused()
    comment.fill(XSS)
    reply.get_by_test_id("feedback-save").click()
    note = reply.get_by_test_id("feedback-note")
    expect(note).to_have_text(f"Your feedback: {XSS}")

    cid = _conversation_id(page)
    stored = httpx.get(f"{live_server.url}/api/conversations/{cid}").json()["messages"][1]
    assert stored["feedback"] == {**stored["feedback"], "rating": "down", "comment": XSS}

    page.reload()
    page.wait_for_selector("html[data-ready='true']")
    reply = page.locator(ASSISTANT).first
    expect(reply.get_by_role("button", name="Bad reply")).to_have_attribute("aria-pressed", "true")
    expect(reply.get_by_test_id("feedback-note")).to_have_text(f"Your feedback: {XSS}")
    assert page.evaluate("window.__xss") is None
    assert page.locator("#message-list img, #message-list script").count() == 0
    assert problems.dialogs == []

    # The same thumb again clears it.
    reply.get_by_role("button", name="Bad reply").click()
    expect(reply.get_by_role("button", name="Bad reply")).to_have_attribute("aria-pressed", "false")
    expect(reply.get_by_test_id("feedback-note")).to_have_count(0)
    stored = httpx.get(f"{live_server.url}/api/conversations/{cid}").json()["messages"][1]
    assert stored["feedback"] is None
    problems.assert_clean()


def test_copy_and_the_stats_tooltip(page: Any, problems: PageProblems) -> None:
    open_app(page)
    reply = send(page, "copy **this**")
    _final(reply)
    reply.get_by_role("button", name="Copy message").click()
    expect(reply.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == "Echo: copy **this**"
    page.locator(USER).first.get_by_role("button", name="Copy message").click()
    page.wait_for_function("async () => (await navigator.clipboard.readText()) === 'copy **this**'")

    tip = reply.locator(".message-stats")
    expect(tip).to_be_hidden()  # no stats line any more: a tooltip
    info = reply.get_by_role("button", name="Reply details")
    tip_id = tip.get_attribute("id")
    expect(info).to_have_attribute("aria-describedby", str(tip_id))
    expect(tip).to_have_attribute("role", "tooltip")
    expect(info).to_have_attribute("title", re.compile(r"^fake-echo · \d+ tokens"))
    info.hover()
    expect(tip).to_be_visible()
    expect(tip).to_contain_text("tok/s")
    expect(tip).to_contain_text("first token")
    page.mouse.move(0, 0)
    info.focus()
    page.keyboard.press("Escape")
    expect(info).not_to_be_focused()
    problems.assert_clean()


def test_long_conversation_loads_in_pages_and_stays_small(
    page: Any, live_server: LiveServer, problems: PageProblems
) -> None:
    live_server.provider.token_delay = 0  # type: ignore[attr-defined]
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        cid = client.post("/api/conversations", json={}).json()["id"]
        for index in range(60):
            text = f"message {index}\n\n" + "a fairly long line of words " * 8
            response = client.post(f"/api/conversations/{cid}/messages", json={"content": text})
            assert response.status_code == 200
    open_app(page, f"/c/{cid}")
    rows = page.locator('[data-testid="message"]')
    expect(rows).to_have_count(50)
    expect(rows.last.locator(BODY)).to_contain_text("Echo: message 59")
    # Far rows hold no content: they are shells or parked.
    page.wait_for_timeout(300)
    empty = page.locator(".message.is-shell, .message.is-parked").count()
    assert empty > 20
    # Scrolling up loads the older page and builds the rows it reaches.
    for _ in range(40):
        page.locator("#messages").evaluate("s => { s.scrollTop = 0; }")
        page.wait_for_timeout(100)
        if rows.count() == 120 and rows.first.locator(BODY).count():
            break
    expect(rows).to_have_count(120)
    expect(rows.first.locator(BODY)).to_contain_text("message 0")
    expect(page.get_by_test_id("load-earlier")).to_be_hidden()
    problems.assert_clean()
