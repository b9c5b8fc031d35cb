"""Grounded answers: quoted support, abstention, citation precision, first-token time.

The documents and questions of ``bench/quality_set.py`` go through the production path
(parse → chunk → MiniLM → Qdrant Edge, each passage's sentence vectors stored as ingestion's
background job stores them; hybrid search, reranked when ``ONEBOX_RERANK`` (the default),
top ``retrieval_top_k``), plus
questions the documents cannot answer (``UNANSWERABLE`` below). Questions are split in two
halves by position: the *tuning* half (even positions) picks the abstention threshold, the
*report* half (odd positions) is scored with it.

Without a model (every question):
- support latency: search, rerank + ``grounding.ground`` (the question embedded, passage
  sentences scored by cosine + term overlap from their stored vectors; the in-process cache
  is emptied before each question), from the question to the quote;
- support hit: the quote contains the labelled evidence phrase, among questions whose
  evidence passage was retrieved;
- abstention: the best sentence score below the threshold; the threshold maximises
  balanced accuracy (answerable kept, unanswerable abstained) on the tuning half.

With the real embedded model (SmolLM2-135M through llama.cpp, ``THREADS`` threads; a small
sample, it is slow), three prompts:
- ``today``: the full citation instructions and all retrieved passages, whole;
- ``brief``: short instructions for small models, passages cut to the measured prefill
  budget (``grounding_first_token_seconds``), abstention by threshold;
- ``quote``: ``brief`` plus the quoted sentences repeated as the last passage.
Scored: answer correctness (a short answer appears in the answer or the quote), citation
precision (sources marked used by attribution that contain the evidence), abstention on
unanswerable questions, first-token time from the question (search, support and prefill).
``ONEBOX_BENCH_MODEL=0`` skips the model part (``1`` runs it with ``--quick`` too, on the
quick index); ``ONEBOX_BENCH_SAMPLE=N``: N answerable questions (those with a short answer
first, then any other: citation precision needs only the evidence) and N/2 unanswerable;
``ONEBOX_BENCH_VARIANTS=brief``: only those prompts. Each prompt is also scored per half.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.quality_set import QUESTIONS, documents, normalise
from bench.table import print_table
from onebox.core.settings import Settings
from onebox.documents.ingestion.chunking import chunk_document
from onebox.documents.ingestion.indexing import (
    HEADING_JOINER,
    document_title,
    embed_and_index,
    embedding_text,
)
from onebox.documents.ingestion.parsing import parse_document
from onebox.documents.search.answering import with_sources
from onebox.documents.search.grounding import (
    ABSTAIN_TEXT,
    CALIBRATED_THRESHOLD,
    Grounding,
    Link,
    attribute,
    budget_passages,
    fit_passages,
    ground,
)
from onebox.documents.search.rerank import rerank
from onebox.documents.search.retrieval import Source, snippet
from onebox.documents.search.sentence_vectors import (
    cache_for,
    pack,
    remember_stored,
    stored_texts,
)
from onebox.embeddings.base import Embedder
from onebox.embeddings.factory import build_embedder
from onebox.llm.base import ChatMessage, ChatRequest, GenerationParams, TextDelta
from onebox.llm.prefill import PrefillSpeeds
from onebox.vectors.edge import EdgeIndex

COLLECTION = "answers"
THREADS = 2
MAX_TOKENS = 80
UNANSWERABLE = (
    "What is the retention period for deleted backups?",
    "How do I configure TLS for a Kubernetes ingress?",
    "What is the capital of Australia?",
    "How do I read a JSON file that has comments in it?",
    "How do I send an HTTP GET request and follow redirects?",
    "Which SQL statement removes duplicate rows from a table?",
    "How do I train a neural network with PyTorch?",
    "What is the boiling point of water at high altitude?",
    "How do I center a div in CSS?",
    "What year did the Berlin Wall fall?",
    "How do I schedule a cron job every five minutes?",
    "How many vacation days do new employees get?",
    "How do I resize an image and keep its aspect ratio?",
    "What is the refund policy for annual subscriptions?",
    "How do I reset my router to factory settings?",
    "What does the GDPR say about data portability?",
    "How do I compute the SHA-256 hash of a large file?",
    "How do I connect to a PostgreSQL database from Python?",
    "Which command shows the disk usage of a directory on Linux?",
    "How do I parse command-line options in Rust?",
    "What is the warranty period of the kettle?",
    "How do I serialize a dataclass to JSON?",
    "How do I plot a histogram with matplotlib?",
    "Who won the football world cup in 2014?",
)
# The model sample: questions with short answers (any one counts), by question prefix.
SHORT_ANSWERS: dict[str, tuple[str, ...]] = {
    "How can I turn an existing list into a priority queue": ("heapify", "into a heap"),
    "How do I strip the indentation shared": ("dedent", "common leading whitespace"),
    "How do I delete a folder together": ("rmtree", "directory tree"),
    "How do I encode bytes so the result can be used in a web": ("urlsafe", "url-safe"),
    "How do I check whether a year has a 29th": ("isleap", "leap year"),
    "Which queue hands back the item added most recently": ("lifoqueue", "lifo"),
    "How can I order jobs so that each one runs only after": ("topological",),
    "How can I tell quickly whether a file is a ZIP": ("is_zipfile", "magic number"),
    "How can I memoize a function but bound": ("lru_cache", "least-recently-used"),
    "How can I represent one third exactly": ("fraction", "rational"),
    "How can I guess the media type of a file": ("guess_type", "guess the type"),
    "How do I run a program and get back what it printed": ("check_output",),
    "Which older command-line option parser": ("optparse",),
    "What should I use to make a password-reset link token": ("token_urlsafe", "secrets"),
}
SAMPLE_ANSWERABLE = int(os.environ.get("ONEBOX_BENCH_SAMPLE", "14"))
SAMPLE_UNANSWERABLE = max(2, SAMPLE_ANSWERABLE // 2)
VARIANTS = tuple(os.environ.get("ONEBOX_BENCH_VARIANTS", "today,brief,quote").split(","))
# Passage tokens a turn on the default embedded model typically has left (a prompt of about
# 450 tokens within 2 s, the instructions and the question taken out): the model-free
# "what the model reads first" is counted at this budget.
READ_TOKENS = 200
ABSTAIN_PHRASES = ("couldn't find", "could not find", "do not cover", "don't cover", "not covered")


@dataclass
class Case:
    text: str
    document: str | None  # None: unanswerable
    evidence: str = ""
    short: tuple[str, ...] = ()
    half: str = "tune"
    sources: list[Source] = field(default_factory=list)
    grounding: Grounding | None = None
    support_ms: float = 0.0
    retrieved: bool = False  # the evidence passage is among the sources


def _cases() -> list[Case]:
    cases = []
    for i, q in enumerate(QUESTIONS):
        short = next((v for k, v in SHORT_ANSWERS.items() if q.text.startswith(k)), ())
        half = "tune" if i % 2 == 0 else "report"
        cases.append(Case(q.text, q.document, q.evidence, short, half))
    for i, text in enumerate(UNANSWERABLE):
        cases.append(Case(text, None, half="tune" if i % 2 == 0 else "report"))
    return cases


def _indexed(chunk: tuple[str, str, str]) -> str:
    name, heading, text = chunk
    return embedding_text(heading.split(HEADING_JOINER) if heading else [], text,
                          document_title(None, name))  # fmt: skip


async def _stored_sentences(
    embedder: Embedder, chunks: dict[str, tuple[str, str, str]]
) -> dict[str, bytes]:
    """``chunks.sentences`` as ingestion's background job stores it, per chunk."""
    texts = {i: stored_texts(text, heading, name) for i, (name, heading, text) in chunks.items()}
    unique = list(dict.fromkeys(t for group in texts.values() for t in group))
    rows = dict(zip(unique, await embedder.embed(unique, kind="document"), strict=True))
    return {i: pack(embedder.name, group, [rows[t] for t in group]) for i, group in texts.items()}


