"""Grounding with the real MiniLM embedder: the quoted support, post-hoc attribution of
answer sentences, abstention scores and the passage budget for slow local models."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

import pytest

from onebox.documents.search.answering import passage_budget, with_sources
from onebox.documents.search.grounding import (
    CALIBRATED_THRESHOLD,
    attribute,
    budget_passages,
    fit_passages,
    ground,
    sources_with_links,
    split_sentences,
    support_out,
)
from onebox.documents.search.retrieval import Source
from onebox.embeddings.local import SentenceTransformerEmbedder
from onebox.llm.base import ChatMessage
from onebox.llm.prefill import PrefillSpeeds

pytestmark = pytest.mark.anyio

RETENTION = (
    "Backups run every night at 02:00. Deleted backups are kept for a retention period of "
    "28 days, after which they are purged for good. Restores can be requested from the "
    "admin console. The console also lists the storage used by each project."
)
KETTLE = (
    "The kettle boils one litre in about four minutes. Descale it monthly with citric acid. "
    "The warranty covers the heating plate for two years from the date of purchase."
)
FERRY = (
    "The harbour has three piers. The night ferry leaves at 23:40 from pier four and "
    "arrives at dawn. Tickets are sold on board."
)


def _source(number: int, text: str, document: str = "doc.md") -> Source:
    return Source(
        number=number, chunk_id=f"c{number}", document_id=f"d{number}", collection_id="k",
        document=document, page=None, heading="", text=text, snippet=text[:80], score=0.5,
    )  # fmt: skip


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def embedder() -> AsyncIterator[SentenceTransformerEmbedder]:
    model = SentenceTransformerEmbedder(name="all-MiniLM-L6-v2", max_batch=16)
    await model.start()
    yield model
    await model.close()


SOURCES = [
    _source(1, KETTLE, "kettle.md"),
    _source(2, RETENTION, "backups.md"),
    _source(3, FERRY, "harbour.md"),
]


def test_sentences_split_on_ends_blank_lines_and_list_items() -> None:
    text = "First one. Second one!\n\n# Heading\n- item a\n- item b\n\nv1.2 stays whole."
    assert split_sentences(text) == [
        "First one.", "Second one!", "Heading", "item a", "item b", "v1.2 stays whole.",
    ]  # fmt: skip
    assert all(len(s) <= 400 for s in split_sentences("word " * 500))


async def test_support_is_the_sentence_that_answers(embedder: SentenceTransformerEmbedder) -> None:
    grounding = await ground(embedder, "How long are deleted backups kept?", SOURCES)
    quotes = support_out(grounding, SOURCES)
    assert quotes[0]["number"] == 2
    assert "28 days" in quotes[0]["quote"]
    assert quotes[0]["document"] == "backups.md"
    assert len(quotes) <= 2
    ferry = await ground(embedder, "When does the night ferry leave?", SOURCES)
    assert "23:40" in ferry.support[0].text


async def test_the_heading_tells_apart_passages_that_read_alike(
    embedder: SentenceTransformerEmbedder,
) -> None:
    text = "It leaves at 23:40 from pier four and arrives at dawn. Tickets are sold on board."
    sources = [
        replace(_source(1, text, "harbour.md"), heading="Harbour \u203a Cargo barge"),
        replace(_source(2, text, "harbour.md"), heading="Harbour \u203a Night ferry"),
    ]
    grounding = await ground(embedder, "When does the night ferry leave?", sources)
    assert grounding.support[0].number == 2
    assert "23:40" in grounding.support[0].text
    assert grounding.passage_scores[1] > grounding.passage_scores[0]


async def test_an_unrelated_question_scores_lower(embedder: SentenceTransformerEmbedder) -> None:
    related = await ground(embedder, "What does the kettle warranty cover?", SOURCES)
    unrelated = await ground(embedder, "Who won the football world cup in 2014?", SOURCES)
    assert unrelated.best < related.best
    assert unrelated.best < CALIBRATED_THRESHOLD <= related.best


async def test_attribution_links_each_sentence_to_its_passage(
    embedder: SentenceTransformerEmbedder,
) -> None:
    grounding = await ground(embedder, "How long are deleted backups kept?", SOURCES)
    answer = (
        "Deleted backups are kept for 28 days before they are purged. "
        "The kettle's heating plate has a two-year warranty. "
        "I hope this helps you!"
    )
    links = await attribute(embedder, answer, SOURCES, grounding)
    assert [(link.number, link.sentence[:14]) for link in links] == [
        (2, "Deleted backup"),
        (1, "The kettle's h"),
    ]
    stored = sources_with_links(SOURCES, links, grounding, abstained=False)
    assert [s["used"] for s in stored] == [True, True, False]
    assert stored[1]["sentences"] == [
        "Deleted backups are kept for 28 days before they are purged."
    ]
    assert "28 days" in stored[1]["support"]
    assert "support" not in stored[0]


async def test_markers_count_and_abstaining_marks_nothing(
    embedder: SentenceTransformerEmbedder,
) -> None:
    grounding = await ground(embedder, "When does the ferry leave?", SOURCES)
    links = await attribute(embedder, "See the timetable [3].", SOURCES, grounding)
    assert [link.number for link in links] == [3]
    nothing = sources_with_links(SOURCES, links, grounding, abstained=True)
    assert not any(s["used"] for s in nothing)
    assert await attribute(embedder, "Sure.", SOURCES, grounding) == []


async def test_slow_models_read_trimmed_passages(embedder: SentenceTransformerEmbedder) -> None:
    long_text = " ".join(f"Filler sentence number {i} talks about nothing much." for i in range(40))
    sources = [
        _source(1, long_text + " " + RETENTION + " " + long_text, "backups.md"),
        _source(2, KETTLE),
        _source(3, FERRY),
    ]
    grounding = await ground(embedder, "How long are deleted backups kept?", sources)
    kept, narrowed = budget_passages(sources, grounding, 150)
    assert kept[0].document == "backups.md"
    assert kept[0].number == 1
    assert "28 days" in kept[0].text
    assert sum(len(s.text) for s in kept) < 1000
    assert [s.number for s in narrowed.support] == [1]
    whole, same = budget_passages(sources, grounding, None)
    assert whole == sources
    assert same is grounding


async def test_the_budget_keeps_the_retrieval_order_and_fills_the_first_passage(
    embedder: SentenceTransformerEmbedder,
) -> None:
    # The rerank put the kettle first; the backups passage reads closer to the question
    # sentence by sentence, yet the model still reads the passages in the retrieval's order.
    long_kettle = " ".join([KETTLE] * 6)
    sources = [_source(1, long_kettle, "kettle.md"), _source(2, RETENTION, "backups.md")]
    grounding = await ground(embedder, "How long are deleted backups kept?", sources)
    assert grounding.passage_scores[1] > grounding.passage_scores[0]
    kept, narrowed = budget_passages(sources, grounding, 200)
    assert [s.document for s in kept] == ["kettle.md"]
    # The first passage may take the whole budget (800 characters), not half of it.
    assert 600 < len(kept[0].text) <= 800
    assert {s.source for s in narrowed.sentences} == {0}
    roomy, _ = budget_passages(sources, grounding, 400)
    assert [s.document for s in roomy] == ["kettle.md", "backups.md"]
    assert [s.number for s in roomy] == [1, 2]


async def test_passages_are_dropped_until_the_rendered_prompt_fits(
    embedder: SentenceTransformerEmbedder,
) -> None:
    sources = [_source(1, RETENTION, "backups.md"), _source(2, KETTLE), _source(3, FERRY)]
    history = [ChatMessage("user", "How long are deleted backups kept?")]
    grounding = await ground(embedder, history[0].content, sources)

    def dense_tokens(messages: Sequence[ChatMessage]) -> int:
        # Code and Markdown run at about two characters a token, not the estimate's four.
        return sum(len(m.content) for m in messages) // 2

    one = dense_tokens(with_sources(history, sources[:1], style="brief"))
    allowed = one + 40  # one passage fits; budget_passages alone would add a second
    kept, narrowed = fit_passages(dense_tokens, history, sources, grounding, "brief", allowed)
    assert [s.document for s in kept] == ["backups.md"]
    assert dense_tokens(with_sources(history, kept, style="brief")) <= allowed
    assert {s.source for s in narrowed.sentences} == {0}
    assert [s.number for s in narrowed.support] == [1]
    # Too small for anything: one passage still stays.
    least, _ = fit_passages(dense_tokens, history, sources, grounding, "brief", 10)
    assert len(least) == 1
    roomy, _ = fit_passages(dense_tokens, history, sources, grounding, "brief", 10 * one)
    assert len(roomy) == 3


def test_the_budget_follows_the_measured_speed() -> None:
    speeds = PrefillSpeeds(prior=200.0)
    assert speeds.prompt_tokens_within("m", 2.0) == 400
    speeds.observe("m", 1000, 10.0)  # 100 tokens/s measured
    assert speeds.prompt_tokens_within("m", 2.0) == 200
    speeds.observe("m", 10, 10.0)  # too short a prompt to say anything
    assert speeds.tokens_per_second("m") == 100.0
    history = [ChatMessage("user", "How long are deleted backups kept?")]

    def count(messages: list[ChatMessage]) -> int:
        return sum(len(m.content) for m in messages) // 4

    sources = [_source(1, RETENTION * 10)]
    full = count(with_sources(history, sources, style="brief"))
    assert passage_budget(count, history, sources, "brief", full) is None
    budget = passage_budget(count, history, sources, "brief", full // 2)
    assert budget is not None
    assert 0 < budget < full // 2
