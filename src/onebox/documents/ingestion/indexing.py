"""Chunk → embed → index, in batches, for one parsed document."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import PurePosixPath

from onebox.core.metrics import metrics
from onebox.documents.ingestion.chunking import ChunkDraft
from onebox.documents.models import Chunk
from onebox.embeddings.base import Embedder, Vectors
from onebox.vectors.base import IndexPoint, VectorIndex

HEADING_JOINER = " \u203a "  # a single right-pointing angle quote


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


@functools.lru_cache(maxsize=4096)  # every hit of a search or a turn asks for its document's
def document_title(title: str | None, filename: str) -> str:
    """The title a passage's indexed text names: the document's own (HTML <title>, first
    Markdown heading…), else its file name without the extension."""
    if title and title.strip():
        return " ".join(title.split())
    stem = PurePosixPath(filename.replace("\\", "/")).name
    if "." in stem[1:]:
        stem = stem.rsplit(".", 1)[0]
    return " ".join(stem.replace("_", " ").split())


def embedding_text(heading_path: Sequence[str], text: str, title: str | None = None) -> str:
    """What the encoder and the keyword index see: the document title and the section's
    headings give a passage its topic. The stored and displayed text stays the passage."""
    context = list(heading_path)
    if title and not any(_same(title, heading) for heading in context):
        context.insert(0, title)
    if not context:
        return text
    return f"{HEADING_JOINER.join(context)}\n{text}"


async def embed_and_index(
    drafts: Sequence[ChunkDraft],
    *,
    document_id: str,
    collection_id: str,
    embedder: Embedder,
    index: VectorIndex,
    batch_size: int,
    on_batch: Callable[[int], Awaitable[None]] | None = None,
    title: str | None = None,
    on_embedded: Callable[[], None] | None = None,
    screen: Callable[[str], str | None] | None = None,
) -> list[Chunk]:
    """Embeds and indexes ``drafts``; returns the chunk rows for the caller to store in the
    same transaction that marks the document ready. The next batch is being embedded while
    the current one is written to the index, so the encoder never waits for the index.
    ``title`` (see :func:`document_title`) heads every passage's indexed text;
    ``on_embedded`` is called once the last batch's vectors are in (before its index write);
    ``screen`` (``Guard.clean_mark``) marks each passage that screens clean, in a worker thread
    while the encoder runs, so retrieval need not scan it again."""
    batches = [drafts[i : i + batch_size] for i in range(0, len(drafts), batch_size)]
    texts = [[embedding_text(d.heading_path, d.text, title) for d in batch] for batch in batches]
    rows: list[Chunk] = []
    upcoming = asyncio.ensure_future(_embed(embedder, texts[0])) if batches else None
    try:
        for number, batch in enumerate(batches):
            assert upcoming is not None
            vectors = await upcoming
            upcoming = (
                asyncio.ensure_future(_embed(embedder, texts[number + 1]))
                if number + 1 < len(batches)
                else None
            )
            if upcoming is None and on_embedded is not None:
                on_embedded()
            batch_rows = [_row(draft, document_id, collection_id) for draft in batch]
            if screen is not None:
                marks = await asyncio.to_thread(_marks, screen, [row.text for row in batch_rows])
                for row, mark in zip(batch_rows, marks, strict=True):
                    row.screened = mark
            await index.upsert(
                [
                    IndexPoint(
                        chunk_id=row.id,
                        document_id=document_id,
                        collection_id=collection_id,
                        text=text,
                        dense=vectors[i],
                    )
                    for i, (row, text) in enumerate(zip(batch_rows, texts[number], strict=True))
                ]
            )
            rows.extend(batch_rows)
            metrics().chunks_indexed.inc(len(batch_rows))
            if on_batch is not None:
                await on_batch(len(rows))
    finally:
        if upcoming is not None and not upcoming.done():
            upcoming.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await upcoming
    return rows


def _marks(screen: Callable[[str], str | None], texts: list[str]) -> list[str | None]:
    return [screen(text) for text in texts]


async def _embed(embedder: Embedder, texts: list[str]) -> Vectors:
    started = time.perf_counter()
    vectors = await embedder.embed(texts)
    metrics().embedding_latency.labels("document").observe(time.perf_counter() - started)
    return vectors


def _row(draft: ChunkDraft, document_id: str, collection_id: str) -> Chunk:
    return Chunk(
        id=new_chunk_id(),
        document_id=document_id,
        collection_id=collection_id,
        ordinal=draft.ordinal,
        text=draft.text,
        page=draft.page,
        heading_path=list(draft.heading_path),
        start_offset=draft.start,
        end_offset=draft.end,
    )


def new_chunk_id() -> str:
    return str(uuid.uuid4())
