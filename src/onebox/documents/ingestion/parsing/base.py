"""What every parser produces: a document as a list of structural blocks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

BlockKind = Literal["heading", "paragraph", "list", "code", "table"]

BLOCK_SEPARATOR = "\n\n"
# Caps on what a small file can make a parser do: both grow work much faster than size.
DEFAULT_MAX_HTML_DEPTH = 512
DEFAULT_MAX_PDF_PAGE_CONTENT_BYTES = 4 * 1024 * 1024


class ParseError(Exception):
    """The file cannot be turned into text; the message is shown to the user as the reason
    (it never retries: the same bytes fail the same way)."""


class UnsupportedTypeError(ParseError):
    """The content is of a type we do not ingest, or is not what its name claims."""


@dataclass(frozen=True, slots=True)
class Block:
    kind: BlockKind
    text: str
    level: int = 0  # heading level 1-6; 0 for other blocks
    page: int | None = None  # 1-based, where the format has pages


@dataclass
class ParsedDocument:
    media_type: str
    blocks: list[Block] = field(default_factory=list)
    pages: int | None = None
    title: str | None = None

    @property
    def text(self) -> str:
        """The plain text that chunk offsets point into: blocks joined by a blank line."""
        return BLOCK_SEPARATOR.join(block.text for block in self.blocks)


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One file to ingest; a zip upload expands into several."""

    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class ParseLimits:
    max_file_bytes: int = 50 * 1024 * 1024
    max_zip_entries: int = 1000
    max_zip_total_bytes: int = 500 * 1024 * 1024
    max_zip_ratio: int = 100
    max_html_depth: int = DEFAULT_MAX_HTML_DEPTH
    max_pdf_page_content_bytes: int = DEFAULT_MAX_PDF_PAGE_CONTENT_BYTES
