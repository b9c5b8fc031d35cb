"""Sentence vectors stored at ingestion: a follow-up job embeds every text the query path
will ask for and stores it with the chunk, so the rerank and the quoted support of a search
or an answer need no sentence embedded at question time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import delete, select, update

from onebox.core.settings import Settings
from onebox.documents.ingestion.indexing import HEADING_JOINER
from onebox.documents.ingestion.sentences import (
    RETRIES_AT_START,
    passage_calls,
    queue_missing_sentences,
    queue_sentences,
)
from onebox.documents.models import Chunk
from onebox.documents.repository import SENTENCES_JOB, DocumentRepository
from onebox.documents.search.sentence_vectors import (
    cache_for,
    digest,
    pack,
    stored_texts,
    unpack,
)
from onebox.embeddings.base import InputKind, Vectors
from onebox.jobs.models import Job, JobStatus
from tests.conftest import AppUnderTest, api_settings
from tests.documents_helpers import create_collection, upload, wait_for_documents
from tests.sse import parse_events

pytestmark = pytest.mark.anyio

TOKEN = "sentence-store-admin-token-" + "x" * 20
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MANUAL = b"""# Boiler manual

## Pressure

Keep the boiler between one and two bar when cold. Above three bar the safety valve opens
and vents water through the overflow pipe.

## Servicing

A certified engineer services the boiler every year. The annual service checks the flue,
the seals and the expansion vessel.
"""


def test_packed_vectors_come_back_for_their_model_only() -> None:
    texts = ["First sentence here.", "Second one, a little longer than the first."]
    vectors = np.random.default_rng(1).standard_normal((2, 8)).astype(np.float32)
    blob = pack("all-MiniLM-L6-v2", texts, vectors)
    found = unpack(blob, "all-MiniLM-L6-v2")
    assert found is not None
    digests, rows = found
    assert digests == [digest(t) for t in texts]
    assert np.allclose(rows, vectors, atol=1e-2)  # float16
    assert unpack(blob, "another-model") is None
    assert unpack(blob[:-1], "all-MiniLM-L6-v2") is None
    assert unpack(b"not packed", "all-MiniLM-L6-v2") is None
    with pytest.raises(ValueError, match="one vector per text"):
        pack("m", texts, vectors[:1])


def test_stored_texts_cover_the_rerank_the_support_and_the_heading() -> None:
    text = "Keep it between one and two bar. Above three bar the valve opens."
    texts = stored_texts(text, f"Boiler manual{HEADING_JOINER}Pressure", "manual.md")
    assert texts == [
        "Keep it between one and two bar.",
        "Above three bar the valve opens.",
        f"Boiler manual{HEADING_JOINER}Pressure: Keep it between one and two bar.",
        f"Boiler manual{HEADING_JOINER}Pressure: Above three bar the valve opens.",
        f"Boiler manual{HEADING_JOINER}Pressure",
    ]
    # No heading: the support's sentences are the rerank's; the document's name stands in.
    assert stored_texts(text, "", "manual.md") == [
        "Keep it between one and two bar.",
        "Above three bar the valve opens.",
        "manual.md",
    ]


def test_the_job_embeds_whole_passages_in_large_calls() -> None:
    pending = [
        (f"c{n}", [f"s{n}.{k}" for k in range(size)]) for n, size in enumerate([3, 4, 9, 2, 1])
    ]
    calls = list(passage_calls(pending, size=8))
    # Whole passages, never over the size unless one passage alone is; nothing lost or repeated.
    assert [[chunk_id for chunk_id, _ in call] for call in calls] == [
        ["c0", "c1"],
        ["c2"],
        ["c3", "c4"],
    ]
    assert [item for call in calls for item in call] == pending
    assert list(passage_calls([], size=8)) == []


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return api_settings(tmp_path, database_url, api_token=TOKEN, rerank=True)


async def _stored_chunks(api: AppUnderTest, within: float = 60) -> list[Chunk]:
    sessionmaker = api.app.state.onebox.sessionmaker
    deadline = time.monotonic() + within
    while True:
        async with sessionmaker() as session:
            jobs = list(await session.scalars(select(Job).where(Job.kind == SENTENCES_JOB)))
            if jobs and all(job.status == JobStatus.DONE for job in jobs):
                chunks = await session.scalars(
                    select(Chunk).execution_options(populate_existing=True)
                )
                loaded = list(chunks)
                for chunk in loaded:
                    await session.refresh(chunk, ["sentences"])
                return loaded
        assert time.monotonic() < deadline, [(j.status, j.error) for j in jobs]
        await asyncio.sleep(0.1)


async def test_searches_and_answers_embed_no_sentence_once_the_job_ran(
    api: AppUnderTest,
) -> None:
    embedder = api.app.state.onebox.embedder
    collection = await create_collection(api.client, "boiler", headers=AUTH)
    await upload(api.client, collection["id"], [("manual.md", MANUAL)], headers=AUTH)
    await wait_for_documents(api.client, collection["id"], expected=1)
    chunks = await _stored_chunks(api)
    assert chunks
    for chunk in chunks:
        assert chunk.sentences is not None
        found = unpack(chunk.sentences, embedder.name)
        assert found is not None
        assert found[0] == [
            digest(t)
            for t in stored_texts(chunk.text, HEADING_JOINER.join(chunk.heading_path), "manual.md")
        ]
    # A fresh process would know nothing: only what retrieval reads from the chunks.
    cache_for(embedder).clear()
    calls: list[tuple[InputKind, list[str]]] = []
    original = embedder.embed

    async def spy(texts: Sequence[str], *, kind: InputKind = "document") -> Vectors:
        calls.append((kind, list(texts)))
        return await original(texts, kind=kind)

    embedder.embed = spy
    try:
        response = await api.client.post(
            "/api/search",
            json={"query": "When does the safety valve vent water?", "mode": "hybrid",
                  "collection_ids": [collection["id"]]},
            headers=AUTH,
        )  # fmt: skip
        assert response.status_code == 200, response.text
        assert response.json()["sources"][0]["heading"].endswith("Pressure")
        assert calls == [("query", ["When does the safety valve vent water?"])]
        calls.clear()
        conversation = (
            await api.client.post(
                "/api/conversations", json={"collection_ids": [collection["id"]]}, headers=AUTH
            )
        ).json()
        reply = await api.client.post(
            f"/api/conversations/{conversation['id']}/messages",
            json={"content": "How often is the boiler serviced?"},
            headers=AUTH,
        )
        assert reply.status_code == 200, reply.text
        events = parse_events(reply.text)
        support: dict[str, Any] = next(e.data for e in events if e.name == "support")
        assert "every year" in support["support"][0]["quote"]
    finally:
        embedder.embed = original
    # The question, and the reply's own sentences for attribution; none of the support's
    # texts (a sentence under its heading, the heading).
    assert [kind for kind, _ in calls].count("query") == 1, calls
    supports = {
        t
        for chunk in chunks
        for t in stored_texts(chunk.text, HEADING_JOINER.join(chunk.heading_path), "manual.md")
        if HEADING_JOINER in t
    }
    assert supports
    assert not [t for _, texts in calls for t in texts if t in supports], calls


async def _ingested_without_vectors(api: AppUnderTest) -> str:
    """One document ingested, then as an install upgraded from before the sentence job:
    no vectors, no job. Its id."""
    collection = await create_collection(api.client, "boiler", headers=AUTH)
    await upload(api.client, collection["id"], [("manual.md", MANUAL)], headers=AUTH)
    await wait_for_documents(api.client, collection["id"], expected=1)
    chunks = await _stored_chunks(api)
    async with api.app.state.onebox.sessionmaker() as session:
        await session.execute(update(Chunk).values(sentences=None))
        await session.execute(delete(Job).where(Job.kind == SENTENCES_JOB))
        await session.commit()
    return chunks[0].document_id


async def test_documents_ingested_before_the_job_existed_get_it_at_start(
    api: AppUnderTest,
) -> None:
    state = api.app.state.onebox
    await _ingested_without_vectors(api)
    assert await queue_missing_sentences(state.sessionmaker, state.settings) == 1
    assert await queue_missing_sentences(state.sessionmaker, state.settings) == 0  # waiting
    chunks = await _stored_chunks(api)
    assert all(chunk.sentences for chunk in chunks)
    assert await queue_missing_sentences(state.sessionmaker, state.settings) == 0


async def test_a_document_the_job_keeps_failing_on_is_not_queued_at_every_start(
    api: AppUnderTest,
) -> None:
    state = api.app.state.onebox
    document_id = await _ingested_without_vectors(api)
    for failures in range(RETRIES_AT_START + 1):
        # At each count of jobs failed for good, would a start queue another?
        async with state.sessionmaker() as session:
            wanted = await DocumentRepository(session).documents_missing_sentences(
                max_failed=RETRIES_AT_START
            )
            assert wanted == ([document_id] if failures < RETRIES_AT_START else []), failures
            # One more failed job, written failed in the transaction that adds it (the
            # in-process worker never sees it queued).
            await queue_sentences(session, document_id, state.settings)
            await session.flush()
            await session.execute(
                update(Job)
                .where(Job.kind == SENTENCES_JOB, Job.status == JobStatus.QUEUED)
                .values(status=JobStatus.FAILED, error="the embedder refused it")
            )
            await session.commit()
    assert await queue_missing_sentences(state.sessionmaker, state.settings) == 0
