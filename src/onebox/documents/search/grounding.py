"""Grounding an answer in the retrieved passages, without trusting the model to cite.

- **Support**: right after retrieval, the one or two passage sentences that best answer the
  question (embedding similarity to the question plus term overlap), quoted to the user
  before the model has read anything.
- **Abstention**: when even the best sentence scores below a calibrated threshold
  (``bench/bench_answers.py`` measures it), the documents do not answer the question.
- **Attribution**: after generation, each answer sentence is matched to the passage sentence
  it is closest to (same score); a source is *used* when an answer sentence leans on it or
  the answer cites it with ``[n]``.
- **Budget**: small local models read slowly; the passages are cut to the sentences around
  the best one so that prefill fits a target first-token time.

Everything here is pure computation over vectors from the app's embedder (MiniLM).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from onebox.documents.ingestion.indexing import HEADING_JOINER
from onebox.documents.search.answering import passage_budget, with_sources
from onebox.documents.search.retrieval import Source
from onebox.documents.search.sentence_vectors import (
    MIN_SENTENCE_WORDS,
    in_context,
    sentence_vectors,
    split_sentences,
    support_sentences,
)
from onebox.embeddings.base import Embedder, Vectors
from onebox.llm.base import ChatMessage

OVERLAP_WEIGHT = 0.35  # term overlap's weight next to cosine similarity
# The passage's heading (or document name) against the question, added to each of its
# sentences' scores: picked on the tuning half of bench/bench_answers.py (quote contains the
# evidence 21 -> 22 of 32, quote from the evidence passage 78 -> 84 %, answerable abstained
# 3 -> 1 of 43, with sentences embedded under their heading).
HEADING_WEIGHT = 0.2
SUPPORT_MAX = 2
# A bonus of RANK_WEIGHT / rank for choosing the quote (never for abstaining): the rerank
# ranked the whole passage, and one sentence alone can read alike elsewhere. Picked on the
# tuning half of bench/bench_answers.py (quote contains the evidence: 27 of 35 without it;
# 29 at 0.05, 0.1, 0.2 and 0.3; 30 at 0.15).
RANK_WEIGHT = 0.15
# A second quote only when it scores this close to the first: picked on the tuning half of
# bench/bench_answers.py (quote contains the evidence: 30 of 35 at 0.87 to 0.9, 31 at 0.75 to
# 0.86; the middle of that plateau).
SUPPORT_RELATIVE = 0.8
# A quote reaches back to its section's first sentence within this many characters: picked
# on the tuning half of bench/bench_answers.py --quick (quote contains the evidence 13 -> 15
# of 20; 600 added one more only by quoting a whole table).
LEAD_SPAN_CHARS = 320
ATTRIBUTION_MIN = 0.5  # an answer sentence scoring below this leans on no passage
ABSTAIN_TEXT = "I couldn't find this in your documents."
# Below this best-sentence score the documents do not answer: calibrated on the tuning half
# of bench/bench_answers.py (answerable and unanswerable questions) for this embedder.
CALIBRATED_EMBEDDER = "all-MiniLM-L6-v2"
CALIBRATED_THRESHOLD = 0.591

_WORD = re.compile(r"[A-Za-z0-9_]{3,}")
_CITATION = re.compile(r"\s*\[\d{1,3}(?:\s*[,;]\s*\d{1,3})*\]")
_STOP_WORDS = """the and for are but not you your with this that from have has had was were
    will would can could should how what when where which who whom why does did doing into
    onto out about than then them they their there these those its also any all each some
    such only own same other more most very just use using used want get make need like one
    two way"""
_STOP = frozenset(_STOP_WORDS.split())


@dataclass(frozen=True, slots=True)
class Sentence:
    source: int  # index into the passages
    text: str


@dataclass(frozen=True, slots=True)
class Support:
    """A quoted passage sentence that answers the question."""

    number: int  # the source's number
    text: str
    score: float

    def public(self, source: Source) -> dict[str, Any]:
        return {
            "number": self.number,
            "quote": self.text,
            "document": source.document,
            "page": source.page,
            "heading": source.heading,
            "chunk_id": source.chunk_id,
            "score": round(self.score, 4),
        }


@dataclass
class Grounding:
    """What the turn knows about its passages: their sentences and vectors (reused after the
    answer for attribution), the quoted support and the best score."""

    sentences: list[Sentence] = field(default_factory=list)
    vectors: Vectors | None = None
    scores: list[float] = field(default_factory=list)  # per sentence, against the question
    support: list[Support] = field(default_factory=list)
    best: float = 0.0

    @property
    def passage_scores(self) -> list[float]:
        """Per passage (up to the last one with a sentence): its best sentence's score."""
        best = [0.0] * (max((s.source for s in self.sentences), default=-1) + 1)
        for sentence, score in zip(self.sentences, self.scores, strict=False):
            best[sentence.source] = max(best[sentence.source], score)
        return best

    def best_sentence(self, passage: int) -> int | None:
        candidates = [i for i, s in enumerate(self.sentences) if s.source == passage]
        return max(candidates, key=lambda i: self.scores[i]) if candidates else None