async def _search(
    embedder: Embedder, index: EdgeIndex, chunks: dict[str, tuple[str, str, str]],
    stored: dict[str, bytes], settings: Settings, case: Case,
) -> None:  # fmt: skip
    cache_for(embedder).clear()  # each question as if first: only what the chunks store
    started = time.perf_counter()
    dense = (await embedder.embed([case.text], kind="query"))[0]
    top_k = settings.retrieval_top_k
    pool = max(top_k, settings.rerank_candidates) if settings.rerank else top_k
    hits = await index.search(
        dense=dense, text=case.text, collection_ids=[COLLECTION], limit=pool,
        candidates=max(settings.retrieval_candidates, pool), mode="hybrid",
    )  # fmt: skip
    remember_stored(embedder, [stored.get(hit.chunk_id) for hit in hits])  # as hydration does
    if settings.rerank and len(hits) > 1:  # as Retriever.retrieve does
        order = await rerank(
            embedder, case.text, dense,
            [chunks[hit.chunk_id][2] for hit in hits], [_indexed(chunks[hit.chunk_id]) for hit in hits],
            [hit.similarity if hit.similarity is not None else hit.score for hit in hits],
        )  # fmt: skip
        hits = [hits[i] for i in order]
    hits = hits[:top_k]
    for hit in hits:
        name, heading, text = chunks[hit.chunk_id]
        case.sources.append(
            Source(
                number=len(case.sources) + 1, chunk_id=hit.chunk_id, document_id=name,
                collection_id=COLLECTION, document=name, page=None, heading=heading, text=text,
                snippet=snippet(text, case.text), score=hit.score,
            )
        )  # fmt: skip
    # As a chat turn does: the retrieval's query vector is reused.
    case.grounding = await ground(embedder, case.text, case.sources, query_vector=dense)
    case.support_ms = (time.perf_counter() - started) * 1000
    evidence = normalise(case.evidence)
    case.retrieved = bool(case.document) and any(
        s.document == case.document and evidence in normalise(s.text) for s in case.sources
    )


