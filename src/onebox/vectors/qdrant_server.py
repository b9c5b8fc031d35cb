"""A Qdrant server or cluster through qdrant-client.

``location`` is what ``ONEBOX_QDRANT_URL`` holds: ``http(s)://host:6333`` for a server,
``:memory:`` or a folder for qdrant-client's local mode, which runs the same calls in this
process (tests). Hybrid search runs the dense and the keyword query and fuses them in Python
(vectors/fusion.py), like every backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt
from qdrant_client import AsyncQdrantClient, models

from onebox.vectors import sparse
from onebox.vectors.base import (
    DEFAULT_KEYWORD_WEIGHT,
    IndexError_,
    IndexPoint,
    SearchHit,
    SearchMode,
    VectorIndex,
)

DENSE = "dense"
SPARSE = "bm25"
PAYLOAD_FIELDS = ["document_id", "collection_id"]
_UPSERT_BATCH = 256


class QdrantServerIndex(VectorIndex):
    name = "qdrant"

    def __init__(
        self,
        location: str,
        *,
        api_key: str | None = None,
        collection: str = "onebox_chunks",
        timeout: int = 30,
        keyword_weight: float = DEFAULT_KEYWORD_WEIGHT,
    ) -> None:
        self.location = location
        self.keyword_weight = keyword_weight
        self.collection = collection
        self.dimension = 0
        self._api_key = api_key
        self._timeout = timeout
        self._client: AsyncQdrantClient | None = None

    @property
    def local(self) -> bool:
        return not self.location.startswith(("http://", "https://"))

    def _connect(self) -> AsyncQdrantClient:
        if self.location == ":memory:":
            return AsyncQdrantClient(location=":memory:")
        if self.local:
            return AsyncQdrantClient(path=self.location)
        return AsyncQdrantClient(url=self.location, api_key=self._api_key, timeout=self._timeout)

    async def open(self, dimension: int) -> None:
        if self._client is not None:
            raise IndexError_("The Qdrant index is already open")
        self.dimension = dimension
        with _errors("connect to"):
            client = self._connect()
        try:
            with _errors("prepare the collection on"):
                await self._prepare(client, dimension)
        except BaseException:
            await client.close()
            raise
        self._client = client

    async def _prepare(self, client: AsyncQdrantClient, dimension: int) -> None:
        if not await client.collection_exists(self.collection):
            try:
                await client.create_collection(
                    self.collection,
                    vectors_config={
                        DENSE: models.VectorParams(size=dimension, distance=models.Distance.COSINE)
                    },
                    sparse_vectors_config={
                        SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)
                    },
                )
            except Exception:
                # Another replica may have created it in the meantime; that one is checked.
                if not await client.collection_exists(self.collection):
                    raise
        await self._check_schema(client, dimension)
        with warnings.catch_warnings():
            # Local mode has no payload indexes and says so; a server builds them.
            warnings.filterwarnings(
                "ignore", message="Payload indexes have no effect", category=UserWarning
            )
            # Created before the data so HNSW is built with the filter-aware extra links.
            await client.create_payload_index(
                self.collection,
                "collection_id",
                models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True),
            )
            await client.create_payload_index(
                self.collection, "document_id", models.PayloadSchemaType.KEYWORD
            )

    async def _check_schema(self, client: AsyncQdrantClient, dimension: int) -> None:
        params = (await client.get_collection(self.collection)).config.params
        vectors = params.vectors
        dense = vectors.get(DENSE) if isinstance(vectors, dict) else None
        if dense is None or SPARSE not in (params.sparse_vectors or {}):
            raise IndexError_(
                f"The Qdrant collection {self.collection!r} exists but was not made by Onebox "
                f"(it needs a dense vector {DENSE!r} and a sparse vector {SPARSE!r}); "
                "set ONEBOX_QDRANT_COLLECTION to another name"
            )
        if dense.size != dimension:
            raise IndexError_(
                f"The Qdrant collection {self.collection!r} holds {dense.size}-dimension "
                f"vectors but the embedding model makes {dimension}-dimension ones. Re-index "
                "with the model it was built with, or use another ONEBOX_QDRANT_COLLECTION"
            )

    async def upsert(self, points: Sequence[IndexPoint]) -> None:
        client = self._require()
        with _errors("write to"):
            for start in range(0, len(points), _UPSERT_BATCH):
                # BM25 vectors (tokenizing, stemming) are CPU work: off the event loop.
                batch = await asyncio.to_thread(_to_points, points[start : start + _UPSERT_BATCH])
                await client.upsert(self.collection, points=batch, wait=True)

    async def delete_documents(self, document_ids: Sequence[str]) -> None:
        if not document_ids:
            return
        client = self._require()
        selector = models.FilterSelector(filter=_match_any("document_id", list(document_ids)))
        with _errors("delete from"):
            await client.delete(self.collection, points_selector=selector, wait=True)

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
        client = self._require()
        in_collections = _match_any("collection_id", list(collection_ids))
        queries: list[tuple[str, list[float] | models.SparseVector]] = []
        if mode != "keyword" and dense is not None:
            queries.append((DENSE, _floats(dense)))
        if mode != "dense":
            keywords = sparse.query_vector(text)
            if keywords.indices:
                vector = models.SparseVector(indices=keywords.indices, values=keywords.values)
                queries.append((SPARSE, vector))
        if not queries:
            return []
        with _errors("search"):
            using, query = queries[0]
            response = await client.query_points(
                self.collection,
                query=query,
                using=using,
                query_filter=in_collections,
                limit=limit,
                with_payload=PAYLOAD_FIELDS,
            )
        return [_to_hit(point) for point in response.points]

    async def count(self) -> int:
        client = self._require()
        with _errors("count on"):
            return (await client.count(self.collection, exact=True)).count

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with _errors("close"):
                await client.close()

    def _require(self) -> AsyncQdrantClient:
        if self._client is None:
            raise IndexError_("The Qdrant index is not open")
        return self._client


@contextlib.contextmanager
def _errors(action: str) -> Iterator[None]:
    try:
        yield
    except IndexError_:
        raise
    except Exception as exc:
        # qdrant-client raises HTTP, gRPC, pydantic and local-mode errors alike.
        raise IndexError_(f"Could not {action} Qdrant: {exc}") from exc


def _floats(vector: npt.NDArray[np.float32]) -> list[float]:
    values: list[float] = np.asarray(vector, dtype=np.float32).tolist()
    return values


def _to_points(points: Sequence[IndexPoint]) -> list[models.PointStruct]:
    return [_to_point(point) for point in points]


def _to_point(point: IndexPoint) -> models.PointStruct:
    keywords = sparse.document_vector(point.text)
    return models.PointStruct(
        id=point.chunk_id,
        vector={
            DENSE: _floats(point.dense),
            SPARSE: models.SparseVector(indices=keywords.indices, values=keywords.values),
        },
        payload={"document_id": point.document_id, "collection_id": point.collection_id},
    )


def _to_hit(point: models.ScoredPoint) -> SearchHit:
    payload = point.payload or {}
    return SearchHit(
        chunk_id=str(point.id),
        document_id=str(payload.get("document_id", "")),
        collection_id=str(payload.get("collection_id", "")),
        score=float(point.score),
    )


def _match_any(key: str, values: list[str]) -> models.Filter:
    return models.Filter(must=[models.FieldCondition(key=key, match=models.MatchAny(any=values))])
