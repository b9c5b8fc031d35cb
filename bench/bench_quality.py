"""Retrieval quality: hit@k and MRR of dense-only, hybrid and keyword-only search on a
labelled question set (``bench/quality_set.py``).

The documents (standard-library docstrings and licence texts, 49 of them) go through the
production path: ``parse_document`` → ``chunk_document`` (the default chunk size and overlap)
→ ``embed_and_index`` with the local MiniLM embedder into a Qdrant Edge index, one
collection. Each question is embedded once as a query and searched in the three modes with
the production parameters (``retrieval_candidates`` per retriever, RRF fusion); ten hits are
kept. Document level: the rank of the first hit from the labelled document. Passage level:
the rank of the first hit from that document whose text contains the labelled evidence
phrase. hit@k: share of questions with a rank ≤ k; MRR@10: mean of 1/rank (0 when absent).
Deterministic: no ratio to a noisy baseline is needed, the baseline (dense-only) is the same
run's other column.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from bench.quality_set import QUESTIONS, Question, documents, normalise
from bench.table import print_table
from onebox.core.settings import Settings
from onebox.documents.ingestion.chunking import chunk_document
from onebox.documents.ingestion.indexing import embed_and_index
from onebox.documents.ingestion.parsing import parse_document
from onebox.embeddings.factory import build_embedder
from onebox.vectors.base import SearchMode
from onebox.vectors.edge import EdgeIndex

MODES: tuple[SearchMode, ...] = ("dense", "hybrid", "keyword")
DEPTH = 10
COLLECTION = "quality"
LEVELS = [
    f"{level}{style}" for level in ("document", "passage") for style in ("", "_keyword", "_natural")
]


def _ranks(
    hits: list[str], chunks: dict[str, tuple[str, str]], question: Question
) -> tuple[int | None, int | None]:
    """(document rank, passage rank), 1-based, None when not in the hits."""
    evidence = normalise(question.evidence)
    document_rank = passage_rank = None
    for rank, chunk_id in enumerate(hits, start=1):
        name, text = chunks[chunk_id]
        if name != question.document:
            continue
        document_rank = document_rank or rank
        if evidence in text:
            passage_rank = rank
            break
    return document_rank, passage_rank


def _scores(ranks: list[int | None]) -> dict[str, float]:
    n = max(len(ranks), 1)
    found = [rank for rank in ranks if rank is not None]
    return {
        "hit@1": sum(rank <= 1 for rank in found) / n,
        "hit@5": sum(rank <= 5 for rank in found) / n,
        "mrr@10": sum(1.0 / rank for rank in found) / n,
    }


async def _measure(quick: bool) -> dict[str, Any]:
    files = documents()
    questions = list(QUESTIONS)
    if quick:  # every other document, and the questions about those
        files = files[::2]
        kept = {name for name, _ in files}
        questions = [q for q in questions if q.document in kept]
    with tempfile.TemporaryDirectory(prefix="onebox-bench-quality-") as directory:
        data_dir = Path(directory) / "data"
        settings = Settings(_env_file=None, data_dir=data_dir)  # type: ignore[call-arg]
        embedder = build_embedder(settings, None)  # type: ignore[arg-type]  # local: no HTTP
        await embedder.start()
        index = EdgeIndex(Path(directory) / "edge", auto_optimize=False)
        await index.open(embedder.dimension)
        chunks: dict[str, tuple[str, str]] = {}  # chunk id -> (document, normalised text)
        try:
            for name, data in files:
                parsed = parse_document(name, data)
                drafts = chunk_document(
                    parsed, size=settings.chunk_size, overlap=settings.chunk_overlap
                )
                rows = await embed_and_index(
                    drafts, document_id=name, collection_id=COLLECTION, embedder=embedder,
                    index=index, batch_size=settings.embedding_batch_size,
                )  # fmt: skip
                chunks.update({row.id: (name, normalise(row.text)) for row in rows})
            await index.optimize()  # now, not in the background: every query sees one index
            _check_labels(questions, chunks)
            ranks: dict[str, dict[str, list[int | None]]] = {
                mode: {"document": [], "passage": []} for mode in MODES
            }
            for question in questions:
                dense = (await embedder.embed([question.text], kind="query"))[0]
                for mode in MODES:
                    hits = await index.search(
                        dense=dense, text=question.text, collection_ids=[COLLECTION],
                        limit=DEPTH, candidates=settings.retrieval_candidates, mode=mode,
                    )  # fmt: skip
                    document_rank, passage_rank = _ranks(
                        [hit.chunk_id for hit in hits], chunks, question
                    )
                    ranks[mode]["document"].append(document_rank)
                    ranks[mode]["passage"].append(passage_rank)
        finally:
            await index.close()
            await embedder.close()
    styles = {style: [q.style == style for q in questions] for style in ("keyword", "natural")}
    results: dict[str, Any] = {
        "documents": len(files), "chunks": len(chunks), "questions": len(questions),
        "questions_by_style": {style: sum(mask) for style, mask in styles.items()},
        "depth": DEPTH, "candidates": settings.retrieval_candidates,
        "chunk_size": settings.chunk_size, "chunk_overlap": settings.chunk_overlap,
        "modes": {},
    }  # fmt: skip
    for mode in MODES:
        entry: dict[str, Any] = {
            "document": _scores(ranks[mode]["document"]),
            "passage": _scores(ranks[mode]["passage"]),
        }
        for style, mask in styles.items():
            for level in ("document", "passage"):
                subset = [r for r, keep in zip(ranks[mode][level], mask, strict=True) if keep]
                entry[f"{level}_{style}"] = _scores(subset)
        entry["misses@5"] = [
            q.text for q, r in zip(questions, ranks[mode]["document"], strict=True)
            if r is None or r > 5
        ]  # fmt: skip
        results["modes"][mode] = entry
    return results


def _check_labels(questions: list[Question], chunks: dict[str, tuple[str, str]]) -> None:
    """Every label must be findable: a phrase split across two chunks could never score."""
    for question in questions:
        evidence = normalise(question.evidence)
        if not any(n == question.document and evidence in t for n, t in chunks.values()):
            raise RuntimeError(
                f"no chunk of {question.document} contains {question.evidence!r}: fix the label"
            )


def run(quick: bool) -> dict[str, Any]:
    results = asyncio.run(_measure(quick))
    modes = results["modes"]
    by_style = results["questions_by_style"]
    print(
        f"{results['documents']} documents, {results['chunks']} chunks, "
        f"{results['questions']} questions ({by_style['keyword']} keyword-style, "
        f"{by_style['natural']} natural-language), top {DEPTH}:"
    )
    rows = []
    for mode, entry in modes.items():
        doc, passage = entry["document"], entry["passage"]
        rows.append([
            mode, doc["hit@1"], doc["hit@5"], doc["mrr@10"], passage["hit@5"],
            passage["mrr@10"], entry["document_keyword"]["hit@5"],
            entry["passage_keyword"]["hit@5"], entry["document_natural"]["hit@5"],
            entry["passage_natural"]["hit@5"],
        ])  # fmt: skip
    delta = {
        level: {
            metric: modes["hybrid"][level][metric] - modes["dense"][level][metric]
            for metric in ("hit@1", "hit@5", "mrr@10")
        }
        for level in LEVELS
    }
    results["hybrid_minus_dense"] = delta
    rows.append([
        "hybrid - dense", delta["document"]["hit@1"], delta["document"]["hit@5"],
        delta["document"]["mrr@10"], delta["passage"]["hit@5"], delta["passage"]["mrr@10"],
        delta["document_keyword"]["hit@5"], delta["passage_keyword"]["hit@5"],
        delta["document_natural"]["hit@5"], delta["passage_natural"]["hit@5"],
    ])  # fmt: skip
    print_table(
        ["mode", "doc hit@1", "doc hit@5", "doc MRR@10", "passage hit@5", "passage MRR@10",
         "kw-q doc hit@5", "kw-q passage hit@5", "nl-q doc hit@5", "nl-q passage hit@5"],
        rows,
    )  # fmt: skip
    return results
