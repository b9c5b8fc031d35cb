"""HTML into blocks with selectolax: readable text only, never markup."""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from onebox.documents.ingestion.parsing.base import (
    DEFAULT_MAX_HTML_DEPTH,
    Block,
    ParsedDocument,
    ParseError,
)
from onebox.documents.ingestion.parsing.html_depth import estimated_depth
from onebox.documents.ingestion.parsing.text import build_document

# Page chrome and non-content; their text would pollute every chunk of a site.
_DROPPED = ["script", "style", "nav", "aside", "noscript", "template", "svg", "canvas", "iframe"]
_CHROME = ("header", "footer")
_CHROME_SET = frozenset(_CHROME)
# A header or footer inside an article/main is the article's own (title, byline), not chrome.
_CONTENT_ROOTS = frozenset({"article", "main"})
# Chrome that is not marked with its own element: ARIA landmark roles, and class or id names
# sites and doc generators give navigation (DocBook's navheader/navfooter, breadcrumbs,
# sidebars, skip links, cookie banners).
_CHROME_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search"})
_CHROME_NAME = re.compile(
    r"^(?:nav|navbar|navheader|navfooter|navigation|breadcrumbs?|sidebar|sphinxsidebar|"
    r"skip-?link|cookie-?(?:banner|notice|consent)|site-(?:header|footer|nav)|toc-?sidebar)$"
    r"|(?:^|[-_])(?:navbar|breadcrumbs?|sidebar)(?:$|[-_])",
    re.IGNORECASE,
)
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_LISTS = frozenset({"ul", "ol", "menu"})
_SKIPPED = frozenset({"-comment", "-doctype", "head", "title", "img", "input", "select", "button"})
_BLOCK_CONTAINERS = frozenset(
    {
        "html", "body", "main", "article", "section", "div", "p", "blockquote", "figure",
        "figcaption", "dl", "dt", "dd", "address", "details", "summary", "form", "fieldset",
        "legend", "center", "hgroup", "header", "footer", "li", "caption", "hr",
    }
)  # fmt: skip
# The estimate from the markup may overshoot on sloppy pages; the parsed tree is measured
# exactly. Below this multiple of the limit the parser stays fast (its time grows with the
# square of the depth).
_ESTIMATE_SLACK = 4
_SPACES = re.compile(r"[^\S\n]+")
_WHITESPACE = re.compile(r"\s+")


def _clean_inline(text: str) -> str:
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def _collect_text(node: LexborNode, stop: frozenset[str]) -> str:
    """All text below node, skipping subtrees whose tag is in stop; <br> becomes a space."""
    parts: list[str] = []
    for child in node.iter(include_text=True):
        tag = child.tag
        if tag == "-text":
            parts.append(child.text_content or "")
        elif tag == "br":
            parts.append(" ")
        elif tag is not None and tag not in stop and tag not in _SKIPPED:
            parts.append(" ")
            parts.append(_collect_text(child, stop))
            parts.append(" ")
    return _WHITESPACE.sub(" ", "".join(parts)).strip()


def _has_ancestor(node: LexborNode, tags: frozenset[str]) -> bool:
    parent = node.parent
    while parent is not None:
        if parent.tag in tags:
            return True
        parent = parent.parent
    return False


def _render_list(node: LexborNode, depth: int) -> list[str]:
    ordered = node.tag == "ol"
    lines: list[str] = []
    number = 0
    for child in node.iter():
        if child.tag in _LISTS:
            lines.extend(_render_list(child, depth + 1))
            continue
        if child.tag != "li":
            continue
        number += 1
        text = _collect_text(child, _LISTS)
        if text:
            marker = f"{number}." if ordered else "-"
            lines.append(f"{'  ' * depth}{marker} {text}")
        for nested in child.iter():
            if nested.tag in _LISTS:
                lines.extend(_render_list(nested, depth + 1))
    return lines


def _own_rows(table: LexborNode) -> list[LexborNode]:
    """Rows of this table, not of tables nested in its cells."""
    rows = []
    for row in table.css("tr"):
        parent = row.parent
        while parent is not None and parent.tag != "table":
            parent = parent.parent
        if parent is not None and parent.mem_id == table.mem_id:
            rows.append(row)
    return rows


def _render_table(table: LexborNode) -> str:
    lines: list[str] = []
    caption = table.css_first("caption")
    if caption is not None:
        lines.append(_collect_text(caption, frozenset()))
    for row in _own_rows(table):
        cells = [
            _collect_text(cell, frozenset()) for cell in row.iter() if cell.tag in ("td", "th")
        ]
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(line for line in lines if line)