def terms(text: str) -> set[str]:
    return {w for w in (m.lower() for m in _WORD.findall(text)) if w not in _STOP}


def overlap(query_terms: set[str], text: str) -> float:
    """Share of the query's terms found in ``text`` (prefix matches count: heap ~ heapify)."""
    if not query_terms:
        return 0.0
    found = terms(text)
    hits = sum(
        1
        for term in query_terms
        if term in found or any(w.startswith(term[:5]) for w in found if len(term) >= 5)
    )
    return hits / len(query_terms)


def _cosines(matrix: Vectors, vector: Any) -> list[float]:
    return [float(x) for x in np.asarray(matrix @ vector, dtype=np.float32)]


async def ground(
    embedder: Embedder,
    question: str,
    sources: Sequence[Source],
    *,
    query_vector: Any = None,
) -> Grounding:
    """Splits the passages into sentences, scores each against the question and picks the
    quoted support. ``query_vector``: the question's vector when the caller has it already
    (retrieval embedded the same text, ``kind="query"``); sentence vectors are remembered
    per embedder (``sentence_vectors``)."""
    grounding = Grounding()
    for index, source in enumerate(sources):
        for text in support_sentences(source.text):
            grounding.sentences.append(Sentence(index, text))
    if not grounding.sentences or not question.strip():
        return grounding
    query = (
        np.asarray(query_vector, dtype=np.float32)
        if query_vector is not None
        else (await embedder.embed([question], kind="query"))[0]
    )
    # The same texts as ingestion stored (sentence_vectors.stored_texts).
    titles = [source.heading or source.document for source in sources]
    texts = [in_context(sources[s.source].heading, s.text) for s in grounding.sentences]
    embedded = await sentence_vectors(embedder, texts + titles)
    vectors = embedded[: len(texts)]
    grounding.vectors = vectors
    wanted = terms(question)
    cosines = _cosines(vectors, query)
    heading_cosines = _cosines(embedded[len(texts) :], query)
    grounding.scores = [
        cos + OVERLAP_WEIGHT * overlap(wanted, s.text) + HEADING_WEIGHT * heading_cosines[s.source]
        for cos, s in zip(cosines, grounding.sentences, strict=True)
    ]
    grounding.best = max(grounding.scores)
    grounding.support = choose_support(sources, grounding)
    return grounding


def choose_support(sources: Sequence[Source], grounding: Grounding) -> list[Support]:
    """The quotes: the best-scoring sentences, the retrieval rank weighing in, at most
    ``SUPPORT_MAX``, a later one only within ``SUPPORT_RELATIVE`` of the first and never
    one that an earlier quote already holds, or that would repeat it."""
    support: list[Support] = []
    # The quote prefers the passages retrieval ranked first, which weighed the whole passage.
    chosen = [
        score + RANK_WEIGHT / (s.source + 1)
        for score, s in zip(grounding.scores, grounding.sentences, strict=True)
    ]
    order = sorted(range(len(grounding.sentences)), key=lambda i: -chosen[i])
    for i in order:
        if len(support) == SUPPORT_MAX or (
            support and chosen[i] < SUPPORT_RELATIVE * chosen[order[0]]
        ):
            break
        sentence = grounding.sentences[i]
        source = sources[sentence.source]
        if any(sentence.text in quote.text for quote in support):
            continue  # already inside the first quote's section opening
        quote = with_section_lead(source, sentence.text)
        if any(earlier.text in quote for earlier in support):
            continue  # its section opening would repeat the first quote: the next one
        support.append(Support(source.number, quote, grounding.scores[i]))
    return support


