"""While a reply streams, "render" events carry the server's rendering of it so far; the
last one is exactly the stored message's html, so the page never jumps at the end."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from onebox.chat import rendering
from onebox.llm.fake import FakeProvider
from tests.conftest import AppUnderTest
from tests.sse import Event, parse_events

pytestmark = pytest.mark.anyio

REPLY = (
    "Here:\n\n```python\ndef area(r):\n    return 3.14 * r ** 2\n```\n\n"
    "So $a = \\pi r^2$ and\n\n$$\n\\frac{1}{2}\n$$\n\nthat is **all**.\n"
)


async def _stream(api: AppUnderTest, reply: str) -> tuple[list[Event], dict]:  # type: ignore[type-arg]
    assert isinstance(api.provider, FakeProvider)
    api.provider.reply = reply
    conversation = (await api.client.post("/api/conversations", json={})).json()
    response = await api.client.post(
        f"/api/conversations/{conversation['id']}/messages", json={"content": "show me"}
    )
    assert response.status_code == 200, response.text
    stored = (await api.client.get(f"/api/conversations/{conversation['id']}")).json()
    return parse_events(response.text), stored["messages"][-1]


def _text(html: str) -> str:
    parts: list[str] = []

    class Texts(HTMLParser):
        def handle_data(self, data: str) -> None:
            parts.append(data)

    Texts().feed(html)
    return "".join(parts)


async def test_render_events_stream_and_the_last_is_the_stored_html(api: AppUnderTest) -> None:
    events, stored = await _stream(api, REPLY)
    names = [event.name for event in events]
    renders = [event.data["html"] for event in events if event.name == "render"]

    # The first delta is rendered at once, long before the reply ends.
    first_delta = names.index("delta")
    assert names[first_delta + 1] == "render"
    assert first_delta + 1 < max(i for i, name in enumerate(names) if name == "delta")
    assert names[-3:] == ["render", "usage", "done"]

    done = events[-1].data["message"]
    assert renders[-1] == done["html"] == stored["html"]
    assert '<pre class="highlight"><code class="language-python">' in stored["html"]
    assert stored["html"].count("<math") == 2
    for html in renders:
        assert "```" not in _text(html)
        assert "$$" not in _text(html)


async def test_every_frame_is_clean_while_a_fence_is_open(
    api: AppUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No pacing: one frame per delta, so every intermediate state is seen.
    monkeypatch.setattr(rendering, "MIN_INTERVAL_S", 0.0)
    monkeypatch.setattr(rendering, "COST_FACTOR", 0)
    events, stored = await _stream(api, REPLY)
    frames: list[tuple[str, str]] = []  # (text so far, html)
    text = ""
    for event in events:
        if event.name == "delta":
            text += event.data["text"]
        elif event.name == "render":
            frames.append((text, event.data["html"]))
    assert len(frames) == [e.name for e in events].count("delta") + 1

    inside_fence = [html for so_far, html in frames if so_far.count("```") == 1 and "def" in so_far]
    assert inside_fence, "no frame was rendered while the code block was open"
    for html in inside_fence:
        assert '<pre class="highlight"><code class="language-python">' in html
        assert '<span class="k">def</span>' in html
    for _, html in frames:
        assert "```" not in _text(html)
    assert frames[-1][1] == stored["html"]


async def test_a_stopped_reply_still_ends_on_its_stored_rendering(api: AppUnderTest) -> None:
    assert isinstance(api.provider, FakeProvider)
    api.provider.fail_after = 5  # stops inside the code block
    events, stored = await _stream(api, REPLY)
    assert stored["status"] == "partial"
    renders = [event.data["html"] for event in events if event.name == "render"]
    assert renders[-1] == stored["html"]
    names = [event.name for event in events]
    assert names[-1] == "error"
    last_delta = max(i for i, name in enumerate(names) if name == "delta")
    assert "render" in names[last_delta + 1 :]


async def test_code_stylesheets_are_served(api: AppUnderTest) -> None:
    for theme in ("light", "dark"):
        response = await api.client.get(f"/styles/code-{theme}.css")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/css")
        assert ".highlight .k {" in response.text
    index = (await api.client.get("/")).text
    assert 'href="/styles/code-dark.css"' in index
