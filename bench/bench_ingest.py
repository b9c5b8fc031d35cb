"""Ingestion throughput: the production job path against the bare encoder, same chunk texts.

Corpus: the PostgreSQL 15 HTML manual's pages (``bench/quality_pg.py``; real web pages with
their navigation, as a site dump brings them), about 1 MB of HTML; with
``ONEBOX_BENCH_INGEST_CORPUS=debian`` (or without the manual), Debian's package documentation
on this machine (``/usr/share/doc/*/README*``, ``NEWS*``, ``changelog*``; ``.gz`` ones
decompressed, each file cut at 40,000 characters, identical files once). The raw encoder
embeds exactly what the jobs embedded: each passage with its title and heading path.

(a) the pipeline: a fresh Onebox state (SQLite, Qdrant Edge, the local MiniLM embedder, the
in-process job worker) gets the files through ``DocumentService.add_files``; the clock runs
from the commit's notification to the last job done (parse, chunk, embed, index, store the
chunk rows; the Edge index's HNSW build, which runs once writes pause, is background work
and not counted). (b) the raw encoder: ``SentenceTransformer.encode(batch_size=64)`` on exactly
the texts the pipeline embedded (read back from the database), with the same model object
and precision. Ratio = (a) chunks/s / (b) chunks/s; best of a few rounds, interleaved.

Then, to see where a gap goes, each stage alone on the same files: parse + chunk, the
embedder in per-document batches (``embedding_batch_size``; what the jobs did before queued
documents were claimed as a group and embedded in shared batches: on small pages that is
1 to 8 texts a call, and each call costs far more than its share), BM25 vectors, and the
index upserts (BM25 included, as the Edge backend computes them) with the vectors already
made.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench import quality_pg
from bench.table import print_table
from onebox.app import open_state
from onebox.core.db import utcnow
from onebox.core.settings import Settings
from onebox.documents.ingestion.chunking import ChunkDraft
from onebox.documents.ingestion.indexing import HEADING_JOINER, embedding_text, new_chunk_id
from onebox.documents.ingestion.parsing import ParseLimits, SourceFile
from onebox.documents.ingestion.preparing import prepare_document
from onebox.documents.ingestion.sentences import passage_calls
from onebox.documents.models import Chunk, Document
from onebox.documents.schemas import CollectionCreate
from onebox.documents.search.sentence_vectors import stored_texts
from onebox.documents.service import DocumentService
from onebox.embeddings.base import Embedder
from onebox.embeddings.factory import build_embedder
from onebox.jobs.models import JobStatus
from onebox.jobs.service import wait_for_jobs
from onebox.llm.fake import FakeProvider
from onebox.vectors import sparse
from onebox.vectors.base import IndexPoint
from onebox.vectors.edge import EdgeIndex

DOC_ROOT = Path("/usr/share/doc")
NAMES = ("README", "README.md", "README.Debian", "NEWS", "NEWS.gz", "NEWS.Debian.gz",
         "changelog.gz", "changelog.Debian.gz")  # fmt: skip
MAX_FILE_CHARS = 40_000


def corpus(chars: int) -> list[SourceFile]:
    """The PostgreSQL manual's HTML pages (the quality benchmark's second corpus) when
    installed, unless ONEBOX_BENCH_INGEST_CORPUS=debian; else Debian's documentation files."""
    if os.environ.get("ONEBOX_BENCH_INGEST_CORPUS", "postgres") == "postgres":
        with contextlib.suppress(FileNotFoundError):
            return html_corpus(chars)
    return debian_corpus(chars)


def html_corpus(chars: int) -> list[SourceFile]:
    """Pages of the PostgreSQL HTML manual, in name order until about ``chars`` bytes."""
    files: list[SourceFile] = []
    total = 0
    for name, data in quality_pg.pages():
        files.append(SourceFile(name, data))
        total += len(data)
        if total >= chars:
            break
    return files


def debian_corpus(chars: int) -> list[SourceFile]:
    """Documentation files in path order until about ``chars`` characters."""
    if not DOC_ROOT.is_dir():
        raise RuntimeError(f"{DOC_ROOT} is missing: the ingest benchmark's corpus lives there")
    files: list[SourceFile] = []
    seen: set[str] = set()
    total = 0
    for path in sorted(DOC_ROOT.glob("*/*")):
        if path.name not in NAMES or not path.is_file() or path.is_symlink():
            continue
        raw = path.read_bytes()
        if path.suffix == ".gz":
            with contextlib.suppress(OSError, EOFError):
                raw = gzip.decompress(raw)
        text = raw.decode("utf-8", errors="replace")[:MAX_FILE_CHARS]
        digest = hashlib.sha256(text.encode()).hexdigest()
        if len(text.strip()) < 200 or digest in seen:
            continue
        seen.add(digest)
        stem = path.name.removesuffix(".gz").removesuffix(".md")
        suffix = ".md" if path.name.startswith("README.md") else ".txt"
        files.append(SourceFile(f"{path.parent.name}-{stem}{suffix}", text.encode()))
        total += len(text)
        if total >= chars:
            break
    if not files:
        raise RuntimeError(f"no documentation files found under {DOC_ROOT}")
    return files


