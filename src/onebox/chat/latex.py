"""LaTeX in model output, rendered to MathML (which browsers draw natively) by latex2mathml.

Delimiters: ``$...$`` and ``\\(...\\)`` inline; ``$$...$$`` and ``\\[...\\]`` display, as
blocks of their own or inside a paragraph. A single ``$`` only opens math when a non-space
follows it and only closes it after a non-space, not before a digit, so "$5 and $10" stays
text. LaTeX that does not convert is shown as its source in code, never an error.
The MathML goes through the same sanitiser as everything else (``rendering.py``)."""

from __future__ import annotations

import re
from functools import lru_cache
from html import escape

from latex2mathml.converter import convert
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.rules_block import StateBlock
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from onebox.chat.highlighting import render_code_block

MAX_LATEX_CHARS = 4000
# Display delimiters: opener -> closer.
DISPLAY = {"$$": "$$", "\\[": "\\]"}
INLINE_OPENERS = (("$$", "$$", True), ("\\[", "\\]", True), ("\\(", "\\)", False))

# MathML elements and attributes latex2mathml writes (presentation MathML only; no href).
MATH_TAGS = {
    "math", "menclose", "merror", "mfenced", "mfrac", "mi", "mmultiscripts", "mn", "mo",
    "mover", "mpadded", "mphantom", "mprescripts", "mroot", "mrow", "ms", "mspace", "msqrt",
    "mstyle", "msub", "msubsup", "msup", "mtable", "mtd", "mtext", "mtr", "munder",
    "munderover", "none", "semantics", "annotation",
}  # fmt: skip
_PRESENTATION = {"mathvariant", "displaystyle", "scriptlevel"}
MATH_ATTRIBUTES: dict[str, set[str]] = {
    "math": {"display", "xmlns"},
    "mo": {"stretchy", "fence", "separator", "lspace", "rspace", "form", "largeop",
           "movablelimits", "minsize", "maxsize", "symmetric", "accent"},
    "mover": {"accent"},
    "munder": {"accentunder"},
    "munderover": {"accent", "accentunder"},
    "mfrac": {"linethickness", "bevelled"},
    "mspace": {"width", "height", "depth"},
    "mpadded": {"width", "height", "depth", "lspace", "voffset"},
    "menclose": {"notation"},
    "mfenced": {"open", "close", "separators"},
    "mtable": {"columnalign", "rowalign", "columnspacing", "rowspacing", "columnlines",
               "rowlines", "frame", "framespacing", "equalrows", "equalcolumns"},
    "mtr": {"columnalign", "rowalign"},
    "mtd": {"columnalign", "rowalign", "columnspan", "rowspan"},
    "annotation": {"encoding"},
}  # fmt: skip
for _tag in ("mi", "mn", "mtext", "ms", "mstyle", "mrow", "mo"):
    MATH_ATTRIBUTES.setdefault(_tag, set()).update(_PRESENTATION)


_CUT_SHORT = re.compile(r"(?:(?<!\\)\\[A-Za-z]*|\\(?:begin|end)\{[A-Za-z*]*|[\^_&])\s*$")
_ENVIRONMENT = re.compile(r"\\(begin|end)\{([A-Za-z*]{1,20})\}")
_LEFT_RIGHT = re.compile(r"\\(left|right)(?![A-Za-z])")


def complete_latex(latex: str) -> str:
    """LaTeX still being written, closed so it converts: a command or operator cut
    short goes, open groups, ``\\left`` and environments are closed."""
    text = _CUT_SHORT.sub("", latex)
    depth, escaped = 0, False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth = max(0, depth - 1)
    environments: list[str] = []
    for kind, name in _ENVIRONMENT.findall(text):
        if kind == "begin":
            environments.append(name)
        elif environments and environments[-1] == name:
            environments.pop()
    lefts = sum(1 if side == "left" else -1 for side in _LEFT_RIGHT.findall(text))
    closing = "}" * depth + "\\right." * max(0, lefts)
    return text + closing + "".join(f"\\end{{{name}}}" for name in reversed(environments))


@lru_cache(maxsize=256)
def _mathml(latex: str, display: bool) -> str | None:
    """latex2mathml's MathML, None when it cannot convert (cached: a streaming reply is
    rendered again and again)."""
    try:
        return convert(latex, display="block" if display else "inline")
    except Exception:  # latex2mathml raises many kinds of error on malformed input
        return None


