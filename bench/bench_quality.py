"""Retrieval quality on two independent corpora, with a held-out split that keeps it honest.

Corpora: ``stdlib`` (standard-library docstrings and licence texts, ``bench/quality_set.py``)
and ``postgres`` (93 pages of the PostgreSQL 15 HTML manual, ``bench/quality_pg.py``), each
through the production path: ``parse_document`` → ``chunk_document`` (the configured chunk
size and overlap) → ``embed_and_index`` (title and heading path in the indexed text) with the
local MiniLM embedder into a Qdrant Edge index.

Questions are split in two by a hash of their text (``Question.split``): every weight is
chosen on the ``tune`` half, and the ``report`` half is the number to quote. Each question
is embedded once; the dense and the keyword lists (``retrieval_candidates`` deep each) are
fetched once and every fusion variant ranks them with the production code
(``vectors/fusion.py``), so the variants differ only in their fusion. ``hybrid`` is the
production search (``index.search``, the configured fusion and weight).

Passage level: the rank of the first hit from the labelled document whose text contains the
labelled evidence phrase; hit@k: share of questions with a rank ≤ k; MRR@10: mean of 1/rank.
Also reported: passages over the encoder's 256-word-piece window (counted with the model's
own tokenizer), and the top dense score of answerable against unanswerable questions.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import embed_cache, quality_pg
from bench.quality_set import QUESTIONS, Question, documents, normalise
from bench.table import print_table
from onebox.core.settings import Settings
from onebox.documents.ingestion.boilerplate import DOCUMENTS_KEY, common_fingerprints
from onebox.documents.ingestion.indexing import document_title, embed_and_index, embedding_text
from onebox.documents.ingestion.parsing import ParseLimits
from onebox.documents.ingestion.preparing import prepare_document
from onebox.documents.search.rerank import rerank
from onebox.documents.search.sentence_vectors import SentenceCache
from onebox.embeddings.factory import build_embedder
from onebox.vectors.base import SearchHit
from onebox.vectors.edge import EdgeIndex
from onebox.vectors.fusion import FusionMethod, fuse

DEPTH = 10
ENCODER_WINDOW = 256  # all-MiniLM-L6-v2's max_seq_length, in word pieces
WEIGHTS = {
    "minmax": (0.1, 0.2, 0.3, 0.4, 0.5),
    "zscore": (0.1, 0.2, 0.3, 0.4, 0.5),
    "rrf": (0.1, 0.3, 0.5, 1.0),
}
SPLITS = ("tune", "report")
# Passages split to fit the encoder's window at ingestion, as production does; 0 to measure
# without (ONEBOX_BENCH_FIT_WINDOW=0).
FIT_WINDOW = os.environ.get("ONEBOX_BENCH_FIT_WINDOW", "1") != "0"

Hits = list[tuple[str, float]]


def _corpora(quick: bool) -> dict[str, tuple[list[tuple[str, bytes]], list[Question]]]:
    stdlib, pg_pages = documents(), quality_pg.pages()
    stdlib_q, pg_q = list(QUESTIONS), list(quality_pg.questions())
    if quick:  # fewer documents, and only the questions about those
        stdlib = stdlib[::2]
        asked = {q.document for q in pg_q}
        pg_pages = [p for i, p in enumerate(pg_pages) if p[0] in asked or i % 3 == 0]
        keep = {name for name, _ in stdlib} | {name for name, _ in pg_pages}
        stdlib_q = [q for q in stdlib_q if q.document in keep]
        pg_q = [q for q in pg_q if q.document in keep or not q.answerable]
    return {"stdlib": (stdlib, stdlib_q), "postgres": (pg_pages, pg_q)}


def _rank(hits: list[str], chunks: dict[str, tuple[str, str]], question: Question) -> int | None:
    evidence = normalise(question.evidence)
    for rank, chunk_id in enumerate(hits[:DEPTH], start=1):
        name, text = chunks[chunk_id]
        if name == question.document and evidence in text:
            return rank
    return None


def _scores(ranks: list[int | None]) -> dict[str, float]:
    n = max(len(ranks), 1)
    found = [rank for rank in ranks if rank is not None]
    return {
        "n": len(ranks),
        "hit@1": sum(rank <= 1 for rank in found) / n,
        "hit@5": sum(rank <= 5 for rank in found) / n,
        "mrr@10": sum(1.0 / rank for rank in found) / n,
    }


def _variants() -> dict[str, tuple[FusionMethod, float]]:
    out: dict[str, tuple[FusionMethod, float]] = {}
    for method, weights in WEIGHTS.items():
        for weight in weights:
            out[f"{method}:{weight}"] = (method, weight)  # type: ignore[assignment]
    return out


async def _ingest(
    settings: Settings, embedder: Any, index: EdgeIndex, corpus: str, files: list[tuple[str, bytes]]
) -> tuple[dict[str, tuple[str, str]], dict[str, tuple[str, str]], dict[str, Any]]:
    chunks: dict[str, tuple[str, str]] = {}
    # chunk id -> (text, indexed text as the retriever rebuilds it from the stored rows)
    texts: dict[str, tuple[str, str]] = {}
    parse_seconds = embed_seconds = 0.0
    over = total = over_before = 0
    counts: Counter[str] = Counter()  # the collection's line counts (boilerplate pass)
    window = embedder.window() if FIT_WINDOW else None
    for name, data in files:
        started = time.perf_counter()
        prepared = prepare_document(
            name, data, ParseLimits(), settings.chunk_size, settings.chunk_overlap,
            common_fingerprints(counts), window, settings.chunk_min_lead,
        )  # fmt: skip
        parse_seconds += time.perf_counter() - started
        drafts, title = prepared.drafts, prepared.title
        if window is not None:  # the same document without the split, only to count
            unfit = prepare_document(
                name, data, ParseLimits(), settings.chunk_size, settings.chunk_overlap,
                common_fingerprints(counts), min_lead=settings.chunk_min_lead,
            )  # fmt: skip
            over_before += sum(
                embedder.count_tokens(embedding_text(d.heading_path, d.text, title))
                > ENCODER_WINDOW
                for d in unfit.drafts
            )
        counts.update({*prepared.lines, DOCUMENTS_KEY})
        for draft in drafts:
            total += 1
            over += embedder.count_tokens(embedding_text(draft.heading_path, draft.text, title)) > (
                ENCODER_WINDOW
            )
        started = time.perf_counter()
        rows = await embed_and_index(
            drafts, document_id=name, collection_id=corpus, embedder=embedder, index=index,
            batch_size=settings.embedding_batch_size, title=title,
        )  # fmt: skip
        embed_seconds += time.perf_counter() - started
        chunks.update({row.id: (name, normalise(row.text)) for row in rows})
        stored_title = document_title(None, name)
        texts.update(
            {r.id: (r.text, embedding_text(r.heading_path, r.text, stored_title)) for r in rows}
        )
    stats = {
        "documents": len(files), "chunks": total, "over_encoder_window": over,
        "over_encoder_window_without_fit": over_before if window is not None else over,
        "share_over_encoder_window": over / max(total, 1),
        "parse_chunk_seconds": round(parse_seconds, 2), "embed_index_seconds": round(embed_seconds, 2),
    }  # fmt: skip
    return chunks, texts, stats


async def _rerank(
    embedder: Any,
    question: str,
    vector: Any,
    hits: list[SearchHit],
    texts: dict[str, tuple[str, str]],
) -> tuple[Hits, float]:
    """The production rerank (``Retriever._rerank``) over the fused top; (hits, seconds).
    A fresh sentence cache per question: the seconds are a cold query's."""
    started = time.perf_counter()
    order = await rerank(
        embedder, question, vector, [texts[h.chunk_id][0] for h in hits],
        [texts[h.chunk_id][1] for h in hits],
        [h.similarity if h.similarity is not None else h.score for h in hits], SentenceCache(),
    )  # fmt: skip
    seconds = time.perf_counter() - started
    return [(hits[i].chunk_id, hits[i].score) for i in order], seconds


