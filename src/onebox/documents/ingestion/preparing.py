"""Parse and chunk one document in a sandbox process (``jobs/sandbox.py``): both are CPU
work that grows with hostile input, so they never run on the event loop, and one round trip
brings back just what the job needs."""

from __future__ import annotations

from dataclasses import dataclass

from onebox.documents.ingestion.chunking import ChunkDraft, chunk_document
from onebox.documents.ingestion.parsing import ParseLimits, parse_document


@dataclass(frozen=True, slots=True)
class PreparedDocument:
    media_type: str
    pages: int | None
    drafts: list[ChunkDraft]


def prepare_document(
    name: str, data: bytes, limits: ParseLimits, chunk_size: int, chunk_overlap: int
) -> PreparedDocument:
    """Runs in the sandbox: must stay a top-level function of plain, picklable values."""
    parsed = parse_document(name, data, limits)
    drafts = chunk_document(parsed, size=chunk_size, overlap=chunk_overlap)
    return PreparedDocument(media_type=parsed.media_type, pages=parsed.pages, drafts=drafts)
