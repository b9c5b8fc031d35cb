"""Model output is Markdown; what reaches the page is sanitised HTML."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from onebox.chat.rendering import render_markdown


def test_markdown_and_code_blocks_render() -> None:
    html = render_markdown("# Title\n\nSome *em* and `code`.\n\n```python\nprint('<b>')\n```\n")
    assert "<h1>Title</h1>" in html
    assert "<em>em</em>" in html
    assert '<code class="language-python">' in html
    assert "print(&#39;&lt;b&gt;&#39;)" in html or "print('&lt;b&gt;')" in html


def test_tables_render() -> None:
    html = render_markdown("| a | b |\n|---|---|\n| 1 | 2 |\n")
    assert "<table>" in html
    assert "<td>1</td>" in html


@pytest.mark.parametrize(
    "attack",
    [
        "<img src=x onerror=alert(1)>",
        "<script>alert(1)</script>",
        '<a href="javascript:alert(1)">x</a>',
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "![img](javascript:alert(1))",
        '<svg onload="alert(1)">',
        "<iframe src='https://evil.example'></iframe>",
    ],
)
def test_active_content_never_survives(attack: str) -> None:
    elements = _elements(render_markdown(attack))
    assert {tag for tag, _ in elements} <= {"p", "a", "code", "pre"}
    for _tag, attributes in elements:
        for name, value in attributes:
            assert not name.startswith("on")
            if name == "href":
                assert (value or "").startswith(("http://", "https://", "mailto:"))


def _elements(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Every element and its attributes, as a browser's parser would see them."""
    found: list[tuple[str, list[tuple[str, str | None]]]] = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.append((tag, attrs))

    Collector().feed(html)
    return found


def test_links_are_kept_but_isolated() -> None:
    html = render_markdown("[docs](https://example.org/x)")
    assert 'href="https://example.org/x"' in html
    assert 'rel="noopener noreferrer nofollow"' in html


def test_code_class_cannot_smuggle_attributes() -> None:
    html = render_markdown('```py" onmouseover="alert(1)\nx\n```')
    assert "onmouseover" not in html
