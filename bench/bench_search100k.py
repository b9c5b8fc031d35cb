"""``POST /api/search`` through HTTP at 100k passages, beside the in-process retrieval.

Issue #14: the goal is p95 ≤ 20 ms for a search over 100k passages, query embedding
included. ``bench retrieval`` times ``EdgeIndex.search`` alone; this one times the whole
route on a real ``onebox serve`` process (uvicorn, auth, collection check, embedding, the
Qdrant Edge search, the SQL hydration of the chunks, the rerank, the guard, JSON), and
the ``Retriever.retrieve`` the route calls, in this process, on the same data and queries.

The data directory is built directly, not through ingestion (embedding 100k passages takes
hours on a small CPU): one collection of 100k passages in 5,000 documents, rows written
into the documents/chunks tables with the app's models and points through the app's
``VectorIndex.upsert`` (the default embedded Qdrant Edge index; BM25 vectors computed from
the texts by the production code), then ``optimize()`` once. Passage texts are windows of
real documentation (the quality set's documents) with two sentences of elsewhere appended;
their vectors are the MiniLM embeddings of the windows (a few thousand, embedded once),
perturbed and renormalised per passage, so the index has the cluster structure of real
embeddings. Each chunk's ``sentences`` column is filled as ingestion's background job fills
it (``stored_texts``, ``pack``), with the passage's vector perturbed per text, so the rerank,
when on, reads and scores its sentence vectors as it would in production.

Queries: the 85 questions of ``bench/quality_set.py`` and a reworded copy of each, all
distinct (the embedder has no query cache anyway). Each query is sent once per mode (hybrid,
dense), modes interleaved so noise hits them alike and the first mode alternating (the first
search of a query meets its passages cold), sequentially on one keep-alive
connection; then the server stops and the same queries go through ``Retriever.retrieve``
here, with the query embedding alone and ``VectorIndex.search`` alone (given the embedded
vector) timed too, so the rest (SQL hydration, neighbours, guard, HTTP) is the difference.
``--quick``: 10k passages.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import insert

from bench.gateway_servers import _env, free_port
from bench.quality_set import QUESTIONS, documents
from bench.table import print_table
from onebox.cli_common import open_database, resolve_owner
from onebox.core.db import utcnow
from onebox.core.settings import Settings
from onebox.documents.models import Chunk, Collection, Document, DocumentStatus
from onebox.documents.search.retrieval import Retriever
from onebox.documents.search.sentence_vectors import pack, stored_texts
from onebox.embeddings.factory import build_embedder
from onebox.guard.service import Guard
from onebox.testing.ready import stop_server, wait_until_ready
from onebox.vectors.base import IndexPoint
from onebox.vectors.factory import build_index

PASSAGES = 100_000
QUICK_PASSAGES = 10_000
CHUNKS_PER_DOCUMENT = 20
WINDOW_SENTENCES = 5
BASE_TEXTS = 2_000  # real windows embedded once
NOISE = 0.25  # norm of the perturbation added to a window's vector
BATCH = 2_000
MODES = ("hybrid", "dense")
TARGET_P95_MS = 20
COLLECTION = "search-bench"


def _sentences() -> list[str]:
    out: list[str] = []
    for _, data in documents():
        text = " ".join(data.decode("utf-8", errors="replace").split())
        out.extend(s for s in re.split(r"(?<=[.!?])\s+", text) if 30 <= len(s) <= 400)
    return out


def _windows(sentences: list[str], count: int) -> list[str]:
    step = max(1, (len(sentences) - WINDOW_SENTENCES) // count)
    starts = range(0, len(sentences) - WINDOW_SENTENCES, step)
    return [" ".join(sentences[s : s + WINDOW_SENTENCES]) for s in starts][:count]


def queries() -> list[str]:
    texts = [q.text for q in QUESTIONS]
    reworded = [f"Can you tell me: {t[0].lower()}{t[1:]}" for t in texts]
    return texts + reworded


async def _build(settings: Settings, size: int) -> dict[str, Any]:
    """The data directory: the tables and the index the search route reads."""
    rng = np.random.default_rng(size)
    sentences = _sentences()
    windows = _windows(sentences, BASE_TEXTS if size > QUICK_PASSAGES else 500)
    embedder = build_embedder(settings, None)  # type: ignore[arg-type]  # local: no HTTP
    await embedder.start()
    started = time.perf_counter()
    try:
        base = np.asarray(await embedder.embed(windows), dtype=np.float32)
        embedded = time.perf_counter()
        packer = _SentencePacker(embedder.name, rng)
        screen = Guard(settings).clean_mark  # as ingestion marks the passages it screened
        async with open_database(settings) as sessionmaker:
            owner = await resolve_owner(sessionmaker, None)
            collection_id = str(uuid.uuid4())
            index = build_index(settings)
            await index.open(base.shape[1])
            try:
                async with sessionmaker() as session:
                    session.add(Collection(id=collection_id, owner_id=owner, name=COLLECTION))
                    await session.flush()
                    for start in range(0, size, BATCH):
                        await _batch(session, index, rng, sentences, windows, base, owner,
                                     collection_id, start, min(BATCH, size - start),
                                     packer, screen)  # fmt: skip
                    await session.commit()
                loaded = time.perf_counter()
                optimize = getattr(index, "optimize", None)
                if optimize is not None:
                    await optimize()
                count = await index.count()
            finally:
                await index.close()
    finally:
        await embedder.close()
    if count != size:
        raise RuntimeError(f"wrote {size} points, the index counts {count}")
    return {
        "collection_id": collection_id, "base_texts": len(windows),
        "embed_base_seconds": embedded - started, "load_seconds": loaded - embedded,
        "optimize_seconds": time.perf_counter() - loaded,
        "sentence_texts_stored": packer.texts,
    }  # fmt: skip


class _SentencePacker:
    """``chunks.sentences`` as ingestion's background job stores it (``stored_texts``,
    ``pack``). The vectors are the passage's own, perturbed per text like the passages'
    (embedding 78k distinct sentence texts took 17 minutes here): this benchmark times the
    search, and the rerank's cost does not depend on the values."""

    def __init__(self, name: str, rng: np.random.Generator) -> None:
        self.name = name
        self.rng = rng
        self.texts = 0

    def pack(self, texts: list[list[str]], vectors: Any) -> list[bytes]:
        out = []
        for group, vector in zip(texts, vectors, strict=True):
            noise = self.rng.standard_normal((len(group), len(vector)), dtype=np.float32)
            rows = vector + noise * (2 * NOISE / np.sqrt(len(vector)))
            rows /= np.linalg.norm(rows, axis=1, keepdims=True)
            out.append(pack(self.name, group, rows))
            self.texts += len(group)
        return out


