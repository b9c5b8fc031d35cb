"""One entry point: detect what a file is and hand it to the right parser."""

from __future__ import annotations

from collections.abc import Callable

from onebox.documents.ingestion.parsing.base import ParsedDocument, ParseError, ParseLimits
from onebox.documents.ingestion.parsing.detect import (
    CSV,
    DOCX,
    HTML,
    JSON,
    MARKDOWN,
    PDF,
    PLAIN,
    ZIP,
    decode_text,
    detect_media_type,
)
from onebox.documents.ingestion.parsing.docx import parse_docx
from onebox.documents.ingestion.parsing.html import parse_html
from onebox.documents.ingestion.parsing.pdf import parse_pdf
from onebox.documents.ingestion.parsing.tabular import parse_csv, parse_json
from onebox.documents.ingestion.parsing.text import parse_markdown, parse_plain_text

_TEXT_PARSERS: dict[str, Callable[[str, str], ParsedDocument]] = {
    MARKDOWN: parse_markdown,
    CSV: parse_csv,
    JSON: parse_json,
    PLAIN: parse_plain_text,
}


def parse_document(name: str, data: bytes, limits: ParseLimits | None = None) -> ParsedDocument:
    """Parse one file (never a zip: expand uploads with expand_upload first).

    Raises UnsupportedTypeError for files we do not ingest and ParseError for files we
    cannot read; the message names the file and is meant to be shown to the user.
    """
    limits = limits or ParseLimits()
    media_type = detect_media_type(name, data)
    if media_type == ZIP:
        raise ParseError(f"{name}: archives are expanded before parsing")
    if media_type == PDF:
        return parse_pdf(name, data, max_page_content_bytes=limits.max_pdf_page_content_bytes)
    if media_type == DOCX:
        return parse_docx(name, data)
    try:
        text = decode_text(data)
    except ParseError as exc:
        raise ParseError(f"{name}: {exc}") from exc
    if media_type == HTML:
        return parse_html(name, text, max_depth=limits.max_html_depth)
    return _TEXT_PARSERS[media_type](name, text)
