"""Fusing a dense and a keyword (BM25) result list into one ranking, the same maths for every
backend: each backend returns the two lists with their scores, and :func:`fuse` ranks.

- ``minmax``: each list's scores are min-max normalised to [0, 1] over the
  candidates it returned, a candidate missing from a list counts 0 there, and the fused score
  is the convex combination ``(1 - w) * dense + w * keyword``. Unlike rank fusion it keeps
  how far apart the scores are, so a clear dense winner stays first unless the keyword side
  is as clearly sure of another passage.
- ``zscore``: the same with z-normalised scores (a missing candidate gets its list's lowest).
- ``rrf`` (the default, with ``w = 0.1``: measured best, see vectors/base.py): weighted
  reciprocal rank fusion, ``1 / (60 + rank)`` per list, keyword ranks weighted ``w`` against
  dense ones (1.0); ranks count from 0, like Qdrant's.

Ties are broken by the dense rank, then the keyword rank, so the order is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, TypeVar, get_args

FusionMethod = Literal["minmax", "zscore", "rrf"]
FUSION_METHODS: tuple[FusionMethod, ...] = get_args(FusionMethod)
RRF_K = 60

K = TypeVar("K")


def _minmax(scores: Sequence[float]) -> list[float]:
    low, high = min(scores), max(scores)
    if high - low <= 1e-12:
        return [1.0] * len(scores)
    return [(s - low) / (high - low) for s in scores]


def _zscore(scores: Sequence[float]) -> list[float]:
    mean = sum(scores) / len(scores)
    spread = math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores))
    if spread <= 1e-12:
        return [0.0] * len(scores)
    return [(s - mean) / spread for s in scores]


def _normalised(
    hits: Sequence[tuple[K, float]], method: FusionMethod, weight: float
) -> tuple[dict[K, float], float]:
    """(key -> contribution, contribution of a key missing from this list)."""
    if not hits:
        return {}, 0.0
    if method == "rrf":
        return {key: weight / (RRF_K + rank) for rank, (key, _) in enumerate(hits)}, 0.0
    scores = [score for _, score in hits]
    values = _minmax(scores) if method == "minmax" else _zscore(scores)
    missing = 0.0 if method == "minmax" else min(values)
    return {key: weight * v for (key, _), v in zip(hits, values, strict=True)}, weight * missing


def fuse(
    dense: Sequence[tuple[K, float]],
    keyword: Sequence[tuple[K, float]],
    *,
    method: FusionMethod = "minmax",
    keyword_weight: float = 0.3,
    limit: int | None = None,
) -> list[tuple[K, float]]:
    """Both inputs best first, as (key, score). Returns (key, fused score), best first.

    ``keyword_weight`` is ``w`` in [0, 1] for the normalised methods (dense counts
    ``1 - w``), and the keyword list's weight against 1.0 for ``rrf``."""
    if method not in FUSION_METHODS:
        raise ValueError(f"unknown fusion method {method!r}")
    if method == "rrf":
        dense_weight, kw_weight = 1.0, keyword_weight
    else:
        if not 0.0 <= keyword_weight <= 1.0:
            raise ValueError("keyword_weight must be between 0 and 1 for normalised fusion")
        dense_weight, kw_weight = 1.0 - keyword_weight, keyword_weight
    dense_part, dense_missing = _normalised(dense, method, dense_weight)
    keyword_part, keyword_missing = _normalised(keyword, method, kw_weight)
    dense_rank = {key: rank for rank, (key, _) in enumerate(dense)}
    keyword_rank = {key: rank for rank, (key, _) in enumerate(keyword)}
    keys = list(dense_rank) + [key for key in keyword_rank if key not in dense_rank]
    fused = [
        (
            key,
            dense_part.get(key, dense_missing) + keyword_part.get(key, keyword_missing),
        )
        for key in keys
    ]
    last = len(dense) + len(keyword)
    fused.sort(
        key=lambda item: (
            -item[1],
            dense_rank.get(item[0], last),
            keyword_rank.get(item[0], last),
        )
    )
    return fused if limit is None else fused[:limit]
