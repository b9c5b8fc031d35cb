"""Query → embed → hybrid search inside the readable collections → passages with their
document, page and heading; retrieved text is screened like any untrusted input."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from onebox.core.metrics import metrics
from onebox.core.settings import Settings
from onebox.documents.ingestion.indexing import HEADING_JOINER, document_title, embedding_text
from onebox.documents.models import Chunk
from onebox.documents.repository import DocumentRepository
from onebox.documents.search.rerank import rerank, words
from onebox.documents.search.sentence_vectors import remember_stored
from onebox.embeddings.base import Embedder, Vectors
from onebox.guard.service import Guard
from onebox.vectors.base import SearchHit, SearchMode, VectorIndex

logger = logging.getLogger(__name__)

SNIPPET_CHARS = 280


@dataclass(frozen=True, slots=True)
class Source:
    number: int
    chunk_id: str
    document_id: str
    collection_id: str
    document: str
    page: int | None
    heading: str
    text: str
    snippet: str
    score: float
    flagged: bool = False
    # What the model reads: the passage with its neighbours in the document (the citation
    # and the snippet stay the passage's own); empty: the passage alone.
    context: str = ""

    @property
    def prompt_text(self) -> str:
        return self.context or self.text

    @property
    def label(self) -> str:
        parts = [self.document]
        if self.page is not None:
            parts.append(f"page {self.page}")
        if self.heading:
            parts.append(self.heading)
        return ", ".join(parts)

    def public(self, used: bool | None = None) -> dict[str, Any]:
        """What clients see and what is stored with the message (no full text)."""
        data: dict[str, Any] = {
            "number": self.number,
            "chunk_id": self.chunk_id,
            "document_id": self.document_id,
            "collection_id": self.collection_id,
            "document": self.document,
            "page": self.page,
            "heading": self.heading,
            "snippet": self.snippet,
            "score": round(self.score, 6),
        }
        if used is not None:
            data["used"] = used
        return data


@dataclass(frozen=True, slots=True)
class Retrieved:
    sources: list[Source]
    # The question's vector (None for a keyword search or when nothing was searched).
    query_vector: Any


def snippet(text: str, query: str, width: int = SNIPPET_CHARS) -> str:
    """The window of ``text`` with the most query words, cut at word boundaries."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    best = _best_window(flat, words(query), width)
    cut = flat[best : best + width]
    if best + width < len(flat) and " " in cut:
        cut = cut[: cut.rfind(" ")]
    return ("… " if best > 0 else "") + cut + ("…" if best + len(cut) < len(flat) else "")