def _settings(directory: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=Path(directory) / "data",
        llm_provider="fake",
        model_name="fake-echo",
        vector_backend="edge",
        embedding_provider="local",
    )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


# -- (a) the pipeline ----------------------------------------------------------------------


async def _pipeline(files: list[SourceFile]) -> dict[str, Any]:
    """One ingestion through the job path in a fresh state."""
    with tempfile.TemporaryDirectory(prefix="onebox-bench-ingest-") as directory:
        settings = _settings(directory)
        provider = FakeProvider(model_name="fake-echo", context_size=4096)
        async with open_state(settings, provider=provider) as state:
            await state.embedder.embed(["warm up the encoder"])
            upload_started = time.perf_counter()
            async with state.sessionmaker() as session:
                service = DocumentService(session, settings)
                collection = await service.create_collection(
                    state.local_user_id, CollectionCreate(name="bench")
                )
                added = await service.add_files(
                    state.local_user_id, collection, files, source="upload"
                )
                await session.commit()
            started, notified = time.perf_counter(), utcnow()
            state.jobs.notify(added.job_ids)
            # Slow polling (it competes for the 2 cores); the end is the jobs' own finish time.
            jobs = await wait_for_jobs(state.sessionmaker, added.job_ids, poll_interval=0.5)
            finished = [job.finished_at for job in jobs if job.finished_at is not None]
            seconds = (max(finished) - notified).total_seconds() if finished else float("nan")
            failed = [job.error for job in jobs if job.status != JobStatus.DONE]
            # The texts the jobs embedded: title and heading path with each passage.
            titles = {
                f.name: prepare_document(f.name, f.data, ParseLimits(), 100_000, 0).title
                for f in files
            }
            async with state.sessionmaker() as session:
                found = await session.execute(
                    select(Chunk, Document.filename).join(
                        Document, Document.id == Chunk.document_id
                    )
                )
                texts = [
                    embedding_text(row.heading_path or [], row.text, titles[name])
                    for row, name in found.all()
                ]
            model = getattr(state.embedder, "_model", None)  # the process-wide cached copy
            if model is None or not hasattr(model, "bfloat16"):
                raise RuntimeError("the ingest benchmark needs the local embedder's model")
        return {
            "seconds": seconds,
            "upload_seconds": started - upload_started,
            "documents": len(added.documents),
            "failed": failed,
            "texts": texts,
            "model": model,
        }


# -- (b) the raw encoder -------------------------------------------------------------------


def _raw(model: Any, texts: list[str]) -> float:
    """Seconds for SentenceTransformer.encode over ``texts``, batch 64, as the embedder
    would run it (inference mode, bfloat16 autocast when the embedder chose it)."""
    import torch

    from onebox.embeddings.local import pin_document_threads

    # This thread never set a count: it would run on the quick lane's one thread.
    pin_document_threads()
    autocast: contextlib.AbstractContextManager[Any] = (
        torch.autocast("cpu", dtype=torch.bfloat16) if model.bfloat16 else contextlib.nullcontext()
    )
    with torch.inference_mode(), autocast:
        started = time.perf_counter()
        model.model.encode(
            texts, batch_size=64, show_progress_bar=False, convert_to_numpy=True,
            normalize_embeddings=True,
        )  # fmt: skip
        return time.perf_counter() - started


# -- stage by stage ------------------------------------------------------------------------


