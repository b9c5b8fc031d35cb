"""Replies render as they stream, in headless Debian Chromium: no raw markdown fences or
math delimiters ever reach the page, code is highlighted and math is MathML while the
reply is still coming, and the end changes nothing. Passage snippets show their inline
markdown, never raw ``**``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from onebox.llm.fake import FakeProvider
from tests.browser import (
    ASSISTANT,
    PageProblems,
    expect,
    launch_browser,
    new_page,
    open_app,
    send,
)
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser

BODY = '[data-testid="message-body"]'
REPLY = (
    "Here is the function:\n\n```python\ndef area(r):\n    # the disc\n"
    "    return 3.14159 * r ** 2\n\n\nprint(area(2))\n```\n\n"
    "The area is $A = \\pi r^2$, and in display form\n\n$$\n\\frac{a}{b} = \\sqrt{x}\n$$\n\n"
    "Prices like $5 and $10 stay text. That is **all**.\n"
)

# Records, on every change of the page, what the streaming reply's body showed.
WATCH = """() => {
  window.__frames = [];
  const list = document.getElementById("message-list");
  const look = () => {
    for (const row of list.querySelectorAll('[data-role="assistant"]')) {
      const body = row.querySelector('[data-testid="message-body"]');
      window.__frames.push({
        status: row.dataset.status,
        text: body.textContent,
        highlighted: body.querySelectorAll("pre.highlight code span.k").length,
        math: body.querySelectorAll("math").length,
        html: body.innerHTML,
      });
    }
  };
  new MutationObserver(look).observe(list, { childList: true, subtree: true, characterData: true });
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_browser()


@pytest.fixture
def problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def page(browser: Any, live_server: LiveServer, problems: PageProblems) -> Iterator[Any]:
    with new_page(browser, live_server.url, problems) as page:
        yield page


def test_a_streaming_reply_never_shows_raw_markdown(
    page: Any, live_server: LiveServer, problems: PageProblems
) -> None:
    provider = live_server.provider
    assert isinstance(provider, FakeProvider)
    provider.reply = REPLY
    provider.token_delay = 0.04  # slow: about 2 s, many frames and tails in between
    open_app(page)
    page.evaluate(WATCH)
    reply = send(page, "Show me the area of a disc")
    expect(reply).to_have_attribute("data-status", "complete")

    frames = page.evaluate("window.__frames")
    streaming = [f for f in frames if f["status"] == "streaming"]
    assert len(streaming) > 20, "the reply did not stream"
    for frame in frames:
        assert "```" not in frame["text"], frame["html"]
        assert "$$" not in frame["text"], frame["html"]
        assert "\\frac" not in frame["text"], frame["html"]
    # Highlighted code and MathML while the reply was still streaming.
    assert any(f["highlighted"] for f in streaming), "no highlighted code while streaming"
    assert any(f["math"] == 2 for f in streaming), "no MathML while streaming"

    # The end changes nothing: the last streamed rendering is the stored message's.
    body = reply.locator(BODY)
    final_html = body.inner_html()
    last_streamed = [f["html"] for f in streaming][-1]
    assert last_streamed == final_html
    expect(body.locator("pre.highlight code.language-python span.k").first).to_have_text("def")
    expect(body.locator("math")).to_have_count(2)
    expect(body.locator('math[display="block"] mfrac')).to_have_count(1)
    expect(body).to_contain_text("Prices like $5 and $10 stay text.")
    expect(body.locator("strong")).to_have_text("all")
    expect(body.get_by_test_id("copy-code")).to_have_count(1)
    # The Pygments stylesheets are served and colour the tokens, one set per colour scheme.
    keyword = body.locator("pre.highlight span.k").first
    colour = keyword.evaluate("el => getComputedStyle(el).color")
    plain = body.locator("pre.highlight").evaluate("el => getComputedStyle(el).color")
    assert colour != plain
    page.screenshot(path="/tmp/onebox-rendering-light.png")
    page.emulate_media(color_scheme="dark")
    expect(keyword).not_to_have_css("color", colour)
    page.screenshot(path="/tmp/onebox-rendering-dark.png")

    # Reloaded, the stored html looks the same.
    page.reload()
    page.wait_for_selector("html[data-ready='true']")
    expect(page.locator(ASSISTANT).locator(BODY).locator("math")).to_have_count(2)
    problems.assert_clean()


def test_passage_snippets_show_inline_markdown(page: Any, problems: PageProblems) -> None:
    page.on("dialog", lambda dialog: (problems.dialogs.append(dialog.message), dialog.dismiss()))
    open_app(page)
    snippet = "The **zebrafish** _migrates_ at `dawn` <img src=x onerror=alert(1)> 2 * 3 * 4 **cut"
    page.evaluate(
        """async (snippet) => {
            const { messageRow } = await import("/static/messages.js");
            const { showRetrievedSources } = await import("/static/citations.js");
            const row = messageRow("assistant", { status: "streaming" });
            const list = document.getElementById("message-list");
            list.parentElement.classList.remove("is-empty"); // the start page hides the list
            list.append(row);
            showRetrievedSources(row, [{ number: 1, chunk_id: "", document: "fish.md",
                                         page: null, heading: "", snippet }]);
        }""",
        snippet,
    )
    card = page.get_by_test_id("source-card")
    expect(card.locator(".source-snippet strong")).to_have_text("zebrafish")
    expect(card.locator(".source-snippet em")).to_have_text("migrates")
    expect(card.locator(".source-snippet code")).to_have_text("dawn")
    expect(card.locator(".source-snippet")).to_contain_text("<img src=x onerror=alert(1)>")
    expect(card.locator(".source-snippet")).not_to_contain_text("**")
    assert card.locator("img").count() == 0

    card.click()  # the passage dialog shows the same, the full text being unavailable
    text = page.get_by_test_id("passage-dialog").get_by_test_id("passage-text")
    expect(text.locator("strong")).to_have_text("zebrafish")
    expect(text).to_contain_text("2 * 3 * 4")
    expect(text).not_to_contain_text("**")
    page.wait_for_timeout(200)
    assert problems.dialogs == []
    problems.assert_clean()
