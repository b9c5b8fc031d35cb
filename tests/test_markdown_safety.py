"""The exported Markdown stays inert in a viewer that renders raw HTML, yet code keeps its
text and ordinary Markdown keeps its meaning."""

from __future__ import annotations

import pytest

from onebox.chat.markdown_safety import inert_markdown, is_inert, plain_markdown


def test_text_outside_code_loses_its_markup_but_code_keeps_its_text() -> None:
    text = (
        "Use `a<b` here, <b>not</b> here.\n\n```html\n<div>kept</div>\n```\n\n    <i>indented</i>"
    )
    out = inert_markdown(text)
    assert "`a<b`" in out
    assert "&lt;b>not&lt;/b>" in out
    assert "```html\n<div>kept</div>\n```" in out
    assert "    <i>indented</i>" in out
    assert is_inert(out)


def test_ordinary_markdown_is_unchanged() -> None:
    text = (
        "# Title\n\n- **bold** and [a link](https://example.com)\n\n| a | b |\n|---|---|\n| 1 | 2 |"
    )
    assert inert_markdown(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "[x](javascript:alert(1))",
        "[ref]\n\n[ref]: vbscript:msgbox(1)",
        "![img](data:text/html,<script>alert(1)</script>)",
    ],
)
def test_unsafe_links_fall_back_to_a_fenced_block(text: str) -> None:
    out = inert_markdown(text)
    assert out.startswith("```text\n")
    assert out.endswith("\n```")
    assert is_inert(out)


def test_an_autolink_is_escaped_to_text() -> None:
    assert inert_markdown("<JavaScript:alert(1)>") == "&lt;JavaScript:alert(1)>"


def test_the_fence_outlasts_any_backtick_run_inside() -> None:
    text = "[x](javascript:1)\n````\nstill inside"
    out = inert_markdown(text)
    assert out.startswith("`````text\n")
    assert is_inert(out)


def test_an_escaped_backtick_opens_no_code_span() -> None:
    assert is_inert(inert_markdown("\\`<img src=x onerror=alert(1)>`"))


def test_plain_text_shows_as_written() -> None:
    assert plain_markdown("# <b>*hi*</b>\n[x](y)") == "\\# \\<b\\>\\*hi\\*\\</b\\> \\[x\\]\\(y\\)"
    assert is_inert(plain_markdown("<script>alert(1)</script>"))
