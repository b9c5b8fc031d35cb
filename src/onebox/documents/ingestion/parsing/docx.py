"""Word (.docx) documents into blocks with python-docx, in body order."""

from __future__ import annotations

import io
import re

from docx import Document
from docx.table import Table
from docx.text.paragraph import Paragraph

from onebox.documents.ingestion.parsing.base import Block, ParsedDocument, ParseError
from onebox.documents.ingestion.parsing.text import build_document

_HEADING_STYLE = re.compile(r"^heading\s*([1-9])$", re.I)


def _style_name(paragraph: Paragraph) -> str:
    style = paragraph.style
    return (style.name or "") if style is not None else ""


def _is_list_item(paragraph: Paragraph, style: str) -> bool:
    if style.lower().startswith("list"):
        return True
    # Lists made with the numbering buttons keep the Normal style and carry numPr instead.
    properties = paragraph._p.pPr
    return properties is not None and properties.numPr is not None


def _table_text(table: Table) -> str:
    lines: list[str] = []
    for row in table.rows:
        cells: list[str] = []
        seen: set[int] = set()
        for cell in row.cells:
            # A merged cell is returned once per grid column it spans; keep it once.
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(lines)


def _blocks(items: list[Paragraph | Table]) -> tuple[list[Block], str | None]:
    blocks: list[Block] = []
    list_items: list[str] = []
    title: str | None = None

    def flush_list() -> None:
        if list_items:
            blocks.append(Block("list", "\n".join(list_items)))
            list_items.clear()

    for item in items:
        if isinstance(item, Table):
            flush_list()
            blocks.append(Block("table", _table_text(item)))
            continue
        text = item.text.strip()
        if not text:
            continue
        style = _style_name(item)
        heading = _HEADING_STYLE.match(style)
        if style.lower() == "title":
            flush_list()
            title = title or text
            blocks.append(Block("heading", text, level=1))
        elif heading:
            flush_list()
            blocks.append(Block("heading", " ".join(text.split()), level=int(heading.group(1))))
        elif _is_list_item(item, style):
            list_items.append(f"- {text}")
        else:
            flush_list()
            blocks.append(Block("paragraph", text))
    flush_list()
    return blocks, title


def parse_docx(name: str, data: bytes) -> ParsedDocument:
    try:
        document = Document(io.BytesIO(data))
        blocks, title = _blocks(list(document.iter_inner_content()))
        core_title = (document.core_properties.title or "").strip()
    except MemoryError:
        raise
    except Exception as exc:
        # A damaged package fails anywhere in zipfile, zlib, lxml or python-docx, each with
        # its own exception types; to the user it all means "damaged".
        raise ParseError(
            f"{name} is damaged or not a valid Word document ({type(exc).__name__}: {exc})"
        ) from exc
    return build_document(
        name,
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        blocks,
        title=core_title or title,
    )
