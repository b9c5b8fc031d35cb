"""The query embeds while a request does its database work first: the search route and the
chat turn start it before they look the collections up, and retrieval takes the vector as
it comes. An embedding nobody awaited is cancelled, and its failure never goes unheard."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from onebox.core.settings import Settings
from onebox.documents.search.retrieval import Retriever
from onebox.documents.service import DocumentService
from onebox.embeddings.base import Embedder, InputKind, Vectors
from tests.conftest import AppUnderTest
from tests.documents_helpers import create_collection, upload, wait_for_documents

pytestmark = pytest.mark.anyio

HANDBOOK = b"""# Employee handbook

## Holidays

Every employee gets twenty-seven days of paid holiday per year. Unused days carry over
until the end of March.

## Expenses

Submit receipts within thirty days through the finance portal.
"""


async def _ready_collection(api: AppUnderTest) -> str:
    collection = await create_collection(api.client)
    await upload(api.client, collection["id"], [("handbook.md", HANDBOOK)])
    await wait_for_documents(api.client, collection["id"], expected=1)
    return str(collection["id"])


def _record_order(monkeypatch: pytest.MonkeyPatch, retriever: Retriever) -> list[str]:
    events: list[str] = []
    embed_query = retriever.embed_query
    resolve = DocumentService.resolve_collections
    readable = DocumentService.readable_collection_ids

    async def embedding(query: str) -> Any:
        events.append("embedding")
        return await embed_query(query)

    async def resolving(self: DocumentService, *args: Any) -> Any:
        events.append("collections")
        return await resolve(self, *args)

    async def reading(self: DocumentService, *args: Any) -> Any:
        events.append("collections")
        return await readable(self, *args)

    monkeypatch.setattr(retriever, "embed_query", embedding)
    monkeypatch.setattr(DocumentService, "resolve_collections", resolving)
    monkeypatch.setattr(DocumentService, "readable_collection_ids", reading)
    return events


async def test_a_search_embeds_its_query_while_it_looks_the_collections_up(
    api: AppUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    collection_id = await _ready_collection(api)
    events = _record_order(monkeypatch, api.app.state.onebox.retriever)
    for mode in ("hybrid", "dense"):
        events.clear()
        found = await api.client.post(
            "/api/search",
            json={"query": "paid holiday", "collection_ids": [collection_id], "mode": mode},
        )
        assert found.status_code == 200, found.text
        assert found.json()["sources"][0]["document"] == "handbook.md"
        assert events == ["embedding", "collections"], mode  # started first, embedded once
    events.clear()
    keyword = await api.client.post(
        "/api/search",
        json={"query": "paid holiday", "collection_ids": [collection_id], "mode": "keyword"},
    )
    assert keyword.json()["sources"][0]["document"] == "handbook.md"
    assert events == ["collections"]  # a keyword search embeds nothing


async def test_a_chat_turn_embeds_its_question_while_it_reads_the_conversations_collections(
    api: AppUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    collection_id = await _ready_collection(api)
    events = _record_order(monkeypatch, api.app.state.onebox.retriever)
    conversation = (
        await api.client.post("/api/conversations", json={"collection_ids": [collection_id]})
    ).json()
    events.clear()
    response = await api.client.post(
        f"/api/conversations/{conversation['id']}/messages",
        json={"content": "How many days of paid holiday do employees get?"},
    )
    assert response.status_code == 200
    assert events[:2] == ["embedding", "collections"]
    assert events.count("embedding") == 1


async def test_the_early_vector_finds_the_same_passages(api: AppUnderTest) -> None:
    collection_id = await _ready_collection(api)
    state = api.app.state.onebox
    retriever: Retriever = state.retriever
    for mode in ("hybrid", "dense"):
        async with state.sessionmaker() as session:
            plain = await retriever.retrieve(
                session, "expenses receipts", [collection_id], mode=mode
            )
            async with retriever.query_embedding("expenses receipts", mode) as early:
                assert early is not None
                found = await retriever.retrieve(
                    session, "expenses receipts", [collection_id], mode=mode, query_vector=early
                )
        assert [(s.chunk_id, s.score) for s in found.sources] == [
            (s.chunk_id, s.score) for s in plain.sources
        ]
        assert np.allclose(found.query_vector, plain.query_vector)


async def test_a_search_the_caller_may_not_make_leaves_no_embedding_behind(
    api: AppUnderTest,
) -> None:
    refused = await api.client.post(
        "/api/search",
        json={"query": "paid holiday", "collection_ids": ["no-such-collection"]},
    )
    assert refused.status_code == 404, refused.text
    assert "collection" in refused.json()["error"]["message"].lower()
    pending = [
        task
        for task in asyncio.all_tasks()
        if "embed_query" in repr(task.get_coro()) and not task.done()
    ]
    assert pending == []


class _Failing(Embedder):
    dimension = 4

    def __init__(self, started: asyncio.Event) -> None:
        self.started = started

    async def embed(self, texts: Sequence[str], *, kind: InputKind = "document") -> Vectors:
        self.started.set()
        raise RuntimeError("the embedding server is down")


class _Slow(Embedder):
    dimension = 4

    def __init__(self) -> None:
        self.cancelled = False

    async def embed(self, texts: Sequence[str], *, kind: InputKind = "document") -> Vectors:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return np.zeros((len(texts), self.dimension), dtype=np.float32)


def _retriever(embedder: Embedder) -> Retriever:
    return Retriever(Settings(_env_file=None), embedder, None, None)  # type: ignore[arg-type]


async def test_an_embedding_nobody_awaited_is_cancelled_or_its_failure_taken() -> None:
    slow = _Slow()
    async with _retriever(slow).query_embedding("paid holiday") as pending:
        await asyncio.sleep(0)  # it starts
    assert pending is not None
    await asyncio.sleep(0)
    assert pending.cancelled()
    assert slow.cancelled

    unheard: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: unheard.append(context))
    try:
        started = asyncio.Event()
        async with _retriever(_Failing(started)).query_embedding("paid holiday") as failed:
            await started.wait()
            await asyncio.sleep(0)  # it has failed, and nobody awaits it
        assert failed is not None
        assert isinstance(failed.exception(), Exception)
        del failed
        gc.collect()
        assert unheard == []  # no "Task exception was never retrieved"
    finally:
        loop.set_exception_handler(None)

    async with _retriever(slow).query_embedding("paid holiday", "keyword") as none:
        assert none is None
    async with _retriever(slow).query_embedding("   ") as blank:
        assert blank is None


async def test_a_search_of_no_collection_hands_back_no_pending_vector() -> None:
    retriever = _retriever(_Slow())
    async with retriever.query_embedding("paid holiday") as pending:
        found = await retriever.retrieve(None, "paid holiday", [], query_vector=pending)  # type: ignore[arg-type]
    assert found.sources == []
    assert found.query_vector is None  # never the unfinished embedding
