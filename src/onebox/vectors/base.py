"""The vector index interface every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

SearchMode = Literal["hybrid", "dense", "keyword"]
RRF_K = 60
# Keyword (BM25) votes count this much against dense ones in the fusion: measured on the
# quality benchmark, equal weights let common words outvote meaning on natural questions.
DEFAULT_KEYWORD_WEIGHT = 0.3


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


class VectorIndex(ABC):
    """Async facade; blocking engines run their calls in a worker thread."""

    name: str

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
