"""Jobs claimed together (JobGroup) and the embedding batches they share."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from onebox.core.settings import Settings
from onebox.embeddings.base import Embedder, EmbeddingError, InputKind, Vectors
from onebox.embeddings.batching import CoalescingEmbedder
from onebox.jobs import registry
from onebox.jobs.base import JobGroup, JobServices
from onebox.jobs.models import JobStatus
from onebox.jobs.runner import run_next
from onebox.jobs.standalone import open_job_services
from tests.documents_helpers import create_collection, upload, wait_for_documents
from tests.test_jobs import add_job, load, marker_lines, tuned

pytestmark = pytest.mark.anyio


class CountingEmbedder(Embedder):
    """Hash-seeded unit vectors; records each call's texts. A text containing "poison"
    makes the whole call fail."""

    name = "counting"
    dimension = 8

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def embed(self, texts: Sequence[str], *, kind: InputKind = "document") -> Vectors:
        await asyncio.sleep(0)
        self.calls.append(list(texts))
        if any("poison" in text for text in texts):
            raise EmbeddingError("poisoned batch")
        return np.asarray([vector(text) for text in texts], dtype=np.float32)


def vector(text: str) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
    row = np.random.default_rng(seed).normal(size=CountingEmbedder.dimension)
    return list(row / np.linalg.norm(row))


async def test_callers_waiting_together_share_one_encoder_call() -> None:
    inner = CountingEmbedder()
    shared = CoalescingEmbedder(inner, lambda: 3, max_batch=64)
    texts = [["a1", "a2"], ["b1"], ["c1", "c2", "c3"]]
    results = await asyncio.gather(*(shared.embed(t) for t in texts))
    assert len(inner.calls) == 1
    assert sorted(inner.calls[0]) == sorted(t for group in texts for t in group)
    for group, rows in zip(texts, results, strict=True):
        np.testing.assert_allclose(rows, np.asarray([vector(t) for t in group]), rtol=1e-6)


async def test_a_finished_caller_is_not_waited_for_and_a_full_batch_goes_at_once() -> None:
    inner = CountingEmbedder()
    group = JobGroup()
    for job_id in ("job-1", "job-2", "job-3"):
        group.join(job_id)
    shared = CoalescingEmbedder(inner, lambda: group.active, max_batch=4)
    group.on_change(shared.wake)
    first = asyncio.ensure_future(shared.embed(["x"]))
    await asyncio.sleep(0.01)
    assert not first.done()  # two others may still ask
    group.release("job-2")
    second = asyncio.ensure_future(shared.embed(["y"]))
    assert (await first).shape == (1, 8)
    assert (await second).shape == (1, 8)
    assert len(inner.calls) == 1

    big = await asyncio.wait_for(shared.embed(["1", "2", "3", "4"]), 5)  # a full batch
    assert big.shape == (4, 8)


async def test_members_that_left_before_the_batching_began_are_not_waited_for() -> None:
    group = JobGroup()
    for job_id in ("slow", "late"):
        group.join(job_id)
    group.leave("slow")  # ended (a failed download) before anything was embedded
    inner = CountingEmbedder()
    shared = CoalescingEmbedder(inner, lambda: group.active, max_batch=64)
    group.on_change(shared.wake)
    rows = await asyncio.wait_for(shared.embed(["only passage"]), 5)
    assert rows.shape == (1, 8)


async def test_calls_are_packed_to_one_encoder_batch() -> None:
    inner = CountingEmbedder()
    group = JobGroup()
    shared = CoalescingEmbedder(inner, lambda: group.active, max_batch=64)
    group.on_change(shared.wake)

    async def member(number: int, size: int) -> Vectors:
        group.join(f"job-{number}")
        try:
            return await shared.embed([f"r{number}-{i}" for i in range(size)])
        finally:
            group.release(f"job-{number}")  # as ingestion does once it has its vectors

    sizes = (60, 10, 4)
    results = await asyncio.wait_for(
        asyncio.gather(*(member(n, size) for n, size in enumerate(sizes))), 10
    )
    assert [len(call) for call in inner.calls] == [64, 10]  # 60 + 4, then the 10
    assert [rows.shape[0] for rows in results] == list(sizes)
    np.testing.assert_allclose(results[1][3], vector("r1-3"), rtol=1e-6)


async def test_a_batch_holds_texts_of_similar_length_and_the_oldest_text() -> None:
    # The encoder pads a batch to its longest text: long with long, short with short.
    inner = CountingEmbedder()
    shared = CoalescingEmbedder(inner, lambda: 2, max_batch=2)
    long_a, short_b, long_c, short_d = "a" * 50, "b", "c" * 49, "dd"
    first, second = await asyncio.wait_for(
        asyncio.gather(shared.embed([long_a, short_b]), shared.embed([long_c, short_d])), 5
    )
    assert [sorted(call) for call in inner.calls] == [[long_a, long_c], [short_b, short_d]]
    np.testing.assert_allclose(first, np.asarray([vector(long_a), vector(short_b)]), rtol=1e-6)
    np.testing.assert_allclose(second, np.asarray([vector(long_c), vector(short_d)]), rtol=1e-6)


async def test_the_oldest_text_goes_in_the_next_batch_whatever_its_length() -> None:
    inner = CountingEmbedder()
    shared = CoalescingEmbedder(inner, lambda: 2, max_batch=2)
    tiny, longs = "t", ["x" * 40, "y" * 41, "z" * 42]
    await asyncio.wait_for(asyncio.gather(shared.embed([tiny]), shared.embed(longs)), 5)
    assert tiny in inner.calls[0]


async def test_a_failing_request_fails_alone() -> None:
    inner = CountingEmbedder()
    shared = CoalescingEmbedder(inner, lambda: 2, max_batch=64)
    good, bad = await asyncio.gather(
        shared.embed(["fine text"]), shared.embed(["poison pill"]), return_exceptions=True
    )
    assert isinstance(bad, EmbeddingError)
    assert isinstance(good, np.ndarray)
    assert good.shape == (1, 8)


async def test_queries_bypass_the_batching() -> None:
    inner = CountingEmbedder()
    shared = CoalescingEmbedder(inner, lambda: 1, max_batch=64)
    rows = await asyncio.wait_for(shared.embed(["query"], kind="query"), 5)
    assert rows.shape == (1, 8)


@pytest.fixture
async def services(tmp_path: Path, database_url: str) -> AsyncIterator[JobServices]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        database_url=database_url,
        job_retry_base_seconds=0.1,
        job_lease_seconds=5.0,
    )
    async with open_job_services(settings) as built:
        yield built


@pytest.fixture
def groupable_record(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "GROUPABLE", {"testing.record"})
    from onebox.jobs import runner

    monkeypatch.setattr(runner, "GROUPABLE", {"testing.record"})


@pytest.mark.usefixtures("groupable_record")
async def test_one_claim_runs_the_queued_jobs_of_a_groupable_kind_topping_up(
    services: JobServices, tmp_path: Path
) -> None:
    marker = tmp_path / "ran.jsonl"
    ids = [await add_job(services, "testing.record", {"marker": str(marker)}) for _ in range(5)]
    other = await add_job(services, "testing.sleep", {"seconds": 0})
    # A group of two at a time, topped up as members end: all five run in one call.
    assert await run_next(tuned(services, job_group_size=2), "grouping-test")
    assert sorted(line["job_id"] for line in marker_lines(marker)) == sorted(ids)
    for job_id in ids:
        job = await load(services, job_id)
        assert job.status == JobStatus.DONE
        assert job.attempts == 1
        assert job.worker is not None
        assert job.worker.startswith("grouping-test/")
    assert len({(await load(services, job_id)).worker for job_id in ids}) == len(ids)
    assert (await load(services, other)).status == JobStatus.QUEUED  # another kind waits


@pytest.mark.usefixtures("groupable_record")
async def test_group_size_one_runs_one_job(services: JobServices, tmp_path: Path) -> None:
    marker = tmp_path / "ran.jsonl"
    for _ in range(3):
        await add_job(services, "testing.record", {"marker": str(marker)})
    assert await run_next(tuned(services, job_group_size=1), "grouping-test")
    assert len(marker_lines(marker)) == 1


async def test_documents_uploaded_together_are_embedded_in_shared_batches(api: Any) -> None:
    client = api.client
    collection = await create_collection(client)
    pages = [
        (f"page-{n}.md", f"# Topic {n}\n\nThe {word} lives in section {n}.\n".encode())
        for n, word in enumerate(["heron", "walrus", "lynx", "otter", "ibis", "tapir"])
    ]
    embedder = api.app.state.onebox.embedder
    calls = 0
    original = embedder.embed

    async def counting(texts: Sequence[str], **options: Any) -> Vectors:
        nonlocal calls
        calls += 1
        return await original(texts, **options)

    embedder.embed = counting
    try:
        response = await upload(client, collection["id"], pages)
        assert response.status_code == 202, response.text
        items = await wait_for_documents(client, collection["id"], expected=len(pages))
    finally:
        del embedder.embed
    assert all(item["status"] == "ready" for item in items), items
    assert all(item["chunk_count"] >= 1 for item in items), items
    assert calls < len(pages)  # not one encoder call per page
    for word in ("walrus", "tapir"):
        found = await client.post(
            "/api/search", json={"query": word, "collection_ids": [collection["id"]]}
        )
        assert found.status_code == 200, found.text
        assert word in found.json()["sources"][0]["snippet"]
