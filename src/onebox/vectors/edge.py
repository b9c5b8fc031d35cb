"""Qdrant Edge: the Qdrant engine inside this process, one shard in a folder.

Edge has no background optimizer: points land in a plain (brute-force) appendable segment
and stay there until ``optimize()`` builds HNSW, merges segments and vacuums deletions. So
this class runs it itself, once writes have been quiet for ``optimize_delay`` seconds (and
at least every ``optimize_max_delay`` seconds under a steady trickle). Optimizing after
every write instead costs far more during bulk ingestion: each time the appendable segment
passes the indexing threshold (about 10 MB of vectors) it is indexed and then merged into
the big segment, whose graph is rebuilt -- 50k points of 384 dimensions took minutes that
way against about 16 s for one optimization at the end. Until then, new points are found
by brute force, which stays in the milliseconds at these sizes.

The shard is thread-safe: queries run while an optimization is in progress (measured), so
searches are not serialised; writes are, to keep their order (they would wait for the
optimizer inside the engine anyway).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import qdrant_edge as qe

from onebox.vectors import sparse
from onebox.vectors.base import (
    DEFAULT_KEYWORD_WEIGHT,
    IndexError_,
    IndexPoint,
    SearchHit,
    SearchMode,
    VectorIndex,
)

log = logging.getLogger(__name__)

DENSE = "dense"
SPARSE = "bm25"
PAYLOAD_FIELDS = ["document_id", "collection_id"]
CONFIG_FILE = "edge_config.json"
_UPSERT_BATCH = 512

T = TypeVar("T")


class EdgeIndex(VectorIndex):
    name = "edge"

    def __init__(
        self,
        path: Path,
        *,
        auto_optimize: bool = True,
        optimize_delay: float = 2.0,
        optimize_max_delay: float = 60.0,
        hnsw: qe.HnswIndexConfig | None = None,
        optimizers: qe.EdgeOptimizersConfig | None = None,
        keyword_weight: float = DEFAULT_KEYWORD_WEIGHT,
    ) -> None:
        """``hnsw`` and ``optimizers`` tune a new shard (None keeps the engine defaults, or
        what an existing shard was built with)."""
        self.path = path
        self.keyword_weight = keyword_weight
        self.auto_optimize = auto_optimize
        self.optimize_delay = optimize_delay
        self.optimize_max_delay = optimize_max_delay
        self._hnsw = hnsw
        self._optimizers = optimizers
        self.dimension = 0
        self._shard: qe.EdgeShard | None = None
        self._write_lock = asyncio.Lock()
        self._reads = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._optimizer: asyncio.Task[None] | None = None
        self._optimizing = False
        self._dirty_since: float | None = None
        self._last_write = 0.0

    async def open(self, dimension: int) -> None:
        if self._shard is not None:
            raise IndexError_("The Qdrant Edge index is already open")
        self.dimension = dimension
        self._shard = await self._run(self._open_shard, dimension)
        # Right away: the last process may have stopped before its optimization ran.
        self._wrote(delay=False)

    def _open_shard(self, dimension: int) -> qe.EdgeShard:
        config = qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine)},
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            hnsw_config=self._hnsw,
            optimizers=self._optimizers,
        )
        config_file = self.path / CONFIG_FILE
        if config_file.exists():
            built = _stored_dimension(config_file)
            if built is not None and built != dimension:
                raise IndexError_(_mismatch(self.path, built, dimension))
            try:
                shard = qe.EdgeShard.load(str(self.path), config)
            except Exception as exc:
                if "WouldBlock" in str(exc):
                    raise IndexError_(
                        f"The Qdrant Edge index at {self.path} is in use by another process. "
                        "Edge lives inside one process: stop the other Onebox process, or "
                        "run several with ONEBOX_VECTOR_BACKEND=qdrant or pgvector"
                    ) from exc
                # The engine checks the stored segments against the config too; its message
                # names the conflict (vector size, distance, a missing named vector).
                raise IndexError_(
                    f"Cannot open the Qdrant Edge index at {self.path}: {exc}"
                ) from exc
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            shard = qe.EdgeShard.create(str(self.path), config)
        try:
            # Idempotent. Built before HNSW so the graph gets the extra links that keep
            # filtered searches connected; collection_id is the tenant-like filter.
            shard.update(
                qe.UpdateOperation.create_field_index(
                    "collection_id", qe.KeywordIndexParams(is_tenant=True)
                )
            )
            shard.update(
                qe.UpdateOperation.create_field_index("document_id", qe.PayloadSchemaType.Keyword)
            )
        except Exception:
            shard.close()
            raise
        return shard

    async def upsert(self, points: Sequence[IndexPoint]) -> None:
        if not points:
            return
        async with self._write_lock:
            shard = self._require()
            await self._run(_upsert_sync, shard, list(points))
        self._wrote()

    async def delete_documents(self, document_ids: Sequence[str]) -> None:
        if not document_ids:
            return
        async with self._write_lock:
            shard = self._require()
            remove = _match_any("document_id", list(document_ids))
            await self._run(shard.update, qe.UpdateOperation.delete_points_by_filter(remove))
        self._wrote()

    async def optimize(self) -> bool:
        """Builds HNSW for segments past the indexing threshold, merges small segments and
        vacuums deleted points; returns once nothing is left to do, True if anything
        changed. Searches keep running meanwhile; writes wait. Runs by itself after writes
        (``auto_optimize``); call it to have the graph now (bulk imports, benchmarks)."""
        async with self._write_lock:
            shard = self._require()
            return await self._run(shard.optimize)

    @property
    def optimization_pending(self) -> bool:
        """A background optimization is waiting for writes to pause, or running."""
        return self._optimizer is not None

    def _wrote(self, *, delay: bool = True) -> None:
        if not self.auto_optimize:
            return
        now = time.monotonic()
        self._last_write = now if delay else now - self.optimize_delay
        if self._dirty_since is None:
            self._dirty_since = now
        if self._optimizer is None:
            self._optimizer = asyncio.create_task(self._optimize_when_quiet())

    async def _optimize_when_quiet(self) -> None:
        # No await between the loop test and clearing _optimizer, so a write that lands
        # after it always starts a new task, and one before it is seen by this loop.
        while self._dirty_since is not None and self._shard is not None:
            due = min(
                self._last_write + self.optimize_delay,
                self._dirty_since + self.optimize_max_delay,
            )
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            self._dirty_since = None
            self._optimizing = True
            try:
                await self.optimize()
            except IndexError_:
                log.exception("Qdrant Edge optimization failed; searches stay correct but slower")
            finally:
                self._optimizing = False
        self._optimizer = None

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
        if not collection_ids or limit <= 0:
            return []
        if mode == "hybrid":
            if dense is not None:
                return await self._hybrid(dense, text, collection_ids, limit, candidates)
            mode = "keyword"  # without a vector, hybrid is the keyword side alone
        request = self._request(dense, text, list(collection_ids), limit, mode)
        if request is None:
            return []
        shard = self._require()
        self._reads += 1
        self._idle.clear()
        try:
            found = await self._run(shard.query, request)
        finally:
            self._reads -= 1
            if self._reads == 0:
                self._idle.set()
        return [_to_hit(point) for point in found]

    def _request(
        self,
        dense: npt.NDArray[np.float32] | None,
        text: str,
        collection_ids: list[str],
        limit: int,
        mode: SearchMode,
    ) -> qe.QueryRequest | None:
        in_collections = _match_any("collection_id", collection_ids)
        queries: list[qe.Query] = []
        if mode != "keyword" and dense is not None:
            queries.append(qe.Query.Nearest(_floats(dense), using=DENSE))
        if mode != "dense":
            keywords = sparse.query_vector(text)
            if keywords.indices:
                vector = qe.SparseVector(keywords.indices, keywords.values)
                queries.append(qe.Query.Nearest(vector, using=SPARSE))
        if not queries:
            return None
        fields = qe.PayloadSelector.Include(PAYLOAD_FIELDS)
        return qe.QueryRequest(
            limit=limit, query=queries[0], filter=in_collections, with_payload=fields
        )

    async def count(self) -> int:
        shard = self._require()
        return await self._run(shard.count, qe.CountRequest(exact=True))

    async def close(self) -> None:
        task, self._dirty_since = self._optimizer, None
        if task is not None:
            if not self._optimizing:
                task.cancel()  # only ever sleeping here
            # An optimization under way runs in a worker thread that cannot be stopped:
            # closing the shard under it is not safe, so it finishes first.
            await asyncio.wait({task})
            self._optimizer = None
        async with self._write_lock:
            shard, self._shard = self._shard, None
            if shard is None:
                return
            # A query still running in a worker thread holds the shard: let it finish.
            await self._idle.wait()
            await self._run(_flush_and_close, shard)

    def _require(self) -> qe.EdgeShard:
        if self._shard is None:
            raise IndexError_("The Qdrant Edge index is not open")
        return self._shard

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.to_thread(function, *args)
        except IndexError_:
            raise
        except Exception as exc:
            # The bindings raise bare Exception for every engine error.
            raise IndexError_(f"Qdrant Edge: {exc}") from exc


def _upsert_sync(shard: qe.EdgeShard, points: list[IndexPoint]) -> None:
    for start in range(0, len(points), _UPSERT_BATCH):
        batch = [_to_point(p) for p in points[start : start + _UPSERT_BATCH]]
        shard.update(qe.UpdateOperation.upsert_points(batch))


def _flush_and_close(shard: qe.EdgeShard) -> None:
    shard.flush()
    shard.close()


def _stored_dimension(config_file: Path) -> int | None:
    try:
        stored = json.loads(config_file.read_text(encoding="utf-8"))
        return int(stored["vectors"][DENSE]["size"])
    except (OSError, ValueError, KeyError, TypeError):
        # An unexpected layout: the engine's own compatibility check still runs.
        log.debug("cannot read the dimension from %s", config_file, exc_info=True)
        return None


def _mismatch(path: Path, built: int, dimension: int) -> str:
    return (
        f"The Qdrant Edge index at {path} holds {built}-dimension vectors but the embedding "
        f"model makes {dimension}-dimension ones. Re-index with the model it was built with, "
        "or move that folder away and ingest the documents again."
    )


def _floats(vector: npt.NDArray[np.float32]) -> list[float]:
    values: list[float] = np.asarray(vector, dtype=np.float32).tolist()
    return values


def _to_point(point: IndexPoint) -> qe.Point:
    keywords = sparse.document_vector(point.text)
    return qe.Point(
        point.chunk_id,
        {
            DENSE: _floats(point.dense),
            SPARSE: qe.SparseVector(keywords.indices, keywords.values),
        },
        {"document_id": point.document_id, "collection_id": point.collection_id},
    )


def _to_hit(point: qe.ScoredPoint) -> SearchHit:
    payload = point.payload or {}
    return SearchHit(
        chunk_id=str(point.id),
        document_id=str(payload.get("document_id", "")),
        collection_id=str(payload.get("collection_id", "")),
        score=float(point.score),
    )


def _match_any(key: str, values: list[str]) -> qe.Filter:
    return qe.Filter(must=[qe.FieldCondition(key=key, match=qe.MatchAny(any=values))])
