"""The optional rerank pass: relevance from fresh embeddings and term coverage, then a
diverse pick, with the real embedding model."""

from __future__ import annotations

import numpy as np
import pytest

from onebox.core.settings import Settings
from onebox.documents.search.rerank import coverage, rerank, select
from onebox.embeddings.factory import build_embedder

pytestmark = pytest.mark.anyio


def test_coverage_counts_distinct_question_words() -> None:
    assert coverage("boiler room key", "The KEY to the boiler room hangs here") == 1.0
    assert coverage("boiler room key", "nothing relevant") == 0.0
    assert coverage("a b", "anything") == 0.0  # no word of three letters or more


def test_select_skips_near_duplicates() -> None:
    vectors = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    assert select([0.9, 0.89, 0.6], vectors, 2, diversity=0.5) == [0, 2]
    assert select([0.9, 0.89, 0.6], vectors, 2, diversity=0.0) == [0, 1]


async def test_rerank_puts_the_answering_passage_first(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import httpx

    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    async with httpx.AsyncClient() as http:
        embedder = build_embedder(settings, http)
        await embedder.start()
        question = "When does the night ferry to the island leave?"
        passages = [
            "The museum opens at nine and closes at five.",
            "The night ferry to the island leaves the harbour at 23:40 every day.",
            "The night ferry to the island leaves the harbour at 23:40 every day!",
            "Parking near the harbour costs two euros an hour.",
        ]
        query = (await embedder.embed([question], kind="query"))[0]
        order = await rerank(embedder, question, query, passages, 2)
        await embedder.close()
    assert order[0] in (1, 2)
    assert len(order) == 2
