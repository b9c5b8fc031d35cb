"""Code blocks highlighted server-side by Pygments: class names only, styled by one light
and one dark stylesheet that Onebox serves itself.

The language comes from the fence's info string and nothing else: an unknown or missing
name gets plain, escaped text (no guessing from the content)."""

from __future__ import annotations

import re
from functools import lru_cache
from html import escape
from typing import Literal

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import find_lexer_class_by_name
from pygments.util import ClassNotFound

# What a fence may name; anything else is no language at all.
LANGUAGE_NAME = re.compile(r"[A-Za-z0-9_+#.-]{1,40}")
# Bigger blocks are shown as plain text: highlighting cost grows with them.
MAX_HIGHLIGHTED_CHARS = 100_000
MAX_CACHED_CHARS = 10_000
# The container class the stylesheets are scoped to.
SCOPE = "highlight"
THEMES: dict[str, str] = {"light": "default", "dark": "github-dark"}
Theme = Literal["light", "dark"]

_FORMATTER = HtmlFormatter(nowrap=True)


def fence_language(info: str) -> str | None:
    """The language a fence's info string names (its first word), when well formed."""
    words = info.split(maxsplit=1)
    if not words or not LANGUAGE_NAME.fullmatch(words[0]):
        return None
    return words[0]


@lru_cache(maxsize=256)
def _lexer_class(name: str) -> type[Lexer] | None:
    try:
        return find_lexer_class_by_name(name)
    except ClassNotFound:
        return None


def render_code_block(code: str, language: str | None) -> str:
    """``<pre class="highlight"><code class="language-x">`` with Pygments spans inside.
    Blocks up to a modest size are cached: a streaming reply is rendered again and again,
    and only its last block changes."""
    if len(code) <= MAX_CACHED_CHARS:
        return _cached_code_block(code, language)
    return _code_block(code, language)


def _code_block(code: str, language: str | None) -> str:
    lexer_class = _lexer_class(language.lower()) if language else None
    if lexer_class is not None and len(code) <= MAX_HIGHLIGHTED_CHARS:
        lexer = lexer_class(stripnl=False, ensurenl=False)
        body = highlight(code, lexer, _FORMATTER)
    else:
        body = escape(code, quote=False)
    code_class = f' class="language-{language}"' if language else ""
    return f'<pre class="{SCOPE}"><code{code_class}>{body}</code></pre>\n'


_cached_code_block = lru_cache(maxsize=128)(_code_block)


@lru_cache(maxsize=2)
def code_stylesheet(theme: Theme) -> str:
    """The token colours for ``theme`` (backgrounds come from the app's own stylesheet),
    keyed on the page's ``data-theme`` (set by theme.js from the user's choice or the
    system's), so both sheets load and exactly one applies."""
    formatter = HtmlFormatter(style=THEMES[theme])
    root = ':root[data-theme="dark"]' if theme == "dark" else ':root:not([data-theme="dark"])'
    rules = "\n".join(formatter.get_token_style_defs(f"{root} .{SCOPE}"))  # type: ignore[no-untyped-call]
    return f"/* Pygments style {THEMES[theme]!r}, for code blocks in {theme} mode. */\n{rules}\n"
