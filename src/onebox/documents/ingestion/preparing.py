"""Parse and chunk one document in a sandbox process (``jobs/sandbox.py``): both are CPU
work that grows with hostile input, so they never run on the event loop, and one round trip
brings back just what the job needs."""

from __future__ import annotations

from dataclasses import dataclass

from onebox.documents.ingestion.boilerplate import drop_common_lines, line_fingerprints
from onebox.documents.ingestion.chunking import ChunkDraft, chunk_document
from onebox.documents.ingestion.parsing import ParseLimits, parse_document


@dataclass(frozen=True, slots=True)
class PreparedDocument:
    media_type: str
    pages: int | None
    drafts: list[ChunkDraft]
    title: str | None = None
    lines: tuple[str, ...] = ()  # fingerprints of its short lines, for the collection counts


def prepare_document(
    name: str,
    data: bytes,
    limits: ParseLimits,
    chunk_size: int,
    chunk_overlap: int,
    common_lines: frozenset[str] = frozenset(),
) -> PreparedDocument:
    """Runs in the sandbox: must stay a top-level function of plain, picklable values.
    ``common_lines``: the collection's boilerplate (ingestion/boilerplate.py), dropped
    before chunking."""
    parsed = parse_document(name, data, limits)
    lines = tuple(line_fingerprints(parsed))
    parsed = drop_common_lines(parsed, common_lines)
    drafts = chunk_document(parsed, size=chunk_size, overlap=chunk_overlap)
    return PreparedDocument(
        media_type=parsed.media_type,
        pages=parsed.pages,
        drafts=drafts,
        title=parsed.title,
        lines=lines,
    )
