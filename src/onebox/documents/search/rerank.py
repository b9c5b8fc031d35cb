"""Optional second pass over fused candidates (``ONEBOX_RERANK=true``): re-scores each
passage against the question with fresh embeddings and term coverage, then picks a diverse
top-k (maximal marginal relevance), so five near-copies of one paragraph do not crowd out
the passage that actually answers."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from onebox.embeddings.base import Embedder, Vectors

_TERM = re.compile(r"\w{3,}", re.UNICODE)
SEMANTIC_WEIGHT = 0.75
DIVERSITY = 0.25


def coverage(query: str, passage: str) -> float:
    """Share of the question's distinct words that the passage contains."""
    terms = {t.lower() for t in _TERM.findall(query)}
    if not terms:
        return 0.0
    words = {w.lower() for w in _TERM.findall(passage)}
    return len(terms & words) / len(terms)


def select(
    relevance: Sequence[float], vectors: Vectors, limit: int, diversity: float = DIVERSITY
) -> list[int]:
    """Indexes of the ``limit`` passages maximising relevance minus redundancy."""
    chosen: list[int] = []
    remaining = list(range(len(relevance)))
    similarity = vectors @ vectors.T
    while remaining and len(chosen) < limit:

        def gain(i: int) -> float:
            redundancy = max((float(similarity[i, j]) for j in chosen), default=0.0)
            return (1 - diversity) * relevance[i] - diversity * redundancy

        best = max(remaining, key=gain)
        chosen.append(best)
        remaining.remove(best)
    return chosen


async def rerank(
    embedder: Embedder, query: str, query_vector: Vectors, passages: Sequence[str], limit: int
) -> list[int]:
    if not passages:
        return []
    vectors = await embedder.embed(list(passages), kind="document")
    semantic = vectors @ np.asarray(query_vector, dtype=np.float32)
    relevance = [
        SEMANTIC_WEIGHT * float(score) + (1 - SEMANTIC_WEIGHT) * coverage(query, text)
        for score, text in zip(semantic, passages, strict=True)
    ]
    return select(relevance, vectors, limit)
