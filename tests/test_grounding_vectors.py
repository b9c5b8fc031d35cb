"""How grounding gets its vectors: the retrieval's query vector is reused (same grounding as
embedding the question again), and passage sentences' vectors are remembered per embedder."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import numpy as np
import pytest

from onebox.documents.search.grounding import ground
from onebox.documents.search.retrieval import Source
from onebox.documents.search.sentence_vectors import SentenceCache, cache_for
from onebox.embeddings.base import Embedder, InputKind, Vectors
from onebox.embeddings.local import SentenceTransformerEmbedder

pytestmark = pytest.mark.anyio

PASSAGES = (
    "Backups run every night at 02:00. Deleted backups are kept for a retention period of "
    "28 days, after which they are purged for good. Restores can be requested from the "
    "admin console.",
    "The kettle boils one litre in about four minutes. Descale it monthly with citric acid. "
    "The warranty covers the heating plate for two years from the date of purchase.",
    "The harbour has three piers. The night ferry leaves at 23:40 from pier four and "
    "arrives at dawn. Tickets are sold on board.",
)


class Counting(Embedder):
    """The real model, recording what it is asked to embed."""

    def __init__(self, inner: SentenceTransformerEmbedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.calls: list[tuple[InputKind, list[str]]] = []

    async def embed(self, texts: Sequence[str], *, kind: InputKind = "document") -> Vectors:
        self.calls.append((kind, list(texts)))
        return await self.inner.embed(texts, kind=kind)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def model() -> AsyncIterator[SentenceTransformerEmbedder]:
    embedder = SentenceTransformerEmbedder(name="all-MiniLM-L6-v2")
    await embedder.start()
    yield embedder
    await embedder.close()


def _sources(texts: Sequence[str]) -> list[Source]:
    return [
        Source(
            number=i + 1,
            chunk_id=f"c{i}",
            document_id=f"d{i}",
            collection_id="k",
            document=f"doc{i}.md",
            page=None,
            heading="",
            text=text,
            snippet=text[:80],
            score=0.5,
        )
        for i, text in enumerate(texts)
    ]


async def test_the_retrieval_vector_gives_the_same_grounding(
    model: SentenceTransformerEmbedder,
) -> None:
    question = "How long are deleted backups kept?"
    sources = _sources(PASSAGES)
    embedded = Counting(model)
    again = await ground(embedded, question, sources)
    assert [kind for kind, _ in embedded.calls] == ["query", "document"]

    vector = (await model.embed([question], kind="query"))[0]
    reused = Counting(model)
    given = await ground(reused, question, sources, query_vector=vector)
    assert [kind for kind, _ in reused.calls] == ["document"]  # the question is not re-embedded
    assert given.support == again.support
    assert given.best == pytest.approx(again.best, abs=1e-6)
    assert np.allclose(given.scores, again.scores, atol=1e-6)
    assert given.passage_scores == pytest.approx(again.passage_scores, abs=1e-6)
    assert "28 days" in given.support[0].text


async def test_sentence_vectors_are_remembered_per_embedder(
    model: SentenceTransformerEmbedder,
) -> None:
    embedded = Counting(model)
    first = await ground(embedded, "When does the night ferry leave?", _sources(PASSAGES[1:]))
    sent = [texts for kind, texts in embedded.calls if kind == "document"]
    assert len(sent) == 1
    # The sentences, and each passage's heading (here its document's name) scored with them.
    assert sent[0] == [s.text for s in first.sentences] + ["doc0.md", "doc1.md"]

    embedded.calls.clear()
    # Another question over one passage already seen and one new: only the new one's
    # sentences go to the model, and the remembered rows equal fresh ones.
    second = await ground(embedded, "How long are backups kept?", _sources(PASSAGES[:2]))
    sent = [texts for kind, texts in embedded.calls if kind == "document"]
    assert len(sent) == 1
    assert set(sent[0]) == {s.text for s in second.sentences if s.source == 0}
    assert second.vectors is not None
    fresh = await model.embed([s.text for s in second.sentences])
    assert float(np.min(np.sum(second.vectors * fresh, axis=1))) > 0.99999
    assert cache_for(embedded) is not cache_for(Counting(model))  # never shared across models


async def test_the_cache_is_bounded_and_keeps_duplicates_in_place(
    model: SentenceTransformerEmbedder,
) -> None:
    cache = SentenceCache(size=3)
    embedded = Counting(model)
    rows = await cache.embed(embedded, ["alpha one", "beta two", "alpha one", "gamma three"])
    assert embedded.calls == [("document", ["alpha one", "beta two", "gamma three"])]
    assert np.array_equal(rows[0], rows[2])
    assert not np.array_equal(rows[0], rows[1])
    assert len(cache) == 3
    await cache.embed(embedded, ["delta four"])  # evicts the least recently used
    assert len(cache) == 3
    embedded.calls.clear()
    await cache.embed(embedded, ["alpha one", "delta four"])
    assert embedded.calls == [("document", ["alpha one"])]
    assert (await cache.embed(embedded, [])).shape == (0, model.dimension)