class _Walker:
    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.inline: list[str] = []

    def flush(self) -> None:
        text = _clean_inline("".join(self.inline))
        self.inline = []
        if text:
            self.blocks.append(Block("paragraph", text))

    def walk(self, node: LexborNode) -> None:
        for child in node.iter(include_text=True):
            tag = child.tag
            if tag == "-text":
                self.inline.append(_WHITESPACE.sub(" ", child.text_content or ""))
            elif tag is None or tag in _SKIPPED:
                continue
            elif tag == "br":
                self.inline.append("\n")
            elif tag in _HEADINGS:
                self.flush()
                self.blocks.append(
                    Block("heading", _collect_text(child, frozenset()), level=_HEADINGS[tag])
                )
            elif tag in _LISTS:
                self.flush()
                self.blocks.append(Block("list", "\n".join(_render_list(child, 0))))
            elif tag == "pre":
                self.flush()
                self.blocks.append(Block("code", child.text(deep=True)))
            elif tag == "table":
                self.flush()
                self.blocks.append(Block("table", _render_table(child)))
            elif tag in _BLOCK_CONTAINERS:
                self.flush()
                self.walk(child)
                self.flush()
            else:
                # Inline element (a, span, em, code…); it may still wrap blocks, so recurse.
                self.walk(child)


def _is_marked_chrome(node: LexborNode) -> bool:
    attributes = node.attributes
    if (attributes.get("role") or "").strip().lower() in _CHROME_ROLES:
        return True
    names = (attributes.get("class") or "").split() + (attributes.get("id") or "").split()
    return any(_CHROME_NAME.search(name) for name in names)


def _drop_marked_chrome(tree: LexborHTMLParser) -> None:
    """Removes elements whose role, class or id says they are navigation, unless they sit
    inside an article or main (a table of contents of the article itself is content)."""
    if tree.body is None:
        return
    marked = [
        node
        for node in tree.body.css("[role], [class], [id]")
        if node.tag not in ("body", "html", "main", "article") and _is_marked_chrome(node)
    ]
    ids = {node.mem_id for node in marked}
    for node in marked:
        if _has_ancestor(node, _CONTENT_ROOTS):
            continue
        parent, nested = node.parent, False
        while parent is not None and not nested:
            nested, parent = parent.mem_id in ids, parent.parent
        if not nested:  # a nested one goes away with its marked ancestor
            node.decompose()


def _too_deep(name: str, limit: int) -> ParseError:
    return ParseError(
        f"{name} nests its HTML elements more than {limit} levels deep, the limit (parsing "
        "time grows with the square of the depth); the file was refused"
    )


def _deeper_than(root: LexborNode, limit: int) -> bool:
    """Walks the tree without recursion, stopping at the first element below ``limit``."""
    pending = [(root, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > limit:
            return True
        child = node.child
        while child is not None:
            if child.child is not None:
                pending.append((child, depth + 1))
            child = child.next
    return False


def parse_html(name: str, text: str, *, max_depth: int = DEFAULT_MAX_HTML_DEPTH) -> ParsedDocument:
    # The walker below recurses once per level, well within Python's limit at max_depth.
    if estimated_depth(text, stop_above=max_depth * _ESTIMATE_SLACK) > max_depth * _ESTIMATE_SLACK:
        raise _too_deep(name, max_depth)
    try:
        tree = LexborHTMLParser(text)
        if tree.root is not None and _deeper_than(tree.root, max_depth):
            raise _too_deep(name, max_depth)
        title_node = tree.css_first("title")
        title = _collect_text(title_node, frozenset()) if title_node is not None else ""
        for chrome in tree.css(", ".join(_CHROME)):
            # A chrome node inside another one goes away with its ancestor.
            if not _has_ancestor(chrome, _CONTENT_ROOTS | _CHROME_SET):
                chrome.decompose()
        _drop_marked_chrome(tree)
        tree.strip_tags(_DROPPED, recursive=True)
        root = tree.body or tree.root
        walker = _Walker()
        if root is not None:
            walker.walk(root)
            walker.flush()
    except (SelectolaxError, ValueError, RuntimeError, TypeError) as exc:
        raise ParseError(f"{name} could not be read as HTML ({exc})") from exc
    return build_document(name, "text/html", walker.blocks, title=title or None)