def _quote(case: Case) -> str:
    return normalise(" ".join(s.text for s in case.grounding.support)) if case.grounding else ""


def _calibrate(cases: list[Case]) -> float:
    """The threshold with the best balanced accuracy on ``cases`` (lowest on ties)."""
    answerable = [c.grounding.best for c in cases if c.document and c.grounding]
    unanswerable = [c.grounding.best for c in cases if not c.document and c.grounding]
    best_t, best_acc = 0.0, -1.0
    for t in sorted({round(x, 3) for x in answerable + unanswerable}):
        acc = sum(x >= t for x in answerable) / len(answerable) + sum(
            x < t for x in unanswerable
        ) / len(unanswerable)
        if acc > best_acc + 1e-9:
            best_t, best_acc = t, acc
    return best_t


def _abstention(cases: list[Case], threshold: float) -> dict[str, float]:
    answerable = [c for c in cases if c.document and c.grounding]
    unanswerable = [c for c in cases if not c.document and c.grounding]
    return {
        "unanswerable_abstained": sum(c.grounding.best < threshold for c in unanswerable)  # type: ignore[union-attr]
        / len(unanswerable),
        "answerable_abstained": sum(c.grounding.best < threshold for c in answerable)  # type: ignore[union-attr]
        / len(answerable),
    }


def _support_hit(cases: list[Case]) -> dict[str, float]:
    found = [c for c in cases if c.retrieved]
    return {
        "questions_with_passage_retrieved": len(found),
        "support_contains_evidence": sum(normalise(c.evidence) in _quote(c) for c in found)
        / max(len(found), 1),
        "support_from_evidence_passage": sum(
            any(
                normalise(c.evidence) in normalise(c.sources[s.number - 1].text)
                and c.sources[s.number - 1].document == c.document
                for s in c.grounding.support  # type: ignore[union-attr]
            )
            for c in found
        )
        / max(len(found), 1),
    }


def _sample(cases: list[Case]) -> list[Case]:
    answerable = [c for c in cases if c.short] + [c for c in cases if c.document and not c.short]
    return (
        answerable[:SAMPLE_ANSWERABLE] + [c for c in cases if not c.document][:SAMPLE_UNANSWERABLE]
    )


