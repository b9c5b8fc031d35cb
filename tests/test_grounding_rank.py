"""The quote prefers the passages retrieval ranked first: a sentence further down that merely
reads a little closer to the question does not win over the top passage's own answer. The
rank decides close calls only, and never the abstention score."""

from __future__ import annotations

import pytest

from onebox.documents.search import grounding
from onebox.documents.search.grounding import ground
from onebox.documents.search.retrieval import Source
from onebox.embeddings.local import SentenceTransformerEmbedder
from tests.test_grounding import anyio_backend, embedder  # noqa: F401 - module-scoped fixtures

pytestmark = pytest.mark.anyio

QUESTION = "Where should a value go so that a sorted list stays sorted, after any equal entries?"
BISECT_RIGHT = (
    "Return the index where to insert item x in list a, assuming a is sorted. The return "
    "value i is such that all e in a[:i] have e <= x, and all e in a[i:] have e > x. So if x "
    "already appears in the list, a.insert(i, x) will insert just after the rightmost x."
)
INSORT = (
    "Insert item x in list a, and keep it sorted assuming a is sorted. This is equivalent "
    "to a.insert(bisect.bisect_right(a, x, lo, hi), x)."
)
KETTLE = "Descale the kettle every four weeks with white vinegar. Rinse it twice afterwards."


def _ranked(*passages: tuple[str, str]) -> list[Source]:
    return [
        Source(
            number=n,
            chunk_id=f"c{n}",
            document_id=f"d{n}",
            collection_id="k",
            document=f"{heading}.md",
            page=None,
            heading=heading,
            text=text,
            snippet=text[:80],
            score=1.0 / n,
        )
        for n, (text, heading) in enumerate(passages, 1)
    ]


async def test_the_quote_comes_from_the_top_passage_over_one_further_down(
    embedder: SentenceTransformerEmbedder,  # noqa: F811 - the fixture imported above
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    right_first = _ranked(
        (BISECT_RIGHT, "Searching sorted lists"),
        (KETTLE, "Kettle care"),
        (INSORT, "Inserting into sorted lists"),
    )
    found = await ground(embedder, QUESTION, right_first)
    assert found.support[0].number == 1
    assert found.support[0].text in BISECT_RIGHT

    # Without the rank's weight the third passage's sentence wins: the case is a real one.
    monkeypatch.setattr(grounding, "RANK_WEIGHT", 0.0)
    unranked = await ground(embedder, QUESTION, right_first)
    assert unranked.support[0].number == 3
    assert unranked.best == pytest.approx(found.best)  # abstention reads the same score


async def test_the_rank_decides_close_calls_only(
    embedder: SentenceTransformerEmbedder,  # noqa: F811 - the fixture imported above
) -> None:
    insort_first = _ranked(
        (INSORT, "Inserting into sorted lists"),
        (KETTLE, "Kettle care"),
        (BISECT_RIGHT, "Searching sorted lists"),
    )
    assert (await ground(embedder, QUESTION, insort_first)).support[0].number == 1
    # A far better sentence still wins from the last place.
    kettle_first = _ranked((KETTLE, "Kettle care"), (INSORT, "Inserting into sorted lists"))
    assert (await ground(embedder, QUESTION, kettle_first)).support[0].number == 2


TOKEN_URLSAFE = (
    "## secrets.token_urlsafe()\n\nReturn a random URL-safe text string of random bytes for a "
    "token, in Base64 encoding. The string has nbytes random bytes, so a password-reset link "
    "token is hard to guess. Each byte is about 1.3 characters once encoded."
)
SECRETS = (
    "The secrets module generates cryptographically strong random numbers suitable for "
    "managing secrets such as account authentication, tokens and similar."
)


async def test_no_quote_repeats_another(
    embedder: SentenceTransformerEmbedder,  # noqa: F811 - the fixture imported above
) -> None:
    """A second sentence of the passage the first quote comes from reaches back to the same
    section opening: quoted, it would repeat the first quote; the next candidate goes."""
    sources = _ranked(
        (TOKEN_URLSAFE, "secrets \u203a secrets.token_urlsafe()"), (SECRETS, "secrets")
    )
    found = await ground(embedder, "random URL-safe string bytes password-reset token", sources)
    quotes = [quote.text for quote in found.support]
    assert quotes
    assert not any(a in b for a in quotes for b in quotes if a is not b), quotes


def test_a_second_quote_needs_to_score_close_to_the_first() -> None:
    """Scores as ``ground`` leaves them (the rank's weight is added when choosing): a second
    sentence within ``SUPPORT_RELATIVE`` of the first is quoted too, one further off is not,
    and never more than ``SUPPORT_MAX``."""
    sources = _ranked((KETTLE, "Kettle care"), (INSORT, "Inserting into sorted lists"))
    sentences = [
        grounding.Sentence(0, "Descale the kettle every four weeks with white vinegar."),
        grounding.Sentence(1, "Insert item x in list a, and keep it sorted assuming a is sorted."),
        grounding.Sentence(0, "Rinse it twice afterwards."),
    ]
    first = 0.9  # chosen: 0.9 + RANK_WEIGHT
    top = first + grounding.RANK_WEIGHT

    def quotes(second: float, third: float = 0.0) -> list[int]:
        scores = [first, second, third]
        found = grounding.Grounding(sentences=sentences, scores=scores)
        return [q.number for q in grounding.choose_support(sources, found)]

    weight_2 = grounding.RANK_WEIGHT / 2  # the second passage's share of the weight
    near = 0.84 * top - weight_2  # within 0.8 of the first, though not within 0.9
    assert quotes(near) == [1, 2]
    assert quotes(0.78 * top - weight_2) == [1]
    assert quotes(near, third=first) == [1, 1]  # two quotes at most
    assert grounding.SUPPORT_MAX == 2