async def _batch(session: Any, index: Any, rng: np.random.Generator, sentences: list[str],
                 windows: list[str], base: Any, owner: str, collection_id: str, start: int,
                 rows: int, packer: _SentencePacker,
                 screen: Callable[[str], str | None]) -> None:  # fmt: skip
    now = utcnow()
    picks = rng.integers(0, len(windows), rows)
    noise = rng.standard_normal((rows, base.shape[1]), dtype=np.float32)
    noise *= NOISE / np.linalg.norm(noise, axis=1, keepdims=True)
    vectors = base[picks] + noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    extra = rng.integers(0, len(sentences), (rows, 2))
    documents_rows, chunk_rows, points = [], [], []
    for row in range(rows):
        number = start + row
        document_id = str(uuid.UUID(int=number // CHUNKS_PER_DOCUMENT + 1))
        ordinal = number % CHUNKS_PER_DOCUMENT
        if ordinal == 0:
            documents_rows.append({
                "id": document_id, "collection_id": collection_id, "owner_id": owner,
                "filename": _filename({"document_id": document_id}),
                "source": "upload", "media_type": "text/markdown", "size_bytes": 20_000,
                "content_hash": hashlib.sha256(document_id.encode()).hexdigest(),
                "status": DocumentStatus.READY, "chunk_count": CHUNKS_PER_DOCUMENT,
                "created_at": now, "updated_at": now,
            })  # fmt: skip
        text = " ".join([windows[picks[row]], *(sentences[i] for i in extra[row])])
        chunk_id = str(uuid.UUID(int=(1 << 64) + number))
        chunk_rows.append({
            "id": chunk_id, "document_id": document_id, "collection_id": collection_id,
            "ordinal": ordinal, "text": text, "heading_path": [],
            "start_offset": ordinal * 900, "end_offset": ordinal * 900 + len(text),
            "created_at": now, "screened": screen(text),
        })  # fmt: skip
        points.append(IndexPoint(chunk_id, document_id, collection_id, text, vectors[row]))
    packed = packer.pack([stored_texts(c["text"], "", _filename(c)) for c in chunk_rows], vectors)
    for chunk, blob in zip(chunk_rows, packed, strict=True):
        chunk["sentences"] = blob
    if documents_rows:
        await session.execute(insert(Document), documents_rows)
    await session.execute(insert(Chunk), chunk_rows)
    await index.upsert(points)


def _filename(chunk: dict[str, Any]) -> str:
    return f"synthetic-{uuid.UUID(chunk['document_id']).int - 1:05d}.md"


@contextlib.contextmanager
def _server(data_dir: Path, rerank: bool, runtime: str) -> Iterator[int]:
    port = free_port()
    env = _env(
        ONEBOX_LLM_PROVIDER="fake", ONEBOX_RERANK=str(rerank).lower(),
        ONEBOX_EMBEDDING_RUNTIME=runtime,
    )  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "onebox", "serve", "--port", str(port), "--data-dir",
         str(data_dir)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        if not wait_until_ready(url, timeout=300, alive=lambda: process.poll() is None):
            raise RuntimeError(process.stderr.read().decode() if process.stderr else "")
        yield port
    finally:
        stop_server(process)


def _in_turn(modes: Sequence[str], number: int) -> list[str]:
    """The modes in turn first: the first search of a query meets its passages cold (the
    injection screen's cache, SQLite's pages), the next one warm; always the same mode
    first would charge every cold start to it."""
    return list(modes) if number % 2 == 0 else list(reversed(modes))


def _http(port: int, collection_id: str, texts: list[str]) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {mode: [] for mode in MODES}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"}
    try:
        for number, text in enumerate(texts):
            for mode in _in_turn(MODES, number):
                body = json.dumps({"query": text, "collection_ids": [collection_id],
                                   "limit": 5, "mode": mode})  # fmt: skip
                started = time.perf_counter()
                connection.request("POST", "/api/search", body, headers)
                response = connection.getresponse()
                payload = response.read()
                samples[mode].append(time.perf_counter() - started)
                if response.status != 200 or not json.loads(payload)["sources"]:
                    raise RuntimeError(f"{mode} search: {response.status} {payload[:300]!r}")
    finally:
        connection.close()
    return samples


async def _in_process(
    settings: Settings, collection_id: str, texts: list[str], warmup: list[str]
) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {
        "embed": [], "embed_torch": [], **{mode: [] for mode in MODES},
        **{f"index_{m}": [] for m in MODES},
    }  # fmt: skip
    embedder = build_embedder(settings, None)  # type: ignore[arg-type]  # local: no HTTP
    await embedder.start()
    # The same-run baseline for the query embedding: torch on the quick lane, as before
    # ONNX Runtime took it (ONEBOX_EMBEDDING_RUNTIME=torch).
    torch_settings = settings.model_copy(update={"embedding_runtime": "torch"})
    on_torch = build_embedder(torch_settings, None)  # type: ignore[arg-type]
    await on_torch.start()
    index = build_index(settings)
    await index.open(embedder.dimension)
    retriever = Retriever(settings, embedder, index, Guard(settings))
    candidates = max(5, settings.retrieval_candidates)
    try:
        async with open_database(settings) as sessionmaker:
            for number, text in enumerate(warmup + texts):
                timed = number >= len(warmup)
                started = time.perf_counter()
                vector = (await embedder.embed([text], kind="query"))[0]
                if timed:
                    samples["embed"].append(time.perf_counter() - started)
                started = time.perf_counter()
                await on_torch.embed([text], kind="query")
                if timed:
                    samples["embed_torch"].append(time.perf_counter() - started)
                for mode in _in_turn(MODES, number):  # the index search alone, as the route asks it
                    started = time.perf_counter()
                    await index.search(dense=vector, text=text, collection_ids=[collection_id],
                                       limit=5, candidates=candidates, mode=mode)  # type: ignore[arg-type]  # fmt: skip
                    if timed:
                        samples[f"index_{mode}"].append(time.perf_counter() - started)
                for mode in _in_turn(MODES, number):
                    async with sessionmaker() as session:
                        started = time.perf_counter()
                        found = await retriever.retrieve(session, text, [collection_id],
                                                         limit=5, mode=mode,  # type: ignore[arg-type]
                                                         with_context=False)  # as the route  # fmt: skip
                        if timed:
                            samples[mode].append(time.perf_counter() - started)
                    if not found.sources:
                        raise RuntimeError(f"{mode} retrieval found nothing for {text!r}")
    finally:
        await index.close()
        await embedder.close()
        await on_torch.close()
    return samples


def _percentiles(values: list[float]) -> dict[str, float]:
    ms = np.array(values) * 1000.0
    return {f"p{q}": float(np.percentile(ms, q)) for q in (50, 95, 99)} | {"n": len(values)}


def run(quick: bool) -> dict[str, Any]:
    size = QUICK_PASSAGES if quick else PASSAGES
    load_before = os.getloadavg()[0]
    directory = Path(tempfile.mkdtemp(prefix="onebox-bench-search-"))
    # ONEBOX_BENCH_RERANK=0/1 measures the search without or with the rerank; unset, the
    # product's default.
    chosen = os.environ.get("ONEBOX_BENCH_RERANK")
    overrides: dict[str, Any] = {}
    if chosen is not None:
        overrides["rerank"] = chosen.lower() in ("1", "true", "yes")
    # ONEBOX_BENCH_EMBEDDING_RUNTIME=torch: the search as before ONNX Runtime took the
    # query embedding; unset, the product's default.
    if runtime := os.environ.get("ONEBOX_BENCH_EMBEDDING_RUNTIME"):
        overrides["embedding_runtime"] = runtime
    settings = Settings(_env_file=None, data_dir=directory / "data", **overrides)  # type: ignore[arg-type]
    texts = queries()
    warmup = [f"What does Onebox do with {w}?" for w in ("pdf", "html", "tokens", "keys")] * 3
    try:
        build = asyncio.run(_build(settings, size))
        print(f"  {size} passages: embed {build['base_texts']} windows "
              f"{build['embed_base_seconds']:.0f} s, load {build['load_seconds']:.0f} s, "
              f"optimize {build['optimize_seconds']:.0f} s", flush=True)  # fmt: skip
        with _server(settings.data_dir, settings.rerank, settings.embedding_runtime) as port:
            _http(port, build["collection_id"], warmup)
            http_samples = _http(port, build["collection_id"], texts)
        local = asyncio.run(_in_process(settings, build["collection_id"], texts, warmup))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    latency = {
        "embed_query": _percentiles(local["embed"]),
        "embed_query_torch": _percentiles(local["embed_torch"]),
        **{f"http_{mode}": _percentiles(http_samples[mode]) for mode in MODES},
        **{f"in_process_{mode}": _percentiles(local[mode]) for mode in MODES},
        **{f"index_search_{mode}": _percentiles(local[f"index_{mode}"]) for mode in MODES},
    }
    rows = [
        [name.replace("_", " "), f["n"], f["p50"], f["p95"], f["p99"],
         f"<= {TARGET_P95_MS}" if name.startswith("http") else ""]
        for name, f in latency.items()
    ]  # fmt: skip
    print(
        f"ms, {size} passages in one collection, limit 5, sequential requests, "
        f"rerank {'on' if settings.rerank else 'off'}:"
    )
    print_table(["path", "n", "p50", "p95", "p99", "goal p95"], rows)
    return {
        "passages": size, "documents": size // CHUNKS_PER_DOCUMENT, "queries": len(texts),
        "rerank": settings.rerank, "rerank_candidates": settings.rerank_candidates,
        "embedding_runtime": settings.embedding_runtime,
        "modes": list(MODES), "build": build, "latency_ms": latency,
        "target_http_p95_ms": TARGET_P95_MS,
        "meets_target": {m: latency[f"http_{m}"]["p95"] <= TARGET_P95_MS for m in MODES},
        "loadavg_before_after": [load_before, os.getloadavg()[0]],
    }  # fmt: skip
