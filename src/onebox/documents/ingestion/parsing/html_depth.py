"""How deeply an HTML page nests its elements, read from the markup before parsing.

The HTML parser's time grows with the square of the nesting depth (100,000 nested ``<div>``
in a 1 MB file take minutes), so an absurd depth has to be refused before the parser sees
it. This is an estimate, linear in the text: tags are matched the way well-formed markup
closes them, and the common implied ends (``<li>``, ``<p>``, table cells…) are applied, so
ordinary sloppy HTML does not look deep. The exact depth is checked on the parsed tree.
"""

from __future__ import annotations

import re

_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)([^<>]*)")
# Comments and the text of raw-text elements (scripts, styles…) hold no tags; an unclosed
# one runs to the end, as in the parser.
_NO_TAGS = re.compile(
    r"<!--.*?(?:-->|\Z)"
    r"|<(script|style|textarea|title|xmp|iframe|noembed|noframes|noscript)\b[^<>]*>"
    r"(?:.*?</\1\s*>|.*\Z)"
    r"|<plaintext\b.*\Z",
    re.DOTALL | re.IGNORECASE,
)
_VOID = frozenset(
    {
        "area", "base", "br", "col", "embed", "hr", "img", "input", "keygen", "link", "meta",
        "param", "source", "track", "wbr",
    }
)  # fmt: skip
_FOREIGN = ("svg", "math")
# Opening one of these closes an open element of its group, unless a boundary comes first.
_IMPLIED: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
for _group, _boundary in (
    ("li", "ul ol menu"),
    ("dt dd", "dl"),
    ("td th", "tr table"),
    ("tr", "table thead tbody tfoot"),
    ("thead tbody tfoot", "table"),
    ("option", "select datalist optgroup"),
    ("optgroup", "select"),
    ("rt rp", "ruby"),
):
    for _tag in _group.split():
        _IMPLIED[_tag] = (frozenset(_group.split()), frozenset(_boundary.split()))
# Block-level starts close an open <p>.
_CLOSES_P = frozenset(
    {
        "address", "article", "aside", "blockquote", "details", "div", "dl", "fieldset",
        "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
        "hgroup", "hr", "main", "menu", "nav", "ol", "p", "pre", "section", "table", "ul",
    }
)  # fmt: skip
_P = frozenset({"p"})
_P_BOUNDARY = frozenset({"button"})
_LOOK_BACK = 64  # how far down the open elements an implied end is looked for


def estimated_depth(text: str, stop_above: int) -> int:
    """The deepest nesting the markup reaches, or the first depth above ``stop_above``."""
    stack: list[str] = []
    counts: dict[str, int] = {}

    def pop_to(index: int) -> None:
        """Close the element at ``index`` and everything opened inside it."""
        while len(stack) > index:
            tag = stack.pop()
            counts[tag] -= 1

    def find(tags: frozenset[str], boundary: frozenset[str]) -> int | None:
        for index in range(len(stack) - 1, max(-1, len(stack) - 1 - _LOOK_BACK), -1):
            if stack[index] in tags:
                return index
            if stack[index] in boundary:
                return None
        return None

    deepest = 0
    for match in _TAG.finditer(_NO_TAGS.sub("", text)):
        closing, name, rest = match.groups()
        tag = name.lower()
        if closing:
            if counts.get(tag):  # a stray end tag closes nothing
                index = len(stack) - 1
                while stack[index] != tag:
                    index -= 1
                pop_to(index)
            continue
        if tag in _VOID:
            continue
        if rest.endswith("/") and (counts.get("svg") or counts.get("math")):
            continue  # <path/> inside SVG; in HTML proper, "/>" does not close a tag
        implied = _IMPLIED.get(tag)
        if implied is not None and any(counts.get(t) for t in implied[0]):
            found = find(*implied)
            if found is not None:
                pop_to(found)
        if tag in _CLOSES_P and counts.get("p"):
            found = find(_P, _P_BOUNDARY)
            if found is not None:
                pop_to(found)
        stack.append(tag)
        counts[tag] = counts.get(tag, 0) + 1
        if len(stack) > deepest:
            deepest = len(stack)
            if deepest > stop_above:
                break
    return deepest
