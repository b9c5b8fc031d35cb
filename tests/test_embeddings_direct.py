"""The local model's direct forward pass (tokenizer → transformer → mean pooling → L2) gives
the vectors ``SentenceTransformer.encode`` gives, and small jobs run on their own lane."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import numpy as np
import pytest
import torch

from onebox.embeddings import direct
from onebox.embeddings import local as local_module
from onebox.embeddings.local import QUICK_CHARS, SentenceTransformerEmbedder

pytestmark = pytest.mark.anyio

MODEL = "all-MiniLM-L6-v2"
TEXTS = [
    "How do I reset my password?",
    "  leading and trailing spaces  ",
    "Ünïcödé, emoji 🙂 and CJK 漢字 in one line.",
    "x",
    "heapq.heapify(x) transforms list x into a heap, in-place, in linear time.",
    "The retention period for deleted backups is 28 days; after that they are purged. " * 3,
    "retry with exponential backoff " * 200,  # past the 256-token window: truncated alike
]


@pytest.fixture
async def local() -> AsyncIterator[SentenceTransformerEmbedder]:
    embedder = SentenceTransformerEmbedder(name=MODEL)
    await embedder.start()
    yield embedder
    await embedder.close()


def _encode(embedder: SentenceTransformerEmbedder, texts: list[str]) -> np.ndarray:
    assert embedder._model is not None
    with torch.inference_mode():
        return embedder._model.model.encode(
            texts, batch_size=len(texts), show_progress_bar=False, convert_to_numpy=True,
            normalize_embeddings=True,
        )  # fmt: skip


async def test_the_default_model_takes_the_direct_path(local: SentenceTransformerEmbedder) -> None:
    assert local._model is not None
    assert local._model.direct is not None


async def test_direct_vectors_equal_encode_one_by_one_and_batched(
    local: SentenceTransformerEmbedder,
) -> None:
    reference = _encode(local, TEXTS)
    together = await local.embed(TEXTS)
    alone = np.concatenate([await local.embed([text], kind="query") for text in TEXTS])
    for vectors in (together, alone):
        assert vectors.dtype == np.float32
        assert vectors.shape == (len(TEXTS), 384)
        cosines = np.sum(vectors * reference, axis=1)
        assert float(cosines.min()) > 0.99999, cosines


def test_groups_bound_padding_and_keep_every_index() -> None:
    lengths = [5, 100, 98, 30, 7, 256, 9, 31, 6]
    groups = direct._groups(lengths)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for group in groups:
        longest = max(lengths[i] for i in group)
        slack = max(direct.MIN_PAD_TOKENS, longest // 4)
        assert all(longest - lengths[i] <= slack for i in group)
    assert [lengths[i] for i in groups[0]] == [256]
    assert direct._groups([]) == []
    assert direct._groups([10] * 100) == [list(range(64)), list(range(64, 100))]


async def test_small_jobs_skip_a_document_batch_in_progress(
    local: SentenceTransformerEmbedder,
) -> None:
    """A query sent while a large document batch runs finishes first: it has its own lane."""
    long = ["retry with exponential backoff and jitter " * 40] * 64
    assert sum(map(len, long)) > QUICK_CHARS
    finished: list[str] = []

    async def run(name: str, texts: list[str], kind: str) -> None:
        await local.embed(texts, kind=kind)  # type: ignore[arg-type]
        finished.append(name)

    documents = asyncio.create_task(run("documents", long, "document"))
    await asyncio.sleep(0.05)  # the batch is on the document thread
    await run("query", ["how do I retry?"], "query")
    await documents
    assert finished == ["query", "documents"]


async def test_background_work_stays_off_the_quick_lane(
    local: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A background job's hundreds of sentences come in batches each small enough for the
    quick lane; sent as background work they all run on the document thread, and the quick
    lane stays free for searches and turns."""
    threads: list[str] = []
    encode = local_module._encode

    def recording(*args: object) -> np.ndarray:
        threads.append(threading.current_thread().name)
        return encode(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(local_module, "_encode", recording)
    sentences = [f"Sentence number {n} of a long background job." for n in range(300)]
    assert sum(map(len, sentences[: local.max_batch])) <= QUICK_CHARS  # each batch is small
    batches = -(-len(sentences) // local.max_batch)
    await local.embed_background(sentences)
    assert len(threads) == batches
    assert all(name.startswith("onebox-embed_") for name in threads), threads
    threads.clear()
    await local.embed(sentences)  # the same texts asked interactively: the quick lane
    assert len(threads) == batches
    assert all(name.startswith("onebox-embed-quick") for name in threads), threads


async def test_the_quick_lane_runs_one_torch_thread_and_documents_keep_theirs(
    local: SentenceTransformerEmbedder,
) -> None:
    slot = local._slot
    assert slot is not None
    quick = await asyncio.wrap_future(slot.quick.submit(torch.get_num_threads))
    documents = await asyncio.wrap_future(slot.executor.submit(torch.get_num_threads))
    assert quick == 1
    # The document thread keeps torch's default (or the configured count), not the lane's 1.
    assert documents == (local.threads or local_module._default_threads)