def with_section_lead(source: Source, sentence: str) -> str:
    """The quote for ``sentence`` of ``source``. When the passage holds its section's heading
    before the sentence (a reference entry opens with it: a name, then a one-line
    definition; a document's short opening joined to the entry puts it further in), the
    quote reaches back to the section's first sentence: the sentences from there through
    ``sentence`` when they stay within ``LEAD_SPAN_CHARS``, else the first one and
    ``sentence`` joined by an ellipsis. A detail ("Copy the permission bits…") is then read
    with what it belongs to ("Copy data and metadata.")."""
    heading = source.heading.rsplit(HEADING_JOINER, 1)[-1] if source.heading else ""
    parts = split_sentences(source.text)
    if not heading or heading not in parts:
        return sentence
    opening = parts.index(heading)
    try:
        at = parts.index(sentence, opening + 2)
    except ValueError:
        return sentence  # the section's first sentence itself, or not a sentence of it
    span = " ".join(parts[opening + 1 : at + 1])
    if len(span) <= LEAD_SPAN_CHARS:
        return span
    joined = f"{parts[opening + 1]} … {sentence}"
    return joined if len(joined) <= LEAD_SPAN_CHARS else sentence


def support_out(grounding: Grounding | None, sources: Sequence[Source]) -> list[dict[str, Any]]:
    if grounding is None:
        return []
    by_number = {s.number: s for s in sources}
    return [s.public(by_number[s.number]) for s in grounding.support if s.number in by_number]


@dataclass(frozen=True, slots=True)
class Link:
    """One answer sentence and the source it leans on."""

    sentence: str
    number: int
    score: float


async def attribute(
    embedder: Embedder,
    answer: str,
    sources: Sequence[Source],
    grounding: Grounding | None,
    *,
    minimum: float = ATTRIBUTION_MIN,
) -> list[Link]:
    """Links each answer sentence to the passage whose sentence it is most like (cosine plus
    term overlap), when that score reaches ``minimum``; an explicit ``[n]`` in the sentence
    links it to source ``n`` whatever the score."""
    if not sources or not answer.strip():
        return []
    if grounding is None or grounding.vectors is None:
        grounding = await ground(embedder, answer, sources)
    spoken = [s for s in split_sentences(answer) if s != ABSTAIN_TEXT]
    if not spoken or grounding.vectors is None:
        return []
    plain = [_CITATION.sub("", s).strip() or s for s in spoken]
    vectors = await embedder.embed(plain, kind="document")
    numbers = [sources[s.source].number for s in grounding.sentences]
    links: list[Link] = []
    for sentence, bare, vector in zip(spoken, plain, vectors, strict=True):
        cited = _cited(sentence, len(sources))
        if cited:
            links.extend(Link(sentence, n, 1.0) for n in sorted(cited))
            continue
        if len(bare.split()) < MIN_SENTENCE_WORDS:
            continue
        wanted = terms(bare)
        cosines = _cosines(grounding.vectors, vector)
        best, best_score = None, minimum
        for i, cos in enumerate(cosines):
            score = cos + OVERLAP_WEIGHT * overlap(wanted, grounding.sentences[i].text)
            if score >= best_score:
                best, best_score = i, score
        if best is not None:
            links.append(Link(sentence, numbers[best], best_score))
    return links


def _cited(sentence: str, count: int) -> set[int]:
    from onebox.documents.search.answering import cited_numbers

    return cited_numbers(sentence, count)


def sources_with_links(
    sources: Sequence[Source],
    links: Sequence[Link],
    grounding: Grounding | None,
    *,
    abstained: bool,
) -> list[dict[str, Any]]:
    """The stored snapshot: each source with ``used``, the answer ``sentences`` that lean on
    it and, for the quoted ones, ``support``. Nothing is used when the turn abstained."""
    support = {s.number: s.text for s in grounding.support} if grounding else {}
    out = []
    for source in sources:
        mine = (
            [] if abstained else [link.sentence for link in links if link.number == source.number]
        )
        data = source.public(used=bool(mine))
        data["sentences"] = mine
        if source.number in support:
            data["support"] = support[source.number]
        out.append(data)
    return out


# --- the passage budget ----------------------------------------------------------------


