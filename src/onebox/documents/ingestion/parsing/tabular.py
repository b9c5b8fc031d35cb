"""CSV and JSON rendered as self-describing lines.

Every CSV row repeats its column names and every JSON value carries its full key path, so a
chunk cut anywhere in the file still says what its numbers mean.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

from onebox.documents.ingestion.parsing.base import Block, ParsedDocument, ParseError
from onebox.documents.ingestion.parsing.text import build_document, normalize_newlines

CSV_ROWS_PER_BLOCK = 10
JSON_LINES_PER_BLOCK = 20
MAX_JSON_DEPTH = 64
_SNIFF_BYTES = 64 * 1024
_DELIMITERS = ",;\t|"


def _dialect(name: str, text: str) -> type[csv.Dialect] | csv.Dialect:
    sample = text[:_SNIFF_BYTES]
    # Cut the sample at a line end so the sniffer does not see half a quoted field.
    if len(text) > _SNIFF_BYTES and "\n" in sample:
        sample = sample[: sample.rindex("\n")]
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS)
    except csv.Error:
        if PurePosixPath(name).suffix.lower() == ".tsv":
            return csv.excel_tab
        return csv.excel


def _render_row(header: list[str], row: list[str]) -> str:
    parts = []
    for index, value in enumerate(row):
        value = " ".join(value.split())
        if not value:
            continue
        column = header[index] if index < len(header) and header[index] else f"column {index + 1}"
        parts.append(f"{column}: {value}")
    return "; ".join(parts)


def parse_csv(name: str, text: str) -> ParsedDocument:
    text = normalize_newlines(text)
    reader = csv.reader(io.StringIO(text, newline=""), _dialect(name, text))
    blocks: list[Block] = []
    rows: list[str] = []
    header: list[str] | None = None
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [" ".join(cell.split()) for cell in row]
                continue
            rendered = _render_row(header, row)
            if rendered:
                rows.append(rendered)
            if len(rows) == CSV_ROWS_PER_BLOCK:
                blocks.append(Block("table", "\n".join(rows)))
                rows = []
    except csv.Error as exc:
        raise ParseError(f"{name} is not a valid CSV file: {exc} (line {reader.line_num})") from exc
    if rows:
        blocks.append(Block("table", "\n".join(rows)))
    if header is not None and not blocks:
        raise ParseError(f"{name} contains no text: it has a header row but no data rows")
    return build_document(name, "text/csv", blocks)


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _lines(name: str, value: Any, path: str, depth: int) -> Iterator[str]:
    if depth > MAX_JSON_DEPTH:
        raise ParseError(f"{name} is nested more than {MAX_JSON_DEPTH} levels deep")
    if isinstance(value, dict):
        if not value:
            yield f"{path}: {{}}" if path else "{}"
        for key, item in value.items():
            yield from _lines(name, item, f"{path}.{key}" if path else str(key), depth + 1)
    elif isinstance(value, list):
        if not value:
            yield f"{path}: []" if path else "[]"
        for index, item in enumerate(value):
            yield from _lines(name, item, f"{path}[{index}]", depth + 1)
    else:
        yield f"{path}: {_scalar(value)}" if path else _scalar(value)


def _top_level_entries(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        yield from ((str(key), item) for key, item in value.items())
    elif isinstance(value, list) and value:
        yield from ((f"[{index}]", item) for index, item in enumerate(value))
    else:
        yield "", value


def parse_json(name: str, text: str) -> ParsedDocument:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(
            f"{name} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from exc
    except RecursionError as exc:
        raise ParseError(f"{name} is nested too deeply to read") from exc
    except ValueError as exc:  # e.g. an integer longer than Python's digit limit
        raise ParseError(f"{name} is not valid JSON: {exc}") from exc
    blocks: list[Block] = []
    # One top-level key or array element per block (split when long), so a chunk boundary
    # tends to fall between records rather than inside one.
    for path, item in _top_level_entries(value):
        lines: list[str] = []
        for line in _lines(name, item, path, 1):
            lines.append(line)
            if len(lines) == JSON_LINES_PER_BLOCK:
                blocks.append(Block("paragraph", "\n".join(lines)))
                lines = []
        if lines:
            blocks.append(Block("paragraph", "\n".join(lines)))
    return build_document(name, "application/json", blocks)
