"""Model output is Markdown; what reaches the page is sanitised HTML."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from onebox.chat.rendering import LiveRender, close_partial, render_markdown, render_streaming


def test_markdown_and_code_blocks_render() -> None:
    html = render_markdown("# Title\n\nSome *em* and `code`.\n\n```python\nprint('<b>')\n```\n")
    assert "<h1>Title</h1>" in html
    assert "<em>em</em>" in html
    assert '<pre class="highlight"><code class="language-python">' in html
    assert "<span class=\"s1\">'&lt;b&gt;'</span>" in html


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


# ------------------------------------------------------------------ code highlighting


def test_code_is_highlighted_by_pygments_classes() -> None:
    html = render_markdown("```js\nconst a = 1; // note\n```\n")
    assert '<code class="language-js">' in html
    assert '<span class="kd">const</span>' in html
    assert '<span class="c1">// note</span>' in html
    assert "style=" not in html  # colours come from the served stylesheets


@pytest.mark.parametrize("info", ["", "no-such-language", "python extra words ignored"])
def test_unknown_or_missing_language_is_plain_text(info: str) -> None:
    html = render_markdown(f"```{info}\nif x < 1: pass\n```\n")
    if info.startswith("python"):
        assert '<code class="language-python"><span class="k">if</span>' in html
    else:
        assert "<span" not in html  # no guessing from the content
        assert "if x &lt; 1: pass" in html


def test_stylesheets_are_scoped_token_colours() -> None:
    from onebox.chat.highlighting import code_stylesheet

    light, dark = code_stylesheet("light"), code_stylesheet("dark")
    assert ':root:not([data-theme="dark"]) .highlight .k {' in light
    assert ':root[data-theme="dark"] .highlight .k {' in dark
    assert light != dark


# ------------------------------------------------------------------------------ math


def test_latex_becomes_mathml() -> None:
    html = render_markdown(
        "Inline $x^2$ and \\(a+b\\), display:\n\n$$\n\\frac{1}{2}\n$$\n\nand \\[y=1\\]"
    )
    elements = _elements(html)
    maths = [dict(attrs) for tag, attrs in elements if tag == "math"]
    assert [m.get("display") for m in maths] == ["inline", "inline", "block", "block"]
    assert ("mfrac", []) in elements
    for delimiter in ("$", "\\(", "\\["):
        assert delimiter not in html


@pytest.mark.parametrize(
    "text",
    [
        "It costs $5 and $10 at most.",
        "From $5-$10, or $ 3 $ apiece.",
        "Escaped \\$x\\$ stays text.",
        "`$x$` in code stays code.",
    ],
)
def test_prices_and_code_are_not_math(text: str) -> None:
    assert "<math" not in render_markdown(text)


@pytest.mark.parametrize(
    "latex",
    [
        "$\\frac{a}{$ x",
        "\\(\\left( x\\)",
        "$$\n\\begin{matrix}\n$$",
        "$" + "{" * 2500 + "x" + "}" * 2500 + "$",
    ],
)
def test_malformed_latex_shows_its_source_as_code(latex: str) -> None:
    html = render_markdown(latex)
    assert "<math" not in html
    assert "<code" in html


# ------------------------------------------------------------------------------ XSS


@pytest.mark.parametrize(
    "attack",
    [
        '```"><img src=x onerror=alert(1)>\nx\n```',
        "```python onclick=alert(1)\nx\n```",
        "```<script>alert(1)</script>\nx\n```",
        "$\\text{<img src=x onerror=alert(1)>}$",
        "$\\text{<script>alert(1)</script>}$",
        "$$\n\\href{javascript:alert(1)}{click}\n$$",
        "\\(\\text{</math><img src=x onerror=alert(1)>}\\)",
        "$\\style{color:red}{x}$ $\\mathcolor{url(javascript:alert(1))}{x}$",
        "$x$<svg onload=alert(1)>",
    ],
)
def test_fence_info_and_latex_stay_inert(attack: str) -> None:
    for html in (render_markdown(attack), render_streaming(attack), render_streaming(attack[:-3])):
        for tag, attributes in _elements(html):
            assert tag not in {"img", "script", "svg", "iframe", "a", "style"}, html
            for name, value in attributes:
                assert not name.startswith("on"), html
                assert name not in {"href", "style", "src"}, html
                assert "javascript" not in (value or "").lower(), html


# ---------------------------------------------------------------- replies mid-stream


@pytest.mark.parametrize(
    ("partial", "shown"),
    [
        ("Look:\n```python\nx = 1", "Look:\n```python\nx = 1\n```\n"),
        ("Look:\n```python\nx = 1\n``", "Look:\n```python\nx = 1\n```\n"),
        ("Look:\n```pyth", "Look:\n"),
        ("Look:\n`", "Look:\n"),
        ("- item\n  ~~~~\n  a", "- item\n  ~~~~\n  a\n  ~~~~\n"),
        ("Done:\n```\nx\n```\nafter", "Done:\n```\nx\n```\nafter"),
        ("$$\n\\frac{1}{2}", "$$\n\\frac{1}{2}\n$$\n"),
        ("Then \\[x", "Then "),
        ("Then $x^", "Then "),
        ("Then `co", "Then "),
        ("It costs $5 and", "It costs $5 and"),
        ("Math $x$ then `a` and $$", "Math $x$ then `a` and "),
    ],
)
def test_partial_replies_are_closed_or_held_back(partial: str, shown: str) -> None:
    assert close_partial(partial) == shown


def test_streaming_never_shows_raw_fences_and_ends_as_the_final_rendering() -> None:
    reply = (
        "Here:\n\n```python\ndef f(x):\n    return x ** 2\n```\n\n"
        "So $f(3)=9$, and\n\n$$\n\\sum_{i=1}^{n} i\n$$\n\nDone **now**.\n"
    )
    for end in range(1, len(reply) + 1):
        html = render_streaming(reply[:end])
        text = _text(html)
        for delimiter in ("``", "$$", "\\["):
            assert delimiter not in text, (end, html)
    assert render_streaming(reply) == render_markdown(reply)


def test_live_render_paces_itself_by_its_cost() -> None:
    now = [0.0]
    calls: list[float] = []

    def clock() -> float:
        calls.append(now[0])
        return now[0]

    live = LiveRender(clock)
    assert live.feed("a") is not None  # the first delta renders at once
    assert live.feed("b") is None  # 80 ms have not passed
    now[0] = 0.079
    assert live.feed("c") is None
    now[0] = 0.081
    html = live.feed("d")
    assert html is not None
    assert "abcd" in html
    assert live.text == "abcd"

    # A costly render (100 ms) pushes the next one 5 x 100 ms after it ends.
    class Slow:
        def __init__(self) -> None:
            self.t = 1.0

        def __call__(self) -> float:
            value = self.t
            self.t += 0.1  # each reading of the clock is 100 ms later
            return value

    slow = Slow()
    live = LiveRender(slow)
    assert live.feed("x") is not None  # starts at 1.0, ends at 1.1: next at 1.6
    slow.t = 1.55
    assert live.feed("y") is None
    slow.t = 1.61
    assert live.feed("z") is not None


def _text(html: str) -> str:
    parts: list[str] = []

    class Texts(HTMLParser):
        def handle_data(self, data: str) -> None:
            parts.append(data)

    Texts().feed(html)
    return "".join(parts)


def test_math_being_written_shows_as_math_not_source() -> None:
    reply = (
        "So\n\n$$\n\\frac{a}{b} = \\sqrt{x^2 + \\left( y_1 \\right)}\n"
        "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix} \\sum_{i=1}^{n} \\mathbf{v}\n$$\n\n"
        "and inline \\(\\frac{1}{2}\\) too."
    )
    for end in range(1, len(reply) + 1):
        html = render_streaming(reply[:end])
        assert "\\" not in _text(html), (end, html)
    assert render_markdown(reply).count("<math") == 2
