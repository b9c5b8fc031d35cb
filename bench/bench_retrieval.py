"""Retrieval latency on the Qdrant Edge backend at 10k and 100k chunks, and 1M on request.

One retrieval = embed the query with the local MiniLM model + hybrid search (dense and BM25
prefetches, RRF) restricted to 3 of 50 collections, through ``EdgeIndex.search`` exactly as
the chat path calls it. Queries are the 85 questions of ``bench/quality_set.py``, embedded
for real on every retrieval.

Stored points are synthetic (embedding 1M real chunks takes hours on a small CPU): random
384-dimension unit vectors, and BM25 vectors of 150-token texts drawn from the unigram
distribution of real documentation (the stemmed words of the quality set's documents, so the
questions' terms have realistic document frequencies). The BM25 vectors are computed from the
drawn token ids with the production formula (``onebox.vectors.sparse``) instead of by
tokenising and stemming a text (0.7 ms a text in Python: 12 minutes for 1M). Each size is
bulk-loaded into a fresh index in batches of 4,096 points with automatic optimisation off,
then ``optimize()`` builds HNSW once; both times are reported. Random vectors are the hard
case for HNSW (no cluster structure): real embeddings search at least as fast.

Columns, p50/p95 ms over the same queries, interleaved so that noise hits them alike:
embedding alone; the retrieval (embed + hybrid + filter: the target, p95 ≤ 20 ms at 100k and
≤ 50 ms at 1M); the searches alone: hybrid filtered, dense-only filtered (the baseline of the
ratio hybrid/dense), keyword-only filtered, and hybrid over all 50 collections. Each figure
is the best of a few rounds of 150 retrievals (noise on a shared machine only adds).

1M points are left out of the default run: on 2 cores the one-off HNSW build takes 13 min
(781 s measured on a quiet machine, 29 min on a busy one; 100k takes 44 s) after 81 s of
loading, and the process peaks at 16 GB of RSS. Ask for it with
``ONEBOX_BENCH_RETRIEVAL_SIZES=10000,100000,1000000 python -m bench retrieval``.

The whole ``POST /api/search`` route over HTTP at 100k passages (a real ``onebox serve``,
SQL hydration, neighbours, guard), beside ``Retriever.retrieve`` in-process, is
``python -m bench search100k`` (``bench/bench_search100k.py``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import qdrant_edge as qe

from bench.quality_set import QUESTIONS, documents
from bench.table import print_table
from onebox.core.settings import Settings
from onebox.embeddings.base import Embedder
from onebox.embeddings.factory import build_embedder
from onebox.vectors import sparse
from onebox.vectors.edge import DENSE, SPARSE, EdgeIndex

DIMENSION = 384
COLLECTIONS = [f"collection-{n:02d}" for n in range(50)]
SELECTED = COLLECTIONS[7:10]  # the filter: 3 of 50, about 6% of the points
TOKENS_PER_TEXT = 150  # about a 1,000-character chunk once stopwords are gone
CHUNKS_PER_DOCUMENT = 20
LOAD_BATCH = 4096
SIZES = (10_000, 100_000)  # 1M on request: see the module docstring
QUERIES = 150  # per round, cycling through the questions
ROUNDS = 3


class Vocabulary:
    """Stemmed words of real documentation with their frequencies, ordered by token id so a
    sorted draw of word indices gives the sorted indices a sparse vector needs."""

    def __init__(self) -> None:
        counts: Counter[str] = Counter()
        for _, data in documents():
            counts.update(sparse.tokenize(data.decode("utf-8", errors="replace")))
        by_id = sorted(counts, key=sparse.token_id)
        self.ids = np.array([sparse.token_id(token) for token in by_id], dtype=np.int64)
        weights = np.array([counts[token] for token in by_id], dtype=np.float64)
        self.probabilities = weights / weights.sum()

    def draw(self, rng: np.random.Generator, rows: int) -> npt.NDArray[np.int64]:
        words = rng.choice(len(self.ids), size=(rows, TOKENS_PER_TEXT), p=self.probabilities)
        return np.sort(words, axis=1)


def _bm25(sorted_words: npt.NDArray[np.int64], vocabulary: Vocabulary) -> qe.SparseVector:
    """``sparse.document_vector`` of a text made of these tokens."""
    unique, counts = np.unique(sorted_words, return_counts=True)
    norm = sparse.K1 * (1.0 - sparse.B + sparse.B * len(sorted_words) / sparse.AVG_LEN)
    values = counts * (sparse.K1 + 1.0) / (counts + norm)
    return qe.SparseVector(vocabulary.ids[unique].tolist(), values.tolist())


def _load(index: EdgeIndex, size: int, vocabulary: Vocabulary, seed: int) -> None:
    """Writes ``size`` synthetic points straight into the index's shard (the upsert path
    would tokenise texts in Python first; see the module docstring)."""
    shard = index._require()
    rng = np.random.default_rng(seed)
    for start in range(0, size, LOAD_BATCH):
        rows = min(LOAD_BATCH, size - start)
        dense = rng.standard_normal((rows, DIMENSION), dtype=np.float32)
        dense /= np.linalg.norm(dense, axis=1, keepdims=True)
        words = vocabulary.draw(rng, rows)
        points = []
        for row, vector in enumerate(dense.tolist()):
            number = start + row
            document = number // CHUNKS_PER_DOCUMENT
            payload = {"document_id": f"document-{document}",
                       "collection_id": COLLECTIONS[document % len(COLLECTIONS)]}  # fmt: skip
            vectors = {DENSE: vector, SPARSE: _bm25(words[row], vocabulary)}
            points.append(qe.Point(str(uuid.UUID(int=number + 1)), vectors, payload))
        shard.update(qe.UpdateOperation.upsert_points(points))


def _disk_bytes(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())


def _percentiles(samples: list[float]) -> dict[str, float]:
    values = np.array(samples) * 1000.0
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95))}


async def _latencies(
    index: EdgeIndex, embedder: Embedder, queries: int, limit: int, candidates: int
) -> dict[str, dict[str, float]]:
    samples: dict[str, list[float]] = {
        name: []
        for name in ("embed", "retrieval", "hybrid", "dense", "keyword", "hybrid_all")
    }  # fmt: skip
    searches: list[tuple[str, Any, list[str]]] = [
        ("hybrid", "hybrid", SELECTED), ("dense", "dense", SELECTED),
        ("keyword", "keyword", SELECTED), ("hybrid_all", "hybrid", COLLECTIONS),
    ]  # fmt: skip
    for number in range(queries):
        text = QUESTIONS[number % len(QUESTIONS)].text
        started = time.perf_counter()
        vector = (await embedder.embed([text], kind="query"))[0]
        embedded = time.perf_counter()
        await index.search(dense=vector, text=text, collection_ids=SELECTED, limit=limit,
                           candidates=candidates, mode="hybrid")  # fmt: skip
        done = time.perf_counter()
        samples["embed"].append(embedded - started)
        samples["retrieval"].append(done - started)
        for name, mode, collections in searches:
            started = time.perf_counter()
            hits = await index.search(dense=vector, text=text, collection_ids=collections,
                                      limit=limit, candidates=candidates, mode=mode)  # fmt: skip
            samples[name].append(time.perf_counter() - started)
            if not hits and mode != "keyword":
                raise RuntimeError(f"{name} search found nothing at all")
    return {name: _percentiles(values) for name, values in samples.items()}


async def _size(size: int, embedder: Embedder, vocabulary: Vocabulary, quick: bool) -> Any:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    directory = Path(tempfile.mkdtemp(prefix="onebox-bench-retrieval-"))
    try:
        index = EdgeIndex(directory / "edge", auto_optimize=False)
        await index.open(DIMENSION)
        started = time.perf_counter()
        await asyncio.to_thread(_load, index, size, vocabulary, size)
        loaded = time.perf_counter()
        await index.optimize()
        optimized = time.perf_counter()
        count = await index.count()
        if count != size:
            raise RuntimeError(f"loaded {size} points, the index counts {count}")
        limit = settings.retrieval_top_k
        candidates = max(limit, settings.retrieval_candidates)
        await _latencies(index, embedder, 20, limit, candidates)  # warm up
        latency: dict[str, dict[str, float]] = {}
        for _ in range(2 if quick else ROUNDS):  # best round per figure: noise only adds
            measured = await _latencies(index, embedder, QUERIES, limit, candidates)
            for name, figures in measured.items():
                best = latency.setdefault(name, figures)
                for key, value in figures.items():
                    best[key] = min(best[key], value)
        await index.close()
        disk = await asyncio.to_thread(_disk_bytes, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return {
        "points": size, "load_seconds": loaded - started,
        "optimize_seconds": optimized - loaded, "disk_mb": disk / 1e6, "latency_ms": latency,
        "hybrid_over_dense_p95": latency["hybrid"]["p95"] / latency["dense"]["p95"],
    }  # fmt: skip


def _sizes(quick: bool) -> tuple[int, ...]:
    chosen = os.environ.get("ONEBOX_BENCH_RETRIEVAL_SIZES")
    if chosen:
        return tuple(int(size) for size in chosen.split(","))
    return (10_000,) if quick else SIZES


async def _measure(quick: bool) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    vocabulary = Vocabulary()
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    embedder = build_embedder(settings, None)  # type: ignore[arg-type]  # local: no HTTP
    await embedder.start()
    sizes: dict[str, Any] = {}
    try:
        for size in _sizes(quick):
            sizes[str(size)] = await _size(size, embedder, vocabulary, quick)
            print(f"  {size} points: load {sizes[str(size)]['load_seconds']:.0f} s, "
                  f"optimize {sizes[str(size)]['optimize_seconds']:.0f} s", flush=True)  # fmt: skip
    finally:
        await embedder.close()
    return {
        "collections": len(COLLECTIONS), "filter_collections": len(SELECTED),
        "vocabulary": len(vocabulary.ids), "tokens_per_text": TOKENS_PER_TEXT,
        "baseline": "dense-only search, same filter", "sizes": sizes,
        "targets_p95_ms": {"100000": 20, "1000000": 50},
        "loadavg_before_after": [load_before, os.getloadavg()[0]],
    }  # fmt: skip


def run(quick: bool) -> dict[str, Any]:
    results = asyncio.run(_measure(quick))
    rows = []
    for size, entry in results["sizes"].items():
        lat = entry["latency_ms"]
        target = results["targets_p95_ms"].get(size, "")
        rows.append([
            size, lat["embed"]["p50"], lat["embed"]["p95"], lat["retrieval"]["p50"],
            lat["retrieval"]["p95"], f"<= {target}" if target else "", lat["hybrid"]["p95"],
            lat["dense"]["p95"], entry["hybrid_over_dense_p95"], lat["keyword"]["p95"],
            lat["hybrid_all"]["p95"], entry["load_seconds"], entry["optimize_seconds"],
        ])  # fmt: skip
    print("ms; retrieval = embed + hybrid search filtered to 3 of 50 collections:")
    print_table(
        ["points", "embed p50", "embed p95", "retrieval p50", "retrieval p95", "target p95",
         "hybrid p95", "dense p95", "hybrid/dense", "keyword p95", "hybrid all-coll p95",
         "load s", "optimize s"],
        rows,
    )  # fmt: skip
    return results