def latex_to_html(latex: str, *, display: bool, source: str, streaming: bool = False) -> str:
    """MathML for ``latex``; ``source`` as code when it does not convert. Mid-stream the
    LaTeX is completed first (``complete_latex``), so math being written shows as math."""
    if streaming:
        latex = complete_latex(latex)
        if not latex.strip():
            return ""
    if latex.strip() and len(latex) <= MAX_LATEX_CHARS and (mathml := _mathml(latex, display)):
        return mathml
    if display:
        return render_code_block(source, "latex")
    return f"<code>{escape(source, quote=False)}</code>"


def display_opener(line: str) -> str | None:
    """The closer a line (stripped) needs when it opens a display block left open."""
    for opener, closer in DISPLAY.items():
        if line.startswith(opener) and closer not in line[len(opener) :]:
            return closer
    return None


def _closes_dollar(src: str, at: int, limit: int) -> bool:
    before = src[at - 1]
    after = src[at + 1] if at + 1 < limit else ""
    return not before.isspace() and before != "\\" and not after.isdigit()


def find_inline(src: str, pos: int, limit: int | None = None) -> tuple[int, str, bool] | None:
    """Where the math that opens at ``pos`` ends (looking no further than ``limit``):
    (end, latex, display), or None."""
    limit = len(src) if limit is None else limit
    for opener, closer, display in INLINE_OPENERS:
        if src.startswith(opener, pos, limit):
            start = pos + len(opener)
            end = src.find(closer, start, limit)
            if end == -1 or not src[start:end].strip():
                return None
            return end + len(closer), src[start:end], display
    if not src.startswith("$", pos, limit) or pos + 1 >= limit or src[pos + 1].isspace():
        return None
    at = src.find("$", pos + 1, limit)
    while at != -1:
        if _closes_dollar(src, at, limit):
            return at + 1, src[pos + 1 : at], False
        at = src.find("$", at + 1, limit)
    return None


def _inline_rule(state: StateInline, silent: bool) -> bool:
    if state.src[state.pos] not in "$\\":
        return False
    found = find_inline(state.src, state.pos, state.posMax)
    if found is None:
        return False
    end, latex, display = found
    if not silent:
        token = state.push("math_inline", "math", 0)
        token.content = latex
        token.info = "display" if display else ""
        token.markup = state.src[state.pos : end]
    state.pos = end
    return True


def _block_rule(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    if state.sCount[start] - state.blkIndent >= 4:
        return False  # an indented code block
    first = state.src[state.bMarks[start] + state.tShift[start] : state.eMarks[start]].rstrip()
    opener = next((o for o in DISPLAY if first.startswith(o)), None)
    if opener is None:
        return False
    closer = DISPLAY[opener]
    rest = first[len(opener) :]
    if closer in rest:
        # One line: only a block when the closer ends it and appears nowhere else.
        inner = rest[: -len(closer)]
        if not rest.endswith(closer) or closer in inner or not inner.strip():
            return False
        parts, last = [inner], start
    else:
        parts, last = [rest], start + 1
        while last < end:
            line = state.src[state.bMarks[last] + state.tShift[last] : state.eMarks[last]]
            line = line.rstrip()
            if line.endswith(closer):
                parts.append(line[: -len(closer)])
                break
            parts.append(line)
            last += 1
        else:
            return False  # never closed: not math
    if silent:
        return True
    latex = "\n".join(parts).strip("\n")
    source = f"{opener}{latex}{closer}" if last == start else f"{opener}\n{latex}\n{closer}"
    token = state.push("math_block", "math", 0)
    token.block = True
    token.content = latex
    token.markup = source
    token.map = [start, last + 1]
    state.line = last + 1
    return True


def _render_inline(
    self: RendererHTML, tokens: list[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    # Mid-stream, math that does not convert yet is still being written: no delimiters.
    streaming = bool(env.get("streaming"))
    source = token.content if streaming else token.markup
    display = token.info == "display"
    return latex_to_html(token.content, display=display, source=source, streaming=streaming)


def _render_block(
    self: RendererHTML, tokens: list[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    streaming = bool(env.get("streaming"))
    source = token.content if streaming else token.markup
    return latex_to_html(token.content, display=True, source=source, streaming=streaming) + "\n"


def math_plugin(md: MarkdownIt) -> None:
    # Before "escape", so "\(" and "\[" are delimiters rather than escaped brackets.
    md.inline.ruler.before("escape", "math_inline", _inline_rule)
    md.block.ruler.before(
        "fence",
        "math_block",
        _block_rule,
        {"alt": ["paragraph", "reference", "blockquote", "list"]},
    )
    md.add_render_rule("math_inline", _render_inline)
    md.add_render_rule("math_block", _render_block)
