"""One suite, three vector index backends: Qdrant Edge in a folder, qdrant-client's local
mode (the same calls as a Qdrant server), pgvector on an embedded PostgreSQL 18."""

from __future__ import annotations

import asyncio
import itertools
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import qdrant_edge as qe

from onebox.core.settings import Settings
from onebox.vectors import sparse
from onebox.vectors.base import IndexError_, IndexPoint, SearchHit, SearchMode, VectorIndex
from onebox.vectors.edge import EdgeIndex
from onebox.vectors.factory import build_index
from onebox.vectors.pgvector import PgVectorIndex, postgres_dsn
from onebox.vectors.qdrant_server import QdrantServerIndex
from tests.pg18 import pg18_url  # noqa: F401 - a fixture

pytestmark = pytest.mark.anyio

DIM = 32
MODES: tuple[SearchMode, ...] = ("hybrid", "dense", "keyword")
Vector = npt.NDArray[np.float32]

SENTENCES = [
    "The cat sat quietly on the warm kitchen windowsill all afternoon.",
    "Interest rates rose again as the central bank fought inflation.",
    "Our hiking trail climbs through pine forest to a glacier lake.",
    "Preheat the oven, then knead the dough until it is smooth and elastic.",
    "The football match ended in a draw after extra time.",
    "Solar panels convert sunlight into electricity for the whole house.",
    "The library opens at nine and closes at six on weekdays.",
    "A sudden thunderstorm flooded the streets of the old town.",
    "The orchestra rehearsed the symphony for the winter concert.",
    "Backups run every night and are kept for thirty days.",
]
RARE = "Quetzalcoatlus was a giant pterosaur with a wingspan like a small airplane."


def unit(vector: npt.NDArray[np.floating]) -> Vector:
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def random_vectors(count: int, seed: int = 7) -> Vector:
    rows = np.random.default_rng(seed).standard_normal((count, DIM))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def point(
    text: str, vector: Vector, *, collection: str = "c1", document: str | None = None
) -> IndexPoint:
    return IndexPoint(
        chunk_id=str(uuid.uuid4()),
        document_id=document or str(uuid.uuid4()),
        collection_id=collection,
        text=text,
        dense=vector,
    )


@dataclass
class Backend:
    name: str
    make: Callable[[], VectorIndex]  # a fresh handle on the same storage every call
    make_scratch: Callable[[], VectorIndex]  # may be faster, for tests that never reopen
    opened: list[VectorIndex] = field(default_factory=list)

    async def open(self, dimension: int = DIM, *, scratch: bool = False) -> VectorIndex:
        index = self.make_scratch() if scratch else self.make()
        self.opened.append(index)
        await index.open(dimension)
        return index


