"""Parse and chunk one document in a sandbox process (``jobs/sandbox.py``): both are CPU
work that grows with hostile input, so they never run on the event loop, and one round trip
brings back just what the job needs."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from onebox.documents.ingestion.boilerplate import drop_common_lines, line_fingerprints
from onebox.documents.ingestion.chunking import ChunkDraft, chunk_document, fit_drafts
from onebox.documents.ingestion.indexing import document_title, embedding_text
from onebox.documents.ingestion.parsing import ParseLimits, parse_document


@dataclass(frozen=True, slots=True)
class PreparedDocument:
    media_type: str
    pages: int | None
    drafts: list[ChunkDraft]
    title: str  # the document title its passages' indexed text names
    lines: tuple[str, ...] = ()  # fingerprints of its short lines, for the collection counts


def prepare_document(
    name: str,
    data: bytes,
    limits: ParseLimits,
    chunk_size: int,
    chunk_overlap: int,
    common_lines: frozenset[str] = frozenset(),
    window: tuple[str, int] | None = None,
    min_lead: int = 0,
) -> PreparedDocument:
    """Runs in the sandbox: must stay a top-level function of plain, picklable values.
    ``common_lines``: the collection's boilerplate (ingestion/boilerplate.py), dropped
    before chunking. ``window``: the encoder's tokenizer and window (``Embedder.window``);
    a passage whose indexed text would not fit is split. ``min_lead``: see
    :func:`chunk_document`."""
    parsed = parse_document(name, data, limits)
    lines = tuple(line_fingerprints(parsed))
    parsed = drop_common_lines(parsed, common_lines)
    drafts = chunk_document(parsed, size=chunk_size, overlap=chunk_overlap, min_lead=min_lead)
    title = document_title(parsed.title, name)
    if window is not None:
        tokenizer, limit = _tokenizer(window[0]), window[1]

        def fits(draft: ChunkDraft) -> bool:
            text = embedding_text(draft.heading_path, draft.text, title)
            return len(tokenizer.encode(text).ids) <= limit

        drafts = fit_drafts(parsed.text, drafts, fits)
    return PreparedDocument(
        media_type=parsed.media_type,
        pages=parsed.pages,
        drafts=drafts,
        title=title,
        lines=lines,
    )


@functools.lru_cache(maxsize=2)
def _tokenizer(path: str) -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(path)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer
