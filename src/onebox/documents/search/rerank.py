"""Late-interaction rerank of the fused candidates (``ONEBOX_RERANK``).

MiniLM embeds a whole passage into one vector, so a passage whose answer is one sentence
among ten scores like its average, and a natural question ("how do I delete a folder with
everything in it?") often ranks it below a passage that is vaguely about the topic
throughout. The top ``ONEBOX_RERANK_CANDIDATES`` fused passages are re-scored by

    0.5 · passage cosine + 0.5 · best sentence cosine + 0.2 · term coverage

where the passage cosine is the dense side's score of the passage as indexed (title and
heading path included), the best sentence cosine is the question against each of the
passage's sentences, and the coverage is the share of the question's words the indexed text
contains. Weights and pool size were chosen on the tune half of ``bench/bench_quality.py``
(see the README's retrieval quality section). Sentence vectors come from the embedder's
cache (``sentence_vectors``, shared with the quoted support), which retrieval fills with the
vectors ingestion stored for the passages, so the model runs only for passages without them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from onebox.documents.search.sentence_vectors import (
    SentenceCache,
    cache_for,
    passage_sentences,
)
from onebox.embeddings.base import Embedder, Vectors

_TERM = re.compile(r"\w{3,}", re.UNICODE)
PASSAGE_WEIGHT = 0.5
SENTENCE_WEIGHT = 0.5
COVERAGE_WEIGHT = 0.2


def words(text: str) -> set[str]:
    """The distinct words of three letters or more, lower case."""
    if text.isascii():  # lowering first finds the same words, one call instead of one a word
        return set(_TERM.findall(text.lower()))
    return {w.lower() for w in _TERM.findall(text)}


def coverage(query: str, passage: str) -> float:
    """Share of the question's distinct words that the passage contains."""
    return _share(words(query), passage)


def _share(terms: set[str], passage: str) -> float:
    if not terms:
        return 0.0
    return len(terms & words(passage)) / len(terms)


async def rerank(
    embedder: Embedder,
    query: str,
    query_vector: Vectors,
    passages: Sequence[str],
    indexed: Sequence[str],
    similarities: Sequence[float],
    cache: SentenceCache | None = None,
) -> list[int]:
    """Indexes of ``passages`` best first. ``indexed``: each passage's indexed text (title
    and headings included); ``similarities``: its dense cosine to the question."""
    if not passages:
        return []
    split = [passage_sentences(text) for text in passages]
    flat = [s for parts in split for s in parts]
    vectors = await (cache or cache_for(embedder)).embed(embedder, flat)
    cosines = vectors @ np.asarray(query_vector, dtype=np.float32)
    terms = words(query)
    scores, at = [], 0
    for i, parts in enumerate(split):
        best = float(cosines[at : at + len(parts)].max())
        at += len(parts)
        scores.append(
            PASSAGE_WEIGHT * similarities[i]
            + SENTENCE_WEIGHT * best
            + COVERAGE_WEIGHT * _share(terms, indexed[i])
        )
    return sorted(range(len(passages)), key=lambda i: (-scores[i], i))