def trim_passage(source: Source, grounding: Grounding, index: int, max_chars: int) -> Source:
    """The passage cut to the sentences around its best one, at most ``max_chars`` (its
    neighbours, which widen what the model reads, go first)."""
    if len(source.prompt_text) <= max_chars:
        return source
    if len(source.text) <= max_chars:
        return replace(source, context="")
    best = grounding.best_sentence(index)
    own = [s.text for s in grounding.sentences if s.source == index]
    if best is None or not own:
        return replace(source, text=source.text[:max_chars], context="")
    centre = own.index(grounding.sentences[best].text)
    lo = hi = centre
    size = len(own[centre])
    while True:
        grown = False
        if hi + 1 < len(own) and size + len(own[hi + 1]) + 1 <= max_chars:
            hi += 1
            size += len(own[hi]) + 1
            grown = True
        if lo > 0 and size + len(own[lo - 1]) + 1 <= max_chars:
            lo -= 1
            size += len(own[lo]) + 1
            grown = True
        if not grown:
            break
    text = " ".join(own[lo : hi + 1])
    return replace(source, text=text[:max_chars], context="")


def budget_passages(
    sources: Sequence[Source], grounding: Grounding, passage_tokens: int | None
) -> tuple[list[Source], Grounding]:
    """The passages the model reads, and the grounding renumbered to match.
    ``passage_tokens`` ``None``: all of them, whole. Otherwise the passages in the
    retrieval's order, each cut around its best sentence, as many as fit (at least one),
    renumbered from 1; a quote from a passage left out goes too.

    The first passage may fill the whole budget, later ones half of it at most. Measured on
    the tuning half of ``bench/bench_answers.py`` (the first passage read holds the evidence,
    at 200 passage tokens): 23 of 35 in the order of each passage's best sentence with half
    the budget each, 27 in the retrieval's order (the rerank weighed whole passages; one
    sentence alone can read alike elsewhere), 28 with the first passage given it all."""
    if passage_tokens is None or not sources:
        return list(sources), grounding
    chars = max(passage_tokens, 60) * 4
    per_passage = max(240, min(600, chars // 2))
    kept: list[Source] = []
    used = 0
    for index, source in enumerate(sources):
        room = min(per_passage, chars - used) if kept else chars
        if kept and room < 160:
            break
        trimmed = trim_passage(source, grounding, index, max(room, 160))
        kept.append(replace(trimmed, number=len(kept) + 1))
        used += len(trimmed.prompt_text) + 60  # the fence and label cost some tokens too
    return kept, _restrict(grounding, sources, list(range(len(kept))))


def fit_passages(
    count_tokens: Callable[[Sequence[ChatMessage]], int],
    history: Sequence[ChatMessage],
    sources: Sequence[Source],
    grounding: Grounding,
    style: str,
    allowed: int,
) -> tuple[list[Source], Grounding]:
    """What a slow local model reads when the whole prompt may be ``allowed`` tokens: the
    passages cut by :func:`budget_passages` (whose character estimate runs long on code and
    Markdown), then the last dropped while the prompt, rendered as the model will read it,
    is over (one passage always stays)."""
    budget = passage_budget(count_tokens, history, sources, style, allowed)
    kept, narrowed = budget_passages(sources, grounding, budget)
    while len(kept) > 1:
        quotes = [(s.number, s.text) for s in narrowed.support]
        if count_tokens(with_sources(history, kept, style=style, quotes=quotes)) <= allowed:
            break
        narrowed = _restrict(narrowed, kept, list(range(len(kept) - 1)))
        kept = kept[:-1]
    return kept, narrowed


def _restrict(grounding: Grounding, sources: Sequence[Source], picked: list[int]) -> Grounding:
    new_index = {old: new for new, old in enumerate(picked)}
    new_number = {sources[old].number: new + 1 for new, old in enumerate(picked)}
    rows = [i for i, s in enumerate(grounding.sentences) if s.source in new_index]
    return Grounding(
        sentences=[
            Sentence(new_index[grounding.sentences[i].source], grounding.sentences[i].text)
            for i in rows
        ],
        vectors=grounding.vectors[rows] if grounding.vectors is not None else None,
        scores=[grounding.scores[i] for i in rows] if grounding.scores else [],
        support=[
            replace(s, number=new_number[s.number])
            for s in grounding.support
            if s.number in new_number
        ],
        best=grounding.best,
    )