def _word_starts(flat: str) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Where each word of ``flat`` starts: its whitespace is single spaces (``snippet``
    folds it), so a word starts at 0 and after every space, found without a Python loop
    (one UTF-32 code unit per character keeps the offsets)."""
    codes = np.frombuffer(flat.encode("utf-32-le"), dtype=np.uint32)
    after_space = np.flatnonzero(codes == ord(" ")) + 1
    return np.concatenate(([0], after_space[after_space < len(flat)])).astype(np.int64)


def _best_window(flat: str, terms: set[str], width: int) -> int:
    """The first word start whose ``width`` characters contain the most distinct ``terms``
    (case-insensitive), among those up to half a window from the end.

    An occurrence of a term at ``p`` is inside the windows starting from
    ``p + len(term) - width`` to ``p``: each term's occurrences are found once and every word
    start is checked against them in one vectorised pass, instead of lowering and searching
    a window at every word (5 passages a search, half a millisecond each)."""
    lower = flat.lower()
    if len(lower) != len(flat):  # a letter whose lower case is longer: keep the offsets
        lower = "".join(c if len(c.lower()) != 1 else c.lower() for c in flat)
    occurrences: list[tuple[int, list[int]]] = []
    for term in terms:
        found, at = [], lower.find(term)
        while at >= 0:
            found.append(at)
            at = lower.find(term, at + 1)
        if found:
            occurrences.append((len(term), found))
    if not occurrences:
        return 0
    starts = _word_starts(flat)
    # The first word start always counts; later ones only up to half a window from the end.
    starts = starts[: max(1, int(np.searchsorted(starts, len(flat) - width // 2, "right")))]
    hits = np.zeros(len(starts), dtype=np.int64)
    for size, found in occurrences:
        at_or_after = np.asarray(found, dtype=np.int64)
        first = np.searchsorted(at_or_after, starts, "left")  # first occurrence at or after
        inside = first < len(at_or_after)
        ends = at_or_after[np.minimum(first, len(at_or_after) - 1)] + size
        hits += inside & (ends <= starts + width)
    return int(starts[int(np.argmax(hits))])


class Retriever:
    def __init__(
        self, settings: Settings, embedder: Embedder, index: VectorIndex, guard: Guard
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.index = index
        self.guard = guard

    async def embed_query(self, query: str) -> Any:
        started = time.perf_counter()
        dense = (await self.embedder.embed([query], kind="query"))[0]
        metrics().embedding_latency.labels("query").observe(time.perf_counter() - started)
        return dense

    @contextlib.asynccontextmanager
    async def query_embedding(
        self, query: str, mode: SearchMode = "hybrid"
    ) -> AsyncIterator[asyncio.Future[Any] | None]:
        """The query's vector, started on entry so that it computes (on the embedder's
        thread) while the caller does its own database work first, such as resolving the
        collections; hand it to :meth:`retrieve` as ``query_vector``. ``None`` for a search
        that needs no vector. On exit an embedding nobody awaited is cancelled and its
        failure, if any, taken."""
        if mode == "keyword" or not query.strip():
            yield None
            return
        pending = asyncio.ensure_future(self.embed_query(query))
        try:
            await asyncio.sleep(0)  # it reaches the embedder's thread before the caller goes on
            yield pending
        finally:
            if not pending.done():
                pending.cancel()
            elif not pending.cancelled():
                pending.exception()

    async def retrieve(
        self,
        session: AsyncSession,
        query: str,
        collection_ids: Sequence[str],
        *,
        limit: int | None = None,
        mode: SearchMode = "hybrid",
        query_vector: Any = None,
        with_context: bool = True,
    ) -> Retrieved:
        """``collection_ids`` must already be the caller's readable collections.
        ``query_vector``: ``query`` already embedded (:meth:`embed_query`), or being embedded
        (:meth:`query_embedding`), reused. A hybrid search embeds the query while its keyword
        side runs; the vector comes back with the passages for callers that score sentences
        against it afterwards.
        ``with_context``: each passage's neighbours are read and joined for a model to read
        (:attr:`Source.context`); a search that only lists passages goes without."""
        if not collection_ids or not query.strip():
            unknown = isinstance(query_vector, asyncio.Future)  # still embedding: not ours
            return Retrieved([], None if unknown else query_vector)
        started = time.perf_counter()
        limit = limit or self.settings.retrieval_top_k
        candidates = max(limit, self.settings.retrieval_candidates)
        reranking = self.settings.rerank and mode != "keyword"
        dense = query_vector if mode != "keyword" else None
        pending = dense if isinstance(dense, asyncio.Future) else None
        pool = max(limit, self.settings.rerank_candidates) if reranking else limit
        if mode == "hybrid" and (dense is None or pending is not None):
            hits, dense = await self.index.hybrid_while_embedding(
                pending or self.embed_query(query), query, list(collection_ids),
                limit=pool, candidates=max(candidates, pool),
            )  # fmt: skip
        else:
            if pending is not None:
                dense = await pending
            elif dense is None and mode == "dense":
                dense = await self.embed_query(query)
            hits = await self.index.search(
                dense=dense,
                text=query,
                collection_ids=list(collection_ids),
                limit=pool,
                candidates=max(candidates, pool),
                mode=mode,
            )
        rows = await DocumentRepository(session).chunks_with_documents(
            [hit.chunk_id for hit in hits], collection_ids
        )
        hits = [hit for hit in hits if hit.chunk_id in rows]
        remember_stored(self.embedder, [chunk.sentences for chunk, _ in rows.values()])
        if reranking and dense is not None and len(hits) > 1:
            hits = await self._rerank(query, dense, hits, rows)
        hits = hits[:limit]
        neighbours = (
            await DocumentRepository(session).neighbours([rows[h.chunk_id][0] for h in hits])
            if with_context and self.settings.retrieval_neighbours
            else {}
        )
        sources: list[Source] = []
        for hit in hits:
            found = rows.get(hit.chunk_id)
            if found is None:
                continue  # an index entry whose document was just deleted
            chunk, document = found
            verdict = self.guard.screen_passage(chunk.text, chunk.screened)
            if verdict is None:
                logger.warning("Dropped a retrieved passage from %s: injection", document.id)
                metrics().guard_blocks.labels("retrieval").inc()
                continue
            sources.append(
                Source(
                    number=len(sources) + 1,
                    chunk_id=chunk.id,
                    document_id=document.id,
                    collection_id=chunk.collection_id,
                    document=document.filename,
                    page=chunk.page,
                    heading=HEADING_JOINER.join(chunk.heading_path or []),
                    text=verdict.text,
                    snippet=snippet(verdict.text, query),
                    score=hit.score,
                    flagged=verdict.flagged,
                    context=self._context(chunk, verdict.text, neighbours) if neighbours else "",
                )
            )
        metrics().retrieval_latency.observe(time.perf_counter() - started)
        return Retrieved(sources, dense)

    async def _rerank(
        self, query: str, dense: Vectors, hits: list[SearchHit], rows: dict[str, tuple[Chunk, Any]]
    ) -> list[SearchHit]:
        indexed = [
            embedding_text(
                rows[h.chunk_id][0].heading_path or [],
                rows[h.chunk_id][0].text,
                document_title(None, rows[h.chunk_id][1].filename),
            )
            for h in hits
        ]
        similarities = [h.similarity if h.similarity is not None else h.score for h in hits]
        order = await rerank(
            self.embedder,
            query,
            dense,
            [rows[h.chunk_id][0].text for h in hits],
            indexed,
            similarities,
        )
        return [hits[i] for i in order]

    def _context(self, chunk: Chunk, text: str, neighbours: dict[tuple[str, int], Chunk]) -> str:
        """The passage joined with the chunks before and after it, their overlap removed
        (offsets into the document text); each neighbour is screened like the passage."""
        before = neighbours.get((chunk.document_id, chunk.ordinal - 1))
        after = neighbours.get((chunk.document_id, chunk.ordinal + 1))
        parts = []
        screen = self.guard.screen_passage
        if before is not None and (screened := screen(before.text, before.screened)):
            own = max(0, min(len(screened.text), chunk.start_offset - before.start_offset))
            if screened.text == before.text and own:
                parts.append(before.text[:own].rstrip())
        parts.append(text)
        if after is not None and (screened := screen(after.text, after.screened)):
            skip = max(0, chunk.end_offset - after.start_offset)
            if screened.text == after.text and skip < len(after.text):
                parts.append(after.text[skip:].lstrip())
        return "\n\n".join(part for part in parts if part) if len(parts) > 1 else ""
