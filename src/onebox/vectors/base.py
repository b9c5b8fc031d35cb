"""The vector index interface every backend implements."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from onebox.vectors.fusion import RRF_K, FusionMethod, fuse

__all__ = ["RRF_K", "FusionMethod"]

SearchMode = Literal["hybrid", "dense", "keyword"]
# Chosen on the tune half of the quality benchmark's questions (bench/bench_quality.py, both
# corpora): the best hit@1 + MRR among the variants whose hit@1 is never below dense-only.
# Weighted RRF with a small keyword weight won: keyword ranks break near-ties of the dense
# list instead of outvoting it (min-max and z-score fusion are a question or two behind).
DEFAULT_KEYWORD_WEIGHT = 0.1
DEFAULT_FUSION: FusionMethod = "rrf"


class IndexError_(Exception):
    """The index backend failed or is unreachable."""


@dataclass(frozen=True, slots=True)
class IndexPoint:
    chunk_id: str  # a UUID string; also the point id
    document_id: str
    collection_id: str
    text: str  # for the keyword (BM25) side
    dense: npt.NDArray[np.float32]  # unit length


@dataclass(frozen=True, slots=True)
class SearchHit:
    chunk_id: str
    document_id: str
    collection_id: str
    score: float
    # The dense side's cosine to the question, when the search had one (hybrid: a passage
    # only the keyword side found gets the lowest cosine the dense side returned, a bound).
    similarity: float | None = None


class VectorIndex(ABC):
    """Async facade; blocking engines run their calls in a worker thread."""

    name: str
    fusion: FusionMethod = DEFAULT_FUSION
    keyword_weight: float = DEFAULT_KEYWORD_WEIGHT

    async def _hybrid(
        self,
        dense: npt.NDArray[np.float32],
        text: str,
        collection_ids: Sequence[str],
        limit: int,
        candidates: int,
    ) -> list[SearchHit]:
        """The two searches, each ``candidates`` deep and filtered, fused in Python: one
        fusion (vectors/fusion.py) for every backend."""
        depth = max(candidates, limit)
        dense_hits, keyword_hits = await asyncio.gather(
            self.search(
                dense=dense, text=text, collection_ids=collection_ids, limit=depth,
                candidates=depth, mode="dense",
            ),
            self.search(
                dense=None, text=text, collection_ids=collection_ids, limit=depth,
                candidates=depth, mode="keyword",
            ),
        )  # fmt: skip
        return self._fuse(dense_hits, keyword_hits, limit)

    async def hybrid_while_embedding(
        self,
        embedding: Awaitable[npt.NDArray[np.float32]],
        text: str,
        collection_ids: Sequence[str],
        *,
        limit: int,
        candidates: int = 40,
    ) -> tuple[list[SearchHit], npt.NDArray[np.float32]]:
        """The hybrid search of :meth:`search` for a query still being embedded: the keyword
        side, which needs no vector, runs while ``embedding`` computes, and the dense side
        once it is there. Returns the fused hits and the query's vector."""
        depth = max(candidates, limit)
        keyword = asyncio.ensure_future(
            self.search(
                dense=None, text=text, collection_ids=collection_ids, limit=depth,
                candidates=depth, mode="keyword",
            )
        )  # fmt: skip
        try:
            vector = await embedding
            dense_hits = await self.search(
                dense=vector, text=text, collection_ids=collection_ids, limit=depth,
                candidates=depth, mode="dense",
            )  # fmt: skip
            keyword_hits = await keyword
        except BaseException:
            # The embedding or the dense side failed: stop waiting for the keyword side, and
            # take its own failure, if any, so it is not reported as never retrieved.
            if not keyword.cancel() and not keyword.cancelled():
                keyword.exception()
            raise
        return self._fuse(dense_hits, keyword_hits, limit), vector

    def _fuse(
        self, dense_hits: list[SearchHit], keyword_hits: list[SearchHit], limit: int
    ) -> list[SearchHit]:
        by_id = {hit.chunk_id: hit for hit in (*keyword_hits, *dense_hits)}
        cosine = {hit.chunk_id: hit.score for hit in dense_hits}
        floor = min(cosine.values(), default=0.0)
        fused = fuse(
            [(hit.chunk_id, hit.score) for hit in dense_hits],
            [(hit.chunk_id, hit.score) for hit in keyword_hits],
            method=self.fusion,
            keyword_weight=self.keyword_weight,
            limit=limit,
        )
        return [
            SearchHit(
                chunk_id=key,
                document_id=by_id[key].document_id,
                collection_id=by_id[key].collection_id,
                score=score,
                similarity=cosine.get(key, floor),
            )
            for key, score in fused
        ]

    @abstractmethod
    async def open(self, dimension: int) -> None:
        """Create or open the index (payload indexes on filter fields included). Refuses
        an existing index built with another dimension."""

    @abstractmethod
    async def upsert(self, points: Sequence[IndexPoint]) -> None: ...

    @abstractmethod
    async def delete_documents(self, document_ids: Sequence[str]) -> None: ...

    @abstractmethod
    async def search(
        self,
        *,
        dense: npt.NDArray[np.float32] | None,
        text: str,
        collection_ids: Sequence[str],
        limit: int,
        candidates: int = 40,
        mode: SearchMode = "hybrid",
    ) -> list[SearchHit]:
        """Best ``limit`` chunks among ``collection_ids`` only (the filter is part of the
        query, never applied afterwards). An empty ``collection_ids`` finds nothing."""

    @abstractmethod
    async def count(self) -> int: ...

    async def close(self) -> None:
        pass