@pytest.fixture(params=["edge", "qdrant", "pgvector"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    name = request.param
    scratch: Callable[[], VectorIndex] | None = None
    if name == "edge":
        # Tiny thresholds so a couple of thousand points really get an HNSW graph.
        hnsw = qe.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=10)
        optimizers = qe.EdgeOptimizersConfig(indexing_threshold=100)
        make: Callable[[], VectorIndex] = lambda: EdgeIndex(  # noqa: E731
            tmp_path / "edge", hnsw=hnsw, optimizers=optimizers
        )
    elif name == "qdrant":
        # A folder persists (reopen tests) but writes each point to SQLite: slow.
        make = lambda: QdrantServerIndex(str(tmp_path / "qdrant"))  # noqa: E731
        scratch = lambda: QdrantServerIndex(":memory:")  # noqa: E731
    else:
        url = request.getfixturevalue("pg18_url")
        table = f"vectors_{uuid.uuid4().hex[:12]}"
        make = lambda: PgVectorIndex(url, table=table)  # noqa: E731
    handle = Backend(name, make, scratch or make)
    yield handle
    for index in handle.opened:
        await index.close()


@pytest.fixture
async def index(backend: Backend) -> VectorIndex:
    return await backend.open(scratch=True)


def ids(hits: Sequence[SearchHit]) -> list[str]:
    return [hit.chunk_id for hit in hits]


async def test_dense_ranking_follows_cosine_similarity(index: VectorIndex) -> None:
    vectors = random_vectors(len(SENTENCES))
    points = [point(text, vectors[i]) for i, text in enumerate(SENTENCES)]
    await index.upsert(points)
    query = unit(vectors[3] + 0.3 * random_vectors(1, seed=99)[0])

    hits = await index.search(dense=query, text="", collection_ids=["c1"], limit=5, mode="dense")

    similarity = vectors @ query
    expected = [points[i].chunk_id for i in np.argsort(-similarity)[:5]]
    assert ids(hits) == expected
    assert hits[0].chunk_id == points[3].chunk_id
    assert hits[0].document_id == points[3].document_id
    assert hits[0].collection_id == "c1"
    assert hits[0].score == pytest.approx(float(similarity[3]), abs=1e-3)


async def test_keyword_finds_a_rare_term_that_dense_misses(index: VectorIndex) -> None:
    vectors = random_vectors(len(SENTENCES))
    points = [point(text, vectors[i]) for i, text in enumerate(SENTENCES)]
    query = vectors[0]
    rare = point(RARE, unit(-query))  # as far from the query vector as it gets
    await index.upsert([*points, rare])
    text = "How big was Quetzalcoatlus?"

    dense = await index.search(dense=query, text=text, collection_ids=["c1"], limit=3, mode="dense")
    keyword = await index.search(
        dense=query, text=text, collection_ids=["c1"], limit=3, mode="keyword"
    )

    assert rare.chunk_id not in ids(dense)
    assert ids(keyword) == [rare.chunk_id]
    assert keyword[0].score > 0


async def test_hybrid_fuses_dense_and_keyword_hits(index: VectorIndex) -> None:
    vectors = random_vectors(len(SENTENCES))
    points = [point(text, vectors[i]) for i, text in enumerate(SENTENCES)]
    rare = point(RARE, unit(-vectors[4]))
    await index.upsert([*points, rare])

    index.fusion, index.keyword_weight = "minmax", 0.5  # an equal share for both sides
    hits = await index.search(
        dense=vectors[4], text="quetzalcoatlus", collection_ids=["c1"], limit=5
    )

    # The dense winner and the keyword-only hit both lead the fused list.
    assert set(ids(hits)[:2]) == {points[4].chunk_id, rare.chunk_id}
    # A small keyword share only breaks ties: the dense order stands.
    index.keyword_weight = 0.05
    dense_only = await index.search(
        dense=vectors[4], text="quetzalcoatlus", collection_ids=["c1"], limit=5, mode="dense"
    )
    hits = await index.search(
        dense=vectors[4], text="quetzalcoatlus", collection_ids=["c1"], limit=5
    )
    assert ids(hits) == ids(dense_only)
    assert len(hits) == 5
    assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
    # Without a dense vector, hybrid is the keyword side alone.
    only_text = await index.search(
        dense=None, text="Quetzalcoatlus", collection_ids=["c1"], limit=5
    )
    assert ids(only_text) == [rare.chunk_id]


async def test_hybrid_while_embedding_runs_the_keyword_side_first_and_fuses_alike(
    index: VectorIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    vectors = random_vectors(len(SENTENCES))
    points = [point(text, vectors[i]) for i, text in enumerate(SENTENCES)]
    rare = point(RARE, unit(-vectors[4]))
    await index.upsert([*points, rare])
    index.fusion, index.keyword_weight = "minmax", 0.5
    text = "quetzalcoatlus backups"
    expected = await index.search(dense=vectors[4], text=text, collection_ids=["c1"], limit=5)

    searched: list[str] = []
    search = index.search

    async def logged(**kwargs: object) -> list[SearchHit]:
        searched.append(str(kwargs["mode"]))
        return await search(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(index, "search", logged)
    seen_while_embedding: list[str] = []

    async def embedding() -> Vector:
        await asyncio.sleep(0.05)  # the query's forward pass, in its thread
        seen_while_embedding.extend(searched)
        return vectors[4]

    hits, vector = await index.hybrid_while_embedding(embedding(), text, ["c1"], limit=5)

    assert seen_while_embedding == ["keyword"]
    assert searched == ["keyword", "dense"]
    np.testing.assert_array_equal(vector, vectors[4])
    assert ids(hits) == ids(expected)
    assert [h.score for h in hits] == pytest.approx([h.score for h in expected])
    assert [h.similarity for h in hits] == pytest.approx([h.similarity for h in expected])


async def test_hybrid_while_embedding_fails_with_the_embedding(index: VectorIndex) -> None:
    await index.upsert(
        [point(text, v) for text, v in zip(SENTENCES, random_vectors(10), strict=True)]
    )

    async def failing() -> Vector:
        await asyncio.sleep(0.01)
        raise RuntimeError("the embedder broke")

    with pytest.raises(RuntimeError, match="the embedder broke"):
        await index.hybrid_while_embedding(failing(), "backups", ["c1"], limit=5)
    # The index still answers: the abandoned keyword search left nothing behind.
    hits = await index.search(dense=None, text="backups", collection_ids=["c1"], limit=5)
    assert len(hits) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_collection_filter_is_part_of_the_query(index: VectorIndex, mode: SearchMode) -> None:
    query = random_vectors(1, seed=3)[0]
    noise = random_vectors(60, seed=4)
    # Near-perfect matches, dense and keyword, in collections the caller may not see.
    decoys = [
        point(
            f"glacier lake trail {i} glacier lake",
            unit(query + 0.05 * noise[i]),
            collection=f"x{i % 3}",
        )
        for i in range(50)
    ]
    allowed = [
        point(f"a glacier seen from afar, note {i}", noise[50 + i], collection="mine")
        for i in range(3)
    ]
    second = [point("glacier walk", noise[55], collection="second")]
    await index.upsert([*decoys, *allowed, *second])

    # A filter applied after a 5-deep search would find nothing of ours.
    hits = await index.search(
        dense=query, text="glacier lake", collection_ids=["mine"], limit=10, candidates=5, mode=mode
    )
    assert sorted(ids(hits)) == sorted(p.chunk_id for p in allowed)
    assert {hit.collection_id for hit in hits} == {"mine"}

    both = await index.search(
        dense=query, text="glacier", collection_ids=["mine", "second"], limit=10, mode=mode
    )
    assert sorted(ids(both)) == sorted(p.chunk_id for p in [*allowed, *second])


@pytest.mark.parametrize("mode", MODES)
async def test_no_collections_find_nothing(index: VectorIndex, mode: SearchMode) -> None:
    vectors = random_vectors(3)
    await index.upsert([point(SENTENCES[i], vectors[i]) for i in range(3)])

    assert (
        await index.search(dense=vectors[0], text="cat", collection_ids=[], limit=5, mode=mode)
        == []
    )


async def test_stopwords_only_text_finds_nothing_by_keyword(index: VectorIndex) -> None:
    vectors = random_vectors(3)
    await index.upsert([point(SENTENCES[i], vectors[i]) for i in range(3)])

    for mode in ("keyword", "hybrid"):
        found = await index.search(
            dense=None, text="the and of it", collection_ids=["c1"], limit=5, mode=mode
        )
        assert found == []


async def test_delete_documents_removes_both_sides(index: VectorIndex) -> None:
    vectors = random_vectors(4)
    gone = [point(RARE, vectors[i], document="doc-gone") for i in range(2)]
    kept = [
        point(
            "Quetzalcoatlus fossils are displayed in the museum.", vectors[2], document="doc-kept"
        )
    ]
    other = [point(SENTENCES[0], vectors[3], document="doc-other")]
    await index.upsert([*gone, *kept, *other])
    assert await index.count() == 4

    await index.delete_documents(["doc-gone", "never-indexed"])

    assert await index.count() == 2
    keyword = await index.search(
        dense=None, text="quetzalcoatlus wingspan", collection_ids=["c1"], limit=10, mode="keyword"
    )
    assert ids(keyword) == [kept[0].chunk_id]
    dense = await index.search(
        dense=vectors[0], text="", collection_ids=["c1"], limit=10, mode="dense"
    )
    assert sorted(ids(dense)) == sorted([kept[0].chunk_id, other[0].chunk_id])
    await index.delete_documents([])
    assert await index.count() == 2


async def test_upsert_of_the_same_chunk_replaces_it(index: VectorIndex) -> None:
    vectors = random_vectors(2)
    first = point("Sourdough starter needs daily feeding with flour.", vectors[0])
    await index.upsert([first])
    again = IndexPoint(
        chunk_id=first.chunk_id,
        document_id="doc-2",
        collection_id="c2",
        text="Telescope mirrors are ground to a precise parabola.",
        dense=vectors[1],
    )
    await index.upsert([again])

    assert await index.count() == 1
    assert (
        await index.search(dense=None, text="sourdough", collection_ids=["c1", "c2"], limit=5) == []
    )
    hits = await index.search(dense=vectors[1], text="telescope", collection_ids=["c2"], limit=5)
    assert ids(hits) == [first.chunk_id]
    assert (hits[0].document_id, hits[0].collection_id) == ("doc-2", "c2")
    dense = await index.search(
        dense=vectors[1], text="", collection_ids=["c2"], limit=5, mode="dense"
    )
    assert dense[0].score == pytest.approx(1.0, abs=1e-3)


async def test_count_and_empty_upsert(index: VectorIndex) -> None:
    assert await index.count() == 0
    await index.upsert([])
    vectors = random_vectors(7)
    await index.upsert([point(SENTENCES[i], vectors[i], collection=f"c{i % 2}") for i in range(7)])
    assert await index.count() == 7


async def test_data_survives_reopening(backend: Backend) -> None:
    index = await backend.open()
    vectors = random_vectors(5)
    points = [point(SENTENCES[i], vectors[i]) for i in range(4)] + [point(RARE, vectors[4])]
    await index.upsert(points)
    await index.close()

    reopened = await backend.open()

    assert await reopened.count() == 5
    hits = await reopened.search(dense=vectors[2], text="pterosaur", collection_ids=["c1"], limit=2)
    assert set(ids(hits)) == {points[2].chunk_id, points[4].chunk_id}


async def test_another_dimension_is_refused(backend: Backend) -> None:
    index = await backend.open()
    await index.upsert([point(SENTENCES[0], random_vectors(1)[0])])
    await index.close()

    with pytest.raises(IndexError_, match=rf"{DIM}-dimension"):
        await backend.open(DIM // 2)


async def test_filtered_search_over_thousands_of_points_fills_the_limit(index: VectorIndex) -> None:
    vectors = random_vectors(2_400, seed=11)
    words = ["river", "mountain", "harbor", "meadow", "canyon", "valley"]
    points = [
        point(
            f"{words[i % 6]} report {i} about the {words[(i // 6) % 6]}",
            vectors[i],
            collection="mine" if i % 24 == 0 else f"other{i % 7}",
        )
        for i in range(len(vectors))
    ]
    for start in range(0, len(points), 500):
        await index.upsert(points[start : start + 500])
    if isinstance(index, EdgeIndex):
        await index.optimize()
    mine = [i for i, p in enumerate(points) if p.collection_id == "mine"]
    query = unit(vectors[mine[0]] + random_vectors(1, seed=12)[0])

    for mode in MODES:
        hits = await index.search(
            dense=query, text="river meadow", collection_ids=["mine"], limit=20, mode=mode
        )
        assert len(hits) == 20, mode
        assert {hit.collection_id for hit in hits} == {"mine"}

    hits = await index.search(dense=query, text="", collection_ids=["mine"], limit=20, mode="dense")
    exact = {
        points[i].chunk_id for i in sorted(mine, key=lambda i: -float(vectors[i] @ query))[:20]
    }
    assert len(exact & set(ids(hits))) >= 18  # approximate search, but not far off


async def test_edge_optimize_builds_the_graph(tmp_path: Path) -> None:
    index = EdgeIndex(
        tmp_path / "edge",
        auto_optimize=False,
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=10),
    )
    await index.open(DIM)
    vectors = random_vectors(500)
    await index.upsert([point(f"note {i}", vectors[i]) for i in range(500)])

    assert await index.optimize() is True
    assert await index.optimize() is False  # nothing left to do
    hits = await index.search(
        dense=vectors[9], text="", collection_ids=["c1"], limit=1, mode="dense"
    )
    assert hits[0].score == pytest.approx(1.0, abs=1e-3)
    await index.close()
    await index.close()
    with pytest.raises(IndexError_, match="not open"):
        await index.count()


async def until_optimized(index: EdgeIndex) -> None:
    for _ in range(600):
        if not index.optimization_pending:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the background optimization never finished")


async def test_edge_optimizes_by_itself_once_writes_pause(tmp_path: Path) -> None:
    def make(delay: float) -> EdgeIndex:
        small = qe.EdgeOptimizersConfig(indexing_threshold=10)
        return EdgeIndex(tmp_path / "edge", optimize_delay=delay, optimizers=small)

    index = make(0.05)
    await index.open(DIM)
    await until_optimized(index)
    vectors = random_vectors(600)
    await index.upsert([point(f"note {i}", vectors[i]) for i in range(300)])
    assert index.optimization_pending
    await until_optimized(index)
    assert await index.optimize() is False  # the background run did it

    # Closed before its delay ran out: the next open catches up.
    index.optimize_delay = 3600
    await index.upsert([point(f"note {i}", vectors[i]) for i in range(300, 600)])
    await index.close()
    assert not index.optimization_pending
    reopened = make(3600)
    await reopened.open(DIM)
    await until_optimized(reopened)
    assert await reopened.optimize() is False
    assert await reopened.count() == 600
    await reopened.close()


def test_sparse_vectors_are_stable_bm25_weights() -> None:
    assert sparse.tokenize("The runners were running, and RUNS!") == ["runner", "run", "run"]
    assert (
        sparse.token_id("run") == sparse.token_id("run") == 1_518_968_264
    )  # blake2b, the same in every process
    doc = sparse.document_vector("running run runs jump")
    weights = dict(zip(doc.indices, doc.values, strict=True))
    assert weights[sparse.token_id("run")] > weights[sparse.token_id("jump")]
    assert max(doc.values) < sparse.K1 + 1  # saturates
    query = sparse.query_vector("jumps, jumping and running")
    assert query.values == [1.0, 1.0]
    assert sorted(query.indices) == query.indices
    assert sparse.query_vector("the of and").indices == []


def test_factory_picks_the_configured_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def settings(**values: object) -> Settings:
        return Settings(_env_file=None, data_dir=tmp_path, **values)  # type: ignore[call-arg]

    edge = build_index(settings())
    assert isinstance(edge, EdgeIndex)
    assert edge.path.is_relative_to(tmp_path / "index")
    qdrant = build_index(settings(vector_backend="qdrant", qdrant_url=":memory:"))
    assert isinstance(qdrant, QdrantServerIndex)
    pg = build_index(
        settings(vector_backend="pgvector", database_url="postgresql+asyncpg://u:p@db:5432/onebox")
    )
    assert isinstance(pg, PgVectorIndex)
    assert pg.dsn == "postgresql://u:p@db:5432/onebox"
    assert postgres_dsn("postgres://h/d") == "postgresql://h/d"
    with pytest.raises(IndexError_, match="PostgreSQL URL"):
        build_index(settings(vector_backend="pgvector"))  # the SQLite default

    monkeypatch.setitem(sys.modules, "onebox.vectors.edge", None)
    with pytest.raises(IndexError_, match="qdrant-edge-py"):
        build_index(settings())


async def test_edge_index_refuses_a_second_process_clearly(tmp_path: Path) -> None:
    first = EdgeIndex(tmp_path / "shard")
    await first.open(8)
    try:
        with pytest.raises(IndexError_, match="in use by another process"):
            await EdgeIndex(tmp_path / "shard").open(8)
    finally:
        await first.close()
