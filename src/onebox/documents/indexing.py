"""Chunk → embed → index, in batches, for one parsed document."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from onebox.documents.chunking import ChunkDraft
from onebox.documents.models import Chunk
from onebox.embeddings.base import Embedder
from onebox.vectors.base import IndexPoint, VectorIndex

HEADING_JOINER = " \u203a "  # a single right-pointing angle quote


def embedding_text(heading_path: Sequence[str], text: str) -> str:
    """What the encoder sees: the section's headings give a passage its topic."""
    if not heading_path:
        return text
    return f"{HEADING_JOINER.join(heading_path)}\n{text}"


async def embed_and_index(
    drafts: Sequence[ChunkDraft],
    *,
    document_id: str,
    collection_id: str,
    embedder: Embedder,
    index: VectorIndex,
    batch_size: int,
    on_batch: Callable[[int], Awaitable[None]] | None = None,
) -> list[Chunk]:
    """Embeds and indexes ``drafts``; returns the chunk rows for the caller to store in the
    same transaction that marks the document ready."""
    rows: list[Chunk] = []
    for start in range(0, len(drafts), batch_size):
        batch = drafts[start : start + batch_size]
        texts = [embedding_text(d.heading_path, d.text) for d in batch]
        vectors = await embedder.embed(texts, kind="document")
        batch_rows = [
            Chunk(
                document_id=document_id,
                collection_id=collection_id,
                ordinal=draft.ordinal,
                text=draft.text,
                page=draft.page,
                heading_path=list(draft.heading_path),
                start_offset=draft.start,
                end_offset=draft.end,
            )
            for draft in batch
        ]
        for row in batch_rows:
            row.id = new_chunk_id()
        await index.upsert(
            [
                IndexPoint(
                    chunk_id=row.id,
                    document_id=document_id,
                    collection_id=collection_id,
                    text=text,
                    dense=vectors[i],
                )
                for i, (row, text) in enumerate(zip(batch_rows, texts, strict=True))
            ]
        )
        rows.extend(batch_rows)
        if on_batch is not None:
            await on_batch(len(rows))
    return rows


def new_chunk_id() -> str:
    import uuid

    return str(uuid.uuid4())