async def _model_sample(
    embedder: Embedder, cases: list[Case], threshold: float, settings: Settings
) -> dict[str, Any]:
    from onebox.llm.llamacpp import LlamaCppProvider

    provider = LlamaCppProvider(
        model_name=settings.model_name, context_size=4096, threads=THREADS, max_batch_sequences=1
    )
    await provider.start()
    speeds = PrefillSpeeds(prior=settings.grounding_prefill_prior)
    params = GenerationParams(max_tokens=MAX_TOKENS, temperature=0.0, top_p=1.0, seed=7)
    system = ChatMessage("system", settings.system_prompt)
    sample = _sample(cases)
    results: dict[str, Any] = {}
    try:
        await _generate(provider, [system, ChatMessage("user", "Hello")], params)  # warm-up
        for variant in VARIANTS:
            rows = []
            for case in sample:
                rows.append(
                    await _answer(provider, embedder, speeds, case, variant, threshold, params)
                )
            results[variant] = _score(rows)
            results[variant]["halves"] = {
                half: _score([r for r in rows if r["half"] == half]) for half in ("tune", "report")
            }
            results[variant]["rows"] = rows
    finally:
        await provider.close()
    results["prefill_tokens_per_second"] = round(speeds.tokens_per_second(settings.model_name), 1)
    return results


async def _generate(
    provider: Any, messages: list[ChatMessage], params: GenerationParams
) -> tuple[str, float | None, int]:
    started = time.perf_counter()
    first: float | None = None
    text: list[str] = []
    prompt_tokens = provider.count_tokens(messages)
    async for chunk in provider.stream_chat(ChatRequest(messages=messages, params=params)):
        if isinstance(chunk, TextDelta):
            if first is None:
                first = time.perf_counter() - started
            text.append(chunk.text)
    return "".join(text), first, prompt_tokens


async def _answer(
    provider: Any, embedder: Embedder, speeds: PrefillSpeeds, case: Case, variant: str,
    threshold: float, params: GenerationParams,
) -> dict[str, Any]:  # fmt: skip
    assert case.grounding is not None
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    history = [
        ChatMessage("system", settings.system_prompt), ChatMessage("user", case.text)
    ]  # fmt: skip
    sources, grounding = case.sources, case.grounding
    row: dict[str, Any] = {
        "question": case.text, "answerable": bool(case.document), "half": case.half,
        "best": round(grounding.best, 4), "variant": variant,
    }  # fmt: skip
    if variant != "today" and grounding.best < threshold:
        row.update(answer=ABSTAIN_TEXT, first_token_ms=case.support_ms, prompt_tokens=0,
                   passages=0, abstained=True, used=[])  # fmt: skip
    else:
        if variant != "today":
            allowed = speeds.prompt_tokens_within(  # as the turn: search and support spent
                settings.model_name, settings.grounding_first_token_seconds,
                case.support_ms / 1000,
            )  # fmt: skip
            sources, grounding = fit_passages(
                provider.count_tokens, history, sources, grounding, variant, allowed
            )
        quotes = [(s.number, s.text) for s in grounding.support]
        style = "citations" if variant == "today" else variant
        messages = with_sources(history, sources, style=style, quotes=quotes)
        text, first, prompt_tokens = await _generate(provider, messages, params)
        if first is not None:
            speeds.observe(settings.model_name, prompt_tokens, first)
        links = await attribute(embedder, text, sources, grounding)

        whole = {s.chunk_id: s.text for s in case.sources}  # before the budget's cut

        def used(found: list[Link]) -> list[dict[str, Any]]:
            # "evidence": in the excerpt the model read; "passage_evidence": in the passage
            # the citation opens (the whole chunk).
            return [
                {"document": sources[n - 1].document,
                 "evidence": normalise(case.evidence) in normalise(sources[n - 1].text),
                 "passage_evidence": normalise(case.evidence)
                 in normalise(whole.get(sources[n - 1].chunk_id, sources[n - 1].text))}
                for n in sorted({link.number for link in found})
            ]  # fmt: skip

        row.update(
            answer=text, first_token_ms=case.support_ms + (first or 0) * 1000,
            prompt_tokens=prompt_tokens, passages=len(sources),
            abstained=any(p in text.lower() for p in ABSTAIN_PHRASES),
            used=used(links),
        )  # fmt: skip
    quote = " ".join(s.text for s in case.grounding.support).lower()
    answer = str(row["answer"]).lower()
    row["correct_answer"] = any(a in answer for a in case.short) if case.short else None
    row["correct"] = row["correct_answer"] or any(a in quote for a in case.short)
    row["support_ms"] = round(case.support_ms, 1)
    row["first_token_ms"] = round(row["first_token_ms"], 1)
    return row