async def _measure(quick: bool) -> dict[str, Any]:
    corpora = _corpora(quick)
    results: dict[str, Any] = {"corpora": {}}
    with tempfile.TemporaryDirectory(prefix="onebox-bench-quality-") as directory:
        settings = Settings(_env_file=None, data_dir=Path(directory) / "data")  # type: ignore[call-arg]
        embedder = build_embedder(settings, None)  # type: ignore[arg-type]  # local: no HTTP
        await embedder.start()
        cache = embed_cache.install(embedder)
        index = EdgeIndex(Path(directory) / "edge", auto_optimize=False)
        index.fusion, index.keyword_weight = settings.hybrid_fusion, settings.hybrid_keyword_weight
        await index.open(embedder.dimension)
        depth = settings.retrieval_candidates
        try:
            for corpus, (files, questions) in corpora.items():
                chunks, texts, stats = await _ingest(settings, embedder, index, corpus, files)
                rerank_seconds: list[float] = []
                embed_cache.save(embedder, cache)
                await index.optimize()
                _check_labels(questions, chunks)
                rows = []
                for question in questions:
                    dense_vector = (await embedder.embed([question.text], kind="query"))[0]
                    lists = []
                    pool = max(DEPTH, settings.rerank_candidates)
                    for mode in ("dense", "keyword", "hybrid"):
                        hits = await index.search(
                            dense=dense_vector, text=question.text, collection_ids=[corpus],
                            limit=depth if mode != "hybrid" else pool, candidates=depth,
                            mode=mode,
                        )  # fmt: skip
                        lists.append([(hit.chunk_id, hit.score) for hit in hits])
                    fused = lists[2][:DEPTH]
                    # "hybrid" is the fused top reranked (ONEBOX_RERANK, the default search),
                    # measured whatever the setting; "fusion only" is the search without it.
                    top, seconds = await _rerank(
                        embedder, question.text, dense_vector,
                        hits[: settings.rerank_candidates], texts,
                    )  # fmt: skip
                    lists[2] = (top + lists[2][settings.rerank_candidates :])[:DEPTH]
                    rerank_seconds.append(seconds)
                    rows.append((question, *lists, fused))
                stats["rerank_ms_per_query"] = _per_query_ms(rerank_seconds)
                results["corpora"][corpus] = {"stats": stats, "rows": rows, "chunks": chunks}
        finally:
            embed_cache.save(embedder, cache)
            await index.close()
            await embedder.close()
    results["settings"] = {
        "chunk_size": settings.chunk_size, "chunk_overlap": settings.chunk_overlap,
        "chunk_min_lead": settings.chunk_min_lead, "candidates": settings.retrieval_candidates, "depth": DEPTH,
        "hybrid_fusion": settings.hybrid_fusion,
        "hybrid_keyword_weight": settings.hybrid_keyword_weight,
        "rerank": settings.rerank, "rerank_candidates": settings.rerank_candidates,
        # Vectors from embed_cache (seconds then do not time the encoder; ranks are the same).
        "embedding_cache": bool(os.environ.get("ONEBOX_BENCH_EMBED_CACHE")),
    }  # fmt: skip
    return results


