"""One entry point: detect what a file is and hand it to the right parser."""

from __future__ import annotations

from collections.abc import Callable

from onebox.documents.ingestion.parsing.base import ParsedDocument, ParseError
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

_BINARY_PARSERS: dict[str, Callable[[str, bytes], ParsedDocument]] = {
    PDF: parse_pdf,
    DOCX: parse_docx,
}
_TEXT_PARSERS: dict[str, Callable[[str, str], ParsedDocument]] = {
    HTML: parse_html,
    MARKDOWN: parse_markdown,
    CSV: parse_csv,
    JSON: parse_json,
    PLAIN: parse_plain_text,
}


def parse_document(name: str, data: bytes) -> ParsedDocument:
    """Parse one file (never a zip: expand uploads with expand_upload first).

    Raises UnsupportedTypeError for files we do not ingest and ParseError for files we
    cannot read; the message names the file and is meant to be shown to the user.
    """
    media_type = detect_media_type(name, data)
    if media_type == ZIP:
        raise ParseError(f"{name}: archives are expanded before parsing")
    binary_parser = _BINARY_PARSERS.get(media_type)
    if binary_parser is not None:
        return binary_parser(name, data)
    try:
        text = decode_text(data)
    except ParseError as exc:
        raise ParseError(f"{name}: {exc}") from exc
    return _TEXT_PARSERS[media_type](name, text)