def _score(rows: list[dict[str, Any]]) -> dict[str, Any]:
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    short = [r for r in answerable if r["correct_answer"] is not None]
    used = [u for r in answerable for u in r["used"]]
    generated = [r for r in rows if not (r["abstained"] and r["prompt_tokens"] == 0)]
    return {
        "questions": len(rows),
        "answer_correct": sum(r["correct_answer"] for r in short) / max(len(short), 1),
        "answer_or_quote_correct": sum(r["correct"] for r in short) / max(len(short), 1),
        "citation_precision": sum(u["evidence"] for u in used) / len(used) if used else None,
        "citation_precision_passage": sum(u["passage_evidence"] for u in used) / len(used)
        if used
        else None,
        "sources_used": len(used),
        "unanswerable_abstained": sum(r["abstained"] for r in unanswerable)
        / max(len(unanswerable), 1),
        "answerable_abstained": sum(r["abstained"] for r in answerable) / max(len(answerable), 1),
        "first_token_ms_median": statistics.median(r["first_token_ms"] for r in generated)
        if generated
        else None,
        "prompt_tokens_median": statistics.median(r["prompt_tokens"] for r in generated)
        if generated
        else None,
        "passages_median": statistics.median(r["passages"] for r in generated)
        if generated
        else None,
    }


async def _measure(quick: bool, model_only: bool = False) -> dict[str, Any]:
    """``model_only``: just the model sample, on the sample's documents and as many others
    (a smaller index: quicker to build; the threshold is the calibrated constant)."""
    files = documents()
    cases = _cases()
    if model_only:
        cases = _sample(cases)
        names = {c.document for c in cases if c.document}
        others = [f for f in files if f[0] not in names][: len(names)]
        files = [f for f in files if f[0] in names] + others
    elif quick:  # every other document, the questions about those, every unanswerable one
        files = files[::2]
        kept = {name for name, _ in files}
        cases = [c for c in cases if c.document is None or c.document in kept]
    with tempfile.TemporaryDirectory(prefix="onebox-bench-answers-") as directory:
        settings = Settings(_env_file=None, data_dir=Path(directory) / "data")  # type: ignore[call-arg]
        embedder = build_embedder(settings, None)  # type: ignore[arg-type]  # local: no HTTP
        await embedder.start()
        index = EdgeIndex(Path(directory) / "edge", auto_optimize=False)
        await index.open(embedder.dimension)
        chunks: dict[str, tuple[str, str, str]] = {}
        try:
            for name, data in files:
                drafts = chunk_document(
                    parse_document(name, data), size=settings.chunk_size,
                    overlap=settings.chunk_overlap, min_lead=settings.chunk_min_lead,
                )  # fmt: skip
                rows = await embed_and_index(
                    drafts, document_id=name, collection_id=COLLECTION, embedder=embedder,
                    index=index, batch_size=settings.embedding_batch_size,
                )  # fmt: skip
                chunks.update(
                    {r.id: (name, HEADING_JOINER.join(r.heading_path or []), r.text) for r in rows}
                )
            await index.optimize()
            stored = await _stored_sentences(embedder, chunks)
            await _search(embedder, index, chunks, stored, settings, cases[0])  # warm-up
            cases[0].sources.clear()
            for case in cases:
                await _search(embedder, index, chunks, stored, settings, case)
            if model_only:
                return {
                    "documents": len(files), "chunks": len(chunks),
                    "threshold": CALIBRATED_THRESHOLD,
                    "model": await _model_sample(embedder, cases, CALIBRATED_THRESHOLD, settings),
                }  # fmt: skip
            tune = [c for c in cases if c.half == "tune"]
            report = [c for c in cases if c.half == "report"]
            threshold = _calibrate(tune)
            results: dict[str, Any] = {
                "documents": len(files), "chunks": len(chunks),
                "questions": {"answerable": sum(bool(c.document) for c in cases),
                              "unanswerable": sum(not c.document for c in cases)},
                "top_k": settings.retrieval_top_k, "threshold": threshold,
                "support_ms": {
                    "median": round(statistics.median(c.support_ms for c in cases), 1),
                    "p90": round(statistics.quantiles([c.support_ms for c in cases], n=10)[-1], 1),
                },
                "halves": {},
            }  # fmt: skip
            for name, half in (("tune", tune), ("report", report)):
                results["halves"][name] = {
                    **_support_hit(half),
                    **_abstention(half, threshold),
                    **_reading(half),
                }
            wanted = os.environ.get("ONEBOX_BENCH_MODEL", "0" if quick else "1")
            if wanted != "0":
                results["model"] = await _model_sample(embedder, cases, threshold, settings)
        finally:
            await index.close()
            await embedder.close()
    return results