def _per_query_ms(seconds: list[float]) -> dict[str, float] | None:
    if not seconds:
        return None
    ordered = sorted(seconds)
    return {
        "p50": round(1000 * ordered[len(ordered) // 2], 1),
        "p95": round(1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
    }


def _check_labels(questions: list[Question], chunks: dict[str, tuple[str, str]]) -> None:
    """Every label must be findable: a phrase split across two chunks could never score."""
    for question in questions:
        if not question.answerable:
            continue
        evidence = normalise(question.evidence)
        if not any(n == question.document and evidence in t for n, t in chunks.values()):
            raise RuntimeError(
                f"no chunk of {question.document} contains {question.evidence!r}: fix the label"
            )


def _ranks_by_variant(corpus: dict[str, Any]) -> dict[str, list[tuple[Question, int | None]]]:
    chunks = corpus["chunks"]
    out: dict[str, list[tuple[Question, int | None]]] = {}
    for question, dense, keyword, hybrid, fused_only in corpus["rows"]:
        if not question.answerable:
            continue
        ranked: dict[str, list[str]] = {
            "dense": [k for k, _ in dense],
            "keyword": [k for k, _ in keyword],
            "hybrid": [k for k, _ in hybrid],
            "fusion only": [k for k, _ in fused_only],
        }
        for name, (method, weight) in _variants().items():
            fused = fuse(dense, keyword, method=method, keyword_weight=weight, limit=DEPTH)
            ranked[name] = [k for k, _ in fused]
        for name, hits in ranked.items():
            out.setdefault(name, []).append((question, _rank(hits, chunks, question)))
    return out


def _subset(ranks: list[tuple[Question, int | None]], split: str | None) -> dict[str, float]:
    return _scores([r for q, r in ranks if split is None or q.split == split])


def _objective(
    variants: dict[str, dict[str, list[tuple[Question, int | None]]]], name: str
) -> float:
    total = 0.0
    for ranks in variants.values():
        scores = _subset(ranks[name], "tune")
        total += scores["hit@1"] + scores["mrr@10"]
    return total


def _tune(per_corpus: dict[str, dict[str, list[tuple[Question, int | None]]]]) -> dict[str, str]:
    """On the tune half only: per method, the weight with the best hit@1 + MRR over both
    corpora (ties: the smaller keyword weight); and ``chosen``, the best of all variants
    whose hit@1 is at least dense's on every corpus (the best overall if none is)."""
    best: dict[str, str] = {}

    def key(name: str) -> tuple[float, float]:
        return round(_objective(per_corpus, name), 9), -float(name.split(":")[1])

    for method in WEIGHTS:
        best[method] = max((n for n in _variants() if n.startswith(f"{method}:")), key=key)
    safe = [
        name
        for name in _variants()
        if all(
            _subset(v[name], "tune")["hit@1"] >= _subset(v["dense"], "tune")["hit@1"]
            for v in per_corpus.values()
        )
    ]
    best["chosen"] = max(safe or list(_variants()), key=key)
    return best


def run(quick: bool) -> dict[str, Any]:
    measured = asyncio.run(_measure(quick))
    per_corpus = {c: _ranks_by_variant(data) for c, data in measured["corpora"].items()}
    tuned = _tune(per_corpus)
    shown = ["dense", "keyword", "hybrid", "fusion only", *dict.fromkeys(tuned.values())]
    out: dict[str, Any] = {"settings": measured["settings"], "tuned_on_tune_half": tuned}
    rows = []
    for corpus, variants in per_corpus.items():
        data = measured["corpora"][corpus]
        entry: dict[str, Any] = {"stats": data["stats"], "modes": {}}
        for name, ranks in variants.items():
            natural = [(q, r) for q, r in ranks if q.style == "natural"]
            entry["modes"][name] = {
                "report": _subset(ranks, "report"), "tune": _subset(ranks, "tune"),
                "all": _subset(ranks, None), "natural_report": _subset(natural, "report"),
                "natural_all": _subset(natural, None),
            }  # fmt: skip
            if name in shown:
                rep, tune = entry["modes"][name]["report"], entry["modes"][name]["tune"]
                rows.append([
                    corpus, name, rep["n"], rep["hit@1"], rep["hit@5"], rep["mrr@10"],
                    tune["hit@1"], tune["hit@5"], tune["mrr@10"],
                ])  # fmt: skip
        entry["misses@5_hybrid"] = [q.text for q, r in variants["hybrid"] if r is None or r > 5]
        top_dense = {
            answerable: [dense[0][1] if dense else 0.0 for q, dense, *_ in data["rows"]
                         if q.answerable == answerable]
            for answerable in (True, False)
        }  # fmt: skip
        entry["top_dense_score"] = {
            ("answerable" if k else "unanswerable"): round(sum(v) / len(v), 4) if v else None
            for k, v in top_dense.items()
        }
        out[corpus] = entry
        stats = data["stats"]
        print(
            f"{corpus}: {stats['documents']} documents, {stats['chunks']} passages "
            f"({stats['over_encoder_window']} over {ENCODER_WINDOW} word pieces)"
        )
    print_table(
        ["corpus", "mode", "report n", "hit@1", "hit@5", "MRR@10",
         "tune hit@1", "tune hit@5", "tune MRR@10"],
        rows,
    )  # fmt: skip
    return out
