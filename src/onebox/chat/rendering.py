"""Markdown to HTML that is safe to insert into the page, whatever the model wrote.

One renderer, server-side: markdown-it (raw HTML off) with Pygments code blocks
(``highlighting.py``) and LaTeX as MathML (``latex.py``), then nh3 keeps only the
elements and attributes listed here. ``render_streaming`` renders a reply that is still
being written (open code fences and display math closed, a half-typed fence or inline
delimiter held back) and ``LiveRender`` decides how often a running reply is rendered.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from onebox.chat.highlighting import LANGUAGE_NAME, SCOPE, fence_language, render_code_block
from onebox.chat.latex import (
    DISPLAY,
    MATH_ATTRIBUTES,
    MATH_TAGS,
    display_opener,
    find_inline,
    math_plugin,
)

_ALLOWED_TAGS = {
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6",
    "hr", "li", "ol", "p", "pre", "span", "strong", "table", "tbody", "td", "th", "thead",
    "tr", "ul", "s",
} | MATH_TAGS  # fmt: skip
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "code": {"class"},
    "pre": {"class"},
    "span": {"class"},
    "th": {"align"},
    "td": {"align"},
    **MATH_ATTRIBUTES,
}
# Pygments' short token classes ("k", "nf", "s2", "err"), one or a few.
_TOKEN_CLASSES = re.compile(r"[a-z][a-z0-9]{0,4}(?: [a-z][a-z0-9]{0,4}){0,3}")
_MATH_XMLNS = "http://www.w3.org/1998/Math/MathML"


def _keep_safe_attribute(tag: str, attribute: str, value: str) -> str | None:
    if attribute == "class":
        if tag == "code":
            language = value.removeprefix("language-")
            ok = value.startswith("language-") and LANGUAGE_NAME.fullmatch(language)
            return value if ok else None
        if tag == "pre":
            return value if value == SCOPE else None
        return value if tag == "span" and _TOKEN_CLASSES.fullmatch(value) else None
    if attribute == "align":
        return value if value in {"left", "right", "center"} else None
    if attribute == "xmlns":
        return value if value == _MATH_XMLNS else None
    if attribute == "display":
        return value if value in {"block", "inline"} else None
    if tag in MATH_TAGS:
        # Lengths, alignments and flags: short, no markup, no URLs or functions.
        return value if re.fullmatch(r"[\w .%#+-]{0,40}", value) else None
    return value


def _render_fence(
    self: RendererHTML, tokens: list[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    return render_code_block(token.content, fence_language(token.info))


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    # html=False: raw HTML in the source is rendered as text, never as markup.
    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(
        ["table", "strikethrough"]
    )
    md.use(math_plugin)
    md.add_render_rule("fence", _render_fence)
    return md


def _render(text: str, *, streaming: bool = False) -> str:
    html = _markdown().render(text, {"streaming": streaming})
    return nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        attribute_filter=_keep_safe_attribute,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


@lru_cache(maxsize=32)
def render_markdown(text: str) -> str:
    """The final rendering of a message (cached: a reply is rendered for its last live
    frame, its ``done`` event and every later read of the conversation)."""
    return _render(text)


def render_streaming(text: str) -> str:
    """The rendering of a reply still being written: what ``render_markdown`` gives for
    the same text once it is complete, and in between no raw fence or math delimiters."""
    return _render(close_partial(text), streaming=True)


# ----------------------------------------------------------------- partial replies

_FENCE_OPEN = re.compile(r"(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)")
_FENCE_CLOSE = re.compile(r"[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*")
# An unfinished last line that may still become a fence or a display-math delimiter.
_PENDING_DELIMITER = re.compile(r"[ \t]*(?:```|~~~|`{1,2}$|~{1,2}$|\$\$|\$$|\\$|\\\[)")


def close_partial(text: str) -> str:
    """``text`` made renderable mid-stream: an open code fence or display-math block is
    closed, and an unfinished last line that is only the start of a delimiter (or an
    inline code span or math still open) is held back until more arrives."""
    lines = text.split("\n")
    partial = lines.pop()
    fence: str | None = None
    indent = ""
    math_closer: str | None = None
    math_start = 0
    for number, line in enumerate(lines):
        if fence is not None:
            closing = _FENCE_CLOSE.fullmatch(line)
            if closing and closing["fence"].startswith(fence):
                fence = None
        elif math_closer is not None:
            if line.rstrip().endswith(math_closer):
                math_closer = None
        elif (opening := _FENCE_OPEN.fullmatch(line)) and not (
            opening["fence"][0] == "`" and "`" in opening["info"]
        ):
            fence, indent = opening["fence"], opening["indent"]
        else:
            math_closer, math_start = display_opener(line.strip()), number
    if fence is not None:
        if _FENCE_CLOSE.fullmatch(partial) or re.fullmatch(r"[ \t]*[`~]{1,2}", partial):
            partial = ""  # a closing fence being typed
        return "\n".join([*lines, partial]).rstrip("\n") + f"\n{indent}{fence}\n"
    if math_closer is not None:
        if partial.rstrip().endswith(math_closer):
            return text
        if re.fullmatch(r"[ \t]*[$\\]", partial):
            partial = ""
        opener = lines[math_start].strip()
        if opener in DISPLAY and not "".join(lines[math_start + 1 :]).strip() + partial.strip():
            return "\n".join(lines[:math_start])  # nothing inside yet
        return "\n".join([*lines, partial]).rstrip("\n") + "\n" + math_closer + "\n"
    if _PENDING_DELIMITER.match(partial) and not (
        partial.strip()[:2] in ("$$", "\\[") and display_opener(partial.strip()) is None
    ):
        partial = ""
    return "\n".join([*lines, _cut_open_inline(partial)])


def _cut_open_inline(line: str) -> str:
    """``line`` up to an inline code span or inline math that is not closed yet."""
    pos = 0
    while pos < len(line):
        char = line[pos]
        if char == "`":
            run = len(line) - pos - len(line[pos:].lstrip("`"))
            close = re.compile(rf"(?<!`)`{{{run}}}(?!`)").search(line, pos + run)
            if close is None:
                return line[:pos]
            pos = close.end()
            continue
        if char == "\\" and line.startswith(("\\(", "\\["), pos):
            found = find_inline(line, pos)
            if found is None:
                return line[:pos]
            pos = found[0]
            continue
        if char == "\\":
            if pos == len(line) - 1:
                return line[:pos]  # the start of an escape or of "\(" / "\["
            pos += 2  # an escaped character
            continue
        if char == "$" and pos + 1 < len(line) and not line[pos + 1].isspace():
            found = find_inline(line, pos)
            if found is not None:
                pos = found[0]
                continue
            if not line[pos + 1].isdigit():  # "$x^" is math being typed; "$5" a price
                return line[:pos]
        pos += 1
    return line


# -------------------------------------------------------------- rendering pace

MIN_INTERVAL_S = 0.08
COST_FACTOR = 5


class LiveRender:
    """Renders a running reply now and then: at most every ``max(80 ms, 5 x the last
    render's cost)``, so rendering takes a bounded share of the loop however long the
    reply grows. ``feed`` returns the html when it is time for a new frame, else None."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._parts: list[str] = []
        self._next_at = float("-inf")

    @property
    def text(self) -> str:
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    def feed(self, delta: str) -> str | None:
        self._parts.append(delta)
        started = self._clock()
        if started < self._next_at:
            return None
        html = render_streaming(self.text)
        finished = self._clock()
        self._next_at = finished + max(MIN_INTERVAL_S, COST_FACTOR * (finished - started))
        return html