async def _stages(files: list[SourceFile]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="onebox-bench-stages-") as directory:
        settings = _settings(directory)
        embedder: Embedder = build_embedder(settings, None)  # type: ignore[arg-type]
        await embedder.start()
        window = embedder.window()
        started = time.perf_counter()
        documents: list[tuple[list[ChunkDraft], str, str]] = []
        for file in files:
            # What the sandboxed job does: parse, chunk, split to fit the encoder's window.
            prepared = prepare_document(
                file.name, file.data, ParseLimits(), settings.chunk_size,
                settings.chunk_overlap, frozenset(), window, settings.chunk_min_lead,
            )  # fmt: skip
            documents.append((prepared.drafts, prepared.title, file.name))
        parse_chunk = time.perf_counter() - started
        size = settings.embedding_batch_size
        batches = [
            [embedding_text(d.heading_path, d.text, title) for d in drafts[i : i + size]]
            for drafts, title, _ in documents
            for i in range(0, len(drafts), size)
        ]
        started = time.perf_counter()
        vectors = [await embedder.embed(batch) for batch in batches]
        embed = time.perf_counter() - started
        started = time.perf_counter()
        for batch in batches:
            for text in batch:
                sparse.document_vector(text)
        bm25 = time.perf_counter() - started
        index = EdgeIndex(Path(directory) / "edge")
        await index.open(embedder.dimension)
        started = time.perf_counter()
        for number, (batch, rows) in enumerate(zip(batches, vectors, strict=True)):
            await index.upsert(
                [
                    IndexPoint(new_chunk_id(), f"doc-{number}", "bench", text, rows[i])
                    for i, text in enumerate(batch)
                ]
            )
        upsert = time.perf_counter() - started
        await index.close()
        # The background job after ingestion (documents/ingestion/sentences.py): every text
        # the rerank and the support will ask for, in the job's calls.
        started = time.perf_counter()
        for drafts, _, name in documents:
            pending = [
                (str(n), stored_texts(d.text, HEADING_JOINER.join(d.heading_path), name))
                for n, d in enumerate(drafts)
            ]
            for call in passage_calls(pending):
                unique = list(dict.fromkeys(t for _, texts in call for t in texts))
                await embedder.embed_background(unique)
        sentences = time.perf_counter() - started
        await embedder.close()
    return {"parse_chunk": parse_chunk, "embed_job_batches": embed, "bm25": bm25,
            "index_upsert": upsert, "sentence_job": sentences}  # fmt: skip


def _keep_best(best: dict[str, float], **measured: float) -> None:
    for name, value in measured.items():
        best[name] = min(best.get(name, float("inf")), value)


def run(quick: bool) -> dict[str, Any]:
    load_before = os.getloadavg()
    chars = 150_000 if quick else 1_000_000
    rounds = 1 if quick else 3
    files = corpus(chars)
    best: dict[str, float] = {}
    stages: dict[str, float] = {}
    texts: list[str] = []
    with _quiet():
        for _ in range(rounds):
            result = asyncio.run(_pipeline(files))
            if result["failed"]:
                raise RuntimeError(f"ingestion jobs failed: {result['failed'][:3]}")
            texts = result["texts"]
            _keep_best(best, pipeline=result["seconds"], upload=result["upload_seconds"],
                       raw=_raw(result["model"], texts))  # fmt: skip
            _keep_best(stages, **asyncio.run(_stages(files)))
    chunks = len(texts)
    bf16 = bool(result["model"].bfloat16)
    results: dict[str, Any] = {
        "documents": result["documents"], "chunks": chunks,
        "characters": sum(len(f.data) for f in files), "rounds": rounds,
        "precision": "bfloat16" if bf16 else "float32",
        "pipeline_seconds": best["pipeline"], "raw_seconds": best["raw"],
        "upload_seconds": best["upload"],
        "pipeline_chunks_per_s": chunks / best["pipeline"],
        "raw_chunks_per_s": chunks / best["raw"],
        "stages_seconds": stages, "target_ratio": 0.85,
        "loadavg_before_after": [load_before[0], os.getloadavg()[0]],
    }  # fmt: skip
    results["ratio"] = results["pipeline_chunks_per_s"] / results["raw_chunks_per_s"]
    print(f"{results['documents']} documents, {chunks} chunks, {results['precision']}, "
          f"best of {rounds}, load average {load_before[0]:.1f}:")  # fmt: skip
    print_table(
        ["pipeline chunks/s", "raw encoder chunks/s", "pipeline/raw", "target"],
        [[results["pipeline_chunks_per_s"], results["raw_chunks_per_s"], results["ratio"],
          ">= 0.85"]],
    )  # fmt: skip
    print("\nstage by stage, seconds (each alone, same files, best of the rounds):")
    accounted = stages["parse_chunk"] + stages["embed_job_batches"] + stages["index_upsert"]
    print_table(
        ["raw encode", "parse+chunk", "embed (per-doc batches)", "BM25", "index upsert (+BM25)",
         "pipeline", "pipeline - stages"],
        [[best["raw"], stages["parse_chunk"], stages["embed_job_batches"], stages["bm25"],
          stages["index_upsert"], best["pipeline"], best["pipeline"] - accounted]],
    )  # fmt: skip
    print(f"\nafter ingestion, the background job storing sentence vectors: "
          f"{stages['sentence_job']:.1f} s ({stages['sentence_job'] / best['raw']:.2f}x the raw "
          f"encoder on the passages); not in the pipeline time")  # fmt: skip
    return results
