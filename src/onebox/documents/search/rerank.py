"""Late-interaction rerank of the fused candidates (``ONEBOX_RERANK``, on by default).

MiniLM embeds a whole passage into one vector, so a passage whose answer is one sentence
among ten scores like its average, and a natural question ("how do I delete a folder with
everything in it?") often ranks it below a passage that is vaguely about the topic
throughout. The top ``ONEBOX_RERANK_CANDIDATES`` fused passages are re-scored by

    0.5 · passage cosine + 0.5 · best sentence cosine + 0.2 · term coverage

where the passage cosine is the dense side's score of the passage as indexed (title and
heading path included), the best sentence cosine is the question against each of the
passage's sentences, and the coverage is the share of the question's words the indexed text
contains. Weights and pool size were chosen on the tune half of ``bench/bench_quality.py``
(see the README's retrieval quality section). Sentence vectors are cached in-process by
text, so a passage that keeps being retrieved is embedded once.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from onebox.embeddings.base import Embedder, Vectors

_TERM = re.compile(r"\w{3,}", re.UNICODE)
# Sentence ends, blank lines and list items; the same cut grounding.py quotes from.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n\s*\n|\n(?=\s*[-*#•]|\s*\d+[.)])")
MAX_SENTENCE_CHARS = 400
PASSAGE_WEIGHT = 0.5
SENTENCE_WEIGHT = 0.5
COVERAGE_WEIGHT = 0.2
CACHE_SENTENCES = 20_000  # ~30 MB of 384-dimension vectors


def coverage(query: str, passage: str) -> float:
    """Share of the question's distinct words that the passage contains."""
    terms = {t.lower() for t in _TERM.findall(query)}
    if not terms:
        return 0.0
    words = {w.lower() for w in _TERM.findall(passage)}
    return len(terms & words) / len(terms)


def sentences(text: str) -> list[str]:
    """A passage's sentences (or list items), whitespace folded; an unpunctuated run is cut
    at a space so no piece outgrows the encoder."""
    out = []
    for part in _SENTENCE_END.split(text):
        flat = " ".join(part.split()).lstrip("#>*-• ").strip()
        while len(flat) > MAX_SENTENCE_CHARS:
            cut = flat.rfind(" ", 0, MAX_SENTENCE_CHARS)
            cut = cut if cut > MAX_SENTENCE_CHARS // 2 else MAX_SENTENCE_CHARS
            out.append(flat[:cut])
            flat = flat[cut:].strip()
        if flat:
            out.append(flat)
    return out


class SentenceCache:
    """Sentence text → unit vector, least recently used dropped first."""

    def __init__(self, size: int = CACHE_SENTENCES) -> None:
        self.size = size
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()

    async def vectors(self, embedder: Embedder, texts: Sequence[str]) -> Vectors:
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            fresh = await embedder.embed(missing, kind="document")
            for text, vector in zip(missing, fresh, strict=True):
                self._vectors[text] = vector
        for text in texts:
            self._vectors.move_to_end(text)
        out = np.stack([self._vectors[t] for t in texts]).astype(np.float32)
        while len(self._vectors) > self.size:
            self._vectors.popitem(last=False)
        return out


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
    split = [sentences(text) or [" ".join(text.split())] for text in passages]
    flat = [s for parts in split for s in parts]
    vectors = await (cache or SentenceCache()).vectors(embedder, flat)
    cosines = vectors @ np.asarray(query_vector, dtype=np.float32)
    scores, at = [], 0
    for i, parts in enumerate(split):
        best = float(cosines[at : at + len(parts)].max())
        at += len(parts)
        scores.append(
            PASSAGE_WEIGHT * similarities[i]
            + SENTENCE_WEIGHT * best
            + COVERAGE_WEIGHT * coverage(query, indexed[i])
        )
    return sorted(range(len(passages)), key=lambda i: (-scores[i], i))