def _reading(cases: list[Case]) -> dict[str, float]:
    """What a slow local model reads first (the passage ``budget_passages`` puts first, cut
    to ``READ_TOKENS``): with one passage in the prompt, a source the answer uses holds the
    evidence only when this does (citation precision's ceiling, without a model)."""
    found = [c for c in cases if c.retrieved and c.grounding]
    first = quoted = 0
    for case in found:
        assert case.grounding is not None
        kept, narrowed = budget_passages(case.sources, case.grounding, READ_TOKENS)
        first += normalise(case.evidence) in normalise(kept[0].prompt_text)
        quoted += any(s.number == 1 for s in narrowed.support[:1])
    return {
        "read_first_has_evidence": first / max(len(found), 1),
        "read_first_is_quoted": quoted / max(len(found), 1),
    }


def run(quick: bool) -> dict[str, Any]:
    results = asyncio.run(_measure(quick))
    print(
        f"{results['documents']} documents, {results['chunks']} chunks; "
        f"abstention threshold {results['threshold']} (tuning half); support latency "
        f"median {results['support_ms']['median']} ms, p90 {results['support_ms']['p90']} ms"
    )
    print_table(
        ["half", "passage retrieved", "quote has evidence", "quote from evidence passage",
         "read first has evidence", "unanswerable abstained", "answerable abstained"],
        [
            [name, h["questions_with_passage_retrieved"], h["support_contains_evidence"],
             h["support_from_evidence_passage"], h["read_first_has_evidence"],
             h["unanswerable_abstained"], h["answerable_abstained"]]
            for name, h in results["halves"].items()
        ],
    )  # fmt: skip
    model = results.get("model")
    if model:
        print(
            f"\nSmolLM2-135M, {THREADS} threads, prefill ~{model['prefill_tokens_per_second']} tok/s:"
        )
        print_table(
            ["prompt", "questions", "answer correct", "answer or quote", "citation precision",
             "unanswerable abstained", "first token ms (median)", "prompt tokens", "passages"],
            [
                [v, m["questions"], m["answer_correct"], m["answer_or_quote_correct"],
                 "-" if m["citation_precision"] is None else m["citation_precision"],
                 m["unanswerable_abstained"], m["first_token_ms_median"],
                 m["prompt_tokens_median"], m["passages_median"]]
                for v, m in model.items() if isinstance(m, dict)
            ],
        )  # fmt: skip
        for v, m in model.items():
            if isinstance(m, dict):
                print(f"{v}: citation precision per half " + ", ".join(
                    f"{half} {h['citation_precision']} ({h['sources_used']} used)"
                    for half, h in m["halves"].items()
                ) + f"; counted on the whole passage a citation opens: "
                    f"{m['citation_precision_passage']}")  # fmt: skip
    return results
