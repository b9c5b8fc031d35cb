"""Markdown that stays inert when a viewer renders it, whatever the model or an imported
file put into it.

A Markdown viewer may pass raw HTML through (``<img onerror=…>``, ``<script>``) and may
follow any link scheme (``[x](javascript:…)``, ``<javascript:…>``). :func:`inert_markdown`
turns every ``<`` outside code into ``&lt;`` (code blocks and code spans are never
interpreted, so they keep their text), then checks the result with a CommonMark parser
that allows raw HTML and every link: if any HTML or a link other than http(s), mailto or
a relative one is still found, the text is exported as a fenced code block instead.
"""

from __future__ import annotations

import re
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.token import Token

_SAFE_SCHEME = re.compile(r"(?i)^(?:https?:|mailto:|[^:/?#]*(?:[/?#]|$))")
_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~&])")


@lru_cache(maxsize=1)
def _permissive() -> MarkdownIt:
    """A parser as lax as the most trusting viewer: raw HTML on, every link accepted."""
    md = MarkdownIt("commonmark", {"html": True, "linkify": False}).enable(
        ["table", "strikethrough"]
    )
    md.validateLink = lambda url: True  # type: ignore[method-assign]
    return md


def _walk(tokens: list[Token]) -> list[Token]:
    out: list[Token] = []
    for token in tokens:
        out.append(token)
        if token.children:
            out.extend(_walk(token.children))
    return out


def is_inert(text: str) -> bool:
    """No raw HTML and no link or image whose address has an unsafe scheme."""
    for token in _walk(_permissive().parse(text)):
        if token.type in ("html_block", "html_inline"):
            return False
        if token.type in ("link_open", "image"):
            target = str(token.attrGet("href") or token.attrGet("src") or "")
            if not _SAFE_SCHEME.match(target.strip()):
                return False
    return True


def _code_lines(text: str) -> set[int]:
    """Line numbers inside fenced or indented code blocks (kept verbatim)."""
    lines: set[int] = set()
    for token in _permissive().parse(text):
        if token.type in ("fence", "code_block") and token.map:
            lines.update(range(token.map[0], token.map[1]))
    return lines


def _escape_outside_code_spans(line: str) -> str:
    """``<`` becomes ``&lt;`` except inside `code spans` (a backslash-escaped backtick
    opens none)."""
    out: list[str] = []
    index = 0
    while index < len(line):
        char = line[index]
        if char == "\\" and index + 1 < len(line):  # an escaped character (``\<`` too) stays
            out.append(line[index : index + 2])
            index += 2
            continue
        if char == "`":
            run = len(line[index:]) - len(line[index:].lstrip("`"))
            fence = "`" * run
            close = re.compile(rf"(?<!`){fence}(?!`)").search(line, index + run)
            if close:
                out.append(line[index : close.end()])
                index = close.end()
                continue
            out.append(fence)
            index += run
            continue
        out.append("&lt;" if char == "<" else char)
        index += 1
    return "".join(out)


def _fenced(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def inert_markdown(text: str) -> str:
    code = _code_lines(text)
    lines = text.split("\n")
    escaped = "\n".join(
        line if number in code else _escape_outside_code_spans(line)
        for number, line in enumerate(lines)
    )
    return escaped if is_inert(escaped) else _fenced(text)


def plain_markdown(text: str) -> str:
    """One line of plain text (a title, a document name) with every Markdown character
    escaped, so it shows as written."""
    return _PUNCTUATION.sub(r"\\\1", " ".join(text.split()))
