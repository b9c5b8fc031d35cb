"""Plain text and Markdown into blocks.

Markdown is parsed line by line for structure only (headings, fences, lists, tables); inline
markup is left as written because it reads fine as text and keeps chunk offsets predictable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from onebox.documents.ingestion.parsing.base import Block, ParsedDocument, ParseError

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_THEMATIC_BREAK = re.compile(r"^ {0,3}(?:(?:\*[ \t]*){3,}|(?:-[ \t]*){3,}|(?:_[ \t]*){3,})$")
_LIST_ITEM = re.compile(r"^[ \t]{0,3}(?:[-*+]|\d{1,9}[.)])(?:[ \t]+|$)")
_TABLE_DELIMITER = re.compile(r"^[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
_INDENTED = re.compile(r"^(?: {4}|\t)")
_FRONT_MATTER_TITLE = re.compile(r"^title:\s*(.+?)\s*$")
_FRONT_MATTER_MAX_LINES = 200


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def build_document(
    name: str,
    media_type: str,
    blocks: Iterable[Block],
    *,
    pages: int | None = None,
    title: str | None = None,
) -> ParsedDocument:
    """Strip blocks, drop empty ones, and refuse a document that has no text at all."""
    kept = [
        Block(kind=b.kind, text=b.text.strip(), level=b.level, page=b.page)
        for b in blocks
        if b.text.strip()
    ]
    if not kept:
        raise ParseError(f"{name} contains no text")
    return ParsedDocument(media_type=media_type, blocks=kept, pages=pages, title=title)


def _paragraphs(lines: list[str]) -> list[Block]:
    blocks: list[Block] = []
    current: list[str] = []
    for line in lines:
        if line.strip():
            current.append(line.rstrip())
        elif current:
            blocks.append(Block("paragraph", "\n".join(current)))
            current = []
    if current:
        blocks.append(Block("paragraph", "\n".join(current)))
    return blocks


def parse_plain_text(name: str, text: str) -> ParsedDocument:
    """Paragraphs are separated by blank lines (or form feeds, which mark page breaks)."""
    lines = normalize_newlines(text).replace("\f", "\n\n").split("\n")
    return build_document(name, "text/plain", _paragraphs(lines))


def _table_row(line: str) -> str:
    cells = line.strip()
    if cells.startswith("|"):
        cells = cells[1:]
    if cells.endswith("|") and not cells.endswith("\\|"):
        cells = cells[:-1]
    return " | ".join(cell.strip() for cell in re.split(r"(?<!\\)\|", cells))


def _strip_front_matter(lines: list[str]) -> tuple[list[str], str | None]:
    if not lines or lines[0].strip() != "---":
        return lines, None
    for index in range(1, min(len(lines), _FRONT_MATTER_MAX_LINES)):
        if lines[index].strip() in ("---", "..."):
            title = None
            for line in lines[1:index]:
                match = _FRONT_MATTER_TITLE.match(line)
                if match:
                    title = match.group(1).strip("\"'") or None
            return lines[index + 1 :], title
    return lines, None


class _MarkdownReader:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.pos = 0
        self.blocks: list[Block] = []
        self.paragraph: list[str] = []

    def flush_paragraph(self) -> None:
        if self.paragraph:
            self.blocks.append(Block("paragraph", "\n".join(self.paragraph)))
            self.paragraph = []

    def read(self) -> list[Block]:
        while self.pos < len(self.lines):
            self.step(self.lines[self.pos])
        self.flush_paragraph()
        return self.blocks

    def step(self, line: str) -> None:
        if not line.strip():
            self.flush_paragraph()
            self.pos += 1
        elif fence := _FENCE.match(line):
            self.flush_paragraph()
            self.read_fence(fence.group(1))
        elif atx := _ATX.match(line):
            self.flush_paragraph()
            self.blocks.append(Block("heading", atx.group(2) or "", level=len(atx.group(1))))
            self.pos += 1
        elif self.paragraph and _SETEXT.match(line):
            level = 1 if line.strip().startswith("=") else 2
            self.blocks.append(Block("heading", " ".join(p.strip() for p in self.paragraph), level))
            self.paragraph = []
            self.pos += 1
        elif _THEMATIC_BREAK.match(line):
            self.flush_paragraph()
            self.pos += 1
        elif _LIST_ITEM.match(line):
            self.flush_paragraph()
            self.read_list()
        elif self.starts_table():
            self.flush_paragraph()
            self.read_table()
        elif not self.paragraph and _INDENTED.match(line):
            self.read_indented_code()
        else:
            self.paragraph.append(line.rstrip())
            self.pos += 1

    def read_fence(self, opener: str) -> None:
        self.pos += 1
        body: list[str] = []
        while self.pos < len(self.lines):
            line = self.lines[self.pos]
            self.pos += 1
            stripped = line.strip()
            # The closing fence uses the same character and is at least as long; an
            # unclosed fence runs to the end of the document, as CommonMark says.
            if stripped.startswith(opener[0] * len(opener)) and not stripped.strip(opener[0]):
                break
            body.append(line.rstrip())
        self.blocks.append(Block("code", "\n".join(body).strip("\n")))

    def read_list(self) -> None:
        items: list[str] = []
        while self.pos < len(self.lines):
            line = self.lines[self.pos]
            if not line.strip():
                following = self.next_non_blank()
                if following is None or not (
                    _LIST_ITEM.match(following) or _INDENTED.match(following)
                ):
                    break
                self.pos += 1
                continue
            # A lazy continuation line belongs to the item unless it starts a new block.
            lazy = items and not _LIST_ITEM.match(line) and not line[:1].isspace()
            if lazy and (_ATX.match(line) or _FENCE.match(line) or _THEMATIC_BREAK.match(line)):
                break
            items.append(line.rstrip())
            self.pos += 1
        self.blocks.append(Block("list", "\n".join(items)))

    def next_non_blank(self) -> str | None:
        for line in self.lines[self.pos :]:
            if line.strip():
                return line
        return None

    def starts_table(self) -> bool:
        line = self.lines[self.pos]
        following = self.lines[self.pos + 1] if self.pos + 1 < len(self.lines) else ""
        return "|" in line and "|" in following and bool(_TABLE_DELIMITER.match(following))

    def read_table(self) -> None:
        rows = [_table_row(self.lines[self.pos])]
        self.pos += 2  # header and delimiter row
        while self.pos < len(self.lines) and "|" in self.lines[self.pos]:
            rows.append(_table_row(self.lines[self.pos]))
            self.pos += 1
        self.blocks.append(Block("table", "\n".join(rows)))

    def read_indented_code(self) -> None:
        body: list[str] = []
        while self.pos < len(self.lines):
            line = self.lines[self.pos]
            if line.strip() and not _INDENTED.match(line):
                break
            body.append(line[4:] if line.startswith("    ") else line[1:])
            self.pos += 1
        self.blocks.append(Block("code", "\n".join(body).strip("\n")))


def parse_markdown(name: str, text: str) -> ParsedDocument:
    lines, title = _strip_front_matter(normalize_newlines(text).split("\n"))
    blocks = _MarkdownReader(lines).read()
    if title is None:
        title = next((b.text for b in blocks if b.kind == "heading" and b.level == 1), None)
    return build_document(name, "text/markdown", blocks, title=title or None)
