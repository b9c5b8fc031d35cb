"""The local model's quick lane on ONNX Runtime: the same vectors as ``encode()``, only small
jobs take it, and the exported graph is cached, replaced when broken, and never required to
be writable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from onebox.core.settings import Settings
from onebox.embeddings import local as local_module
from onebox.embeddings import onnx_forward
from onebox.embeddings.base import EmbeddingError
from onebox.embeddings.local import QUICK_CHARS, SentenceTransformerEmbedder
from tests.test_embeddings_direct import _encode

pytestmark = pytest.mark.anyio

MODEL = "all-MiniLM-L6-v2"
TEXTS = [
    "How do I reset my password?",
    "x",
    "Ünïcödé, emoji 🙂 and CJK 漢字 in one line.",
    "heapq.heapify(x) transforms list x into a heap, in-place, in linear time.",
    "retry with exponential backoff " * 200,  # past the 256-token window: truncated alike
]


@pytest.fixture
async def required() -> AsyncIterator[SentenceTransformerEmbedder]:
    embedder = SentenceTransformerEmbedder(name=MODEL, runtime="onnx")
    await embedder.start()
    yield embedder
    await embedder.close()


def _count_runs(
    embedder: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> list[int]:
    assert embedder._model is not None
    assert embedder._model.direct is not None
    forward = embedder._model.direct.onnx
    assert forward is not None
    rows: list[int] = []
    hidden = forward.hidden

    def counted(ids: Any, mask: Any, types: Any) -> Any:
        rows.append(len(ids))
        return hidden(ids, mask, types)

    monkeypatch.setattr(forward, "hidden", counted)
    return rows


async def test_quick_jobs_run_on_onnx_runtime_with_the_vectors_of_encode(
    required: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _count_runs(required, monkeypatch)
    reference = _encode(required, TEXTS)
    alone = np.concatenate([await required.embed([text], kind="query") for text in TEXTS])
    together = await required.embed(TEXTS[:4])  # 4 short texts: one quick job
    assert sum(rows) == len(TEXTS) + 4
    for vectors, expected in ((alone, reference), (together, reference[:4])):
        assert vectors.dtype == np.float32
        cosines = np.sum(vectors * expected, axis=1)
        assert float(cosines.min()) > 0.99999, cosines


async def test_document_batches_and_background_jobs_stay_on_torch(
    required: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _count_runs(required, monkeypatch)
    large = [f"passage {i}: " + "words of a long document " * 20 for i in range(40)]
    assert sum(map(len, large)) > QUICK_CHARS
    await required.embed(large)
    await required.embed_background(TEXTS[:2])
    assert rows == []


async def test_runtime_torch_attaches_no_session() -> None:
    embedder = SentenceTransformerEmbedder(name=MODEL, runtime="torch")
    await embedder.start()
    assert embedder._model is not None
    assert embedder._model.direct is not None
    assert embedder._model.direct.onnx is None
    await embedder.close()


def test_settings_choose_the_runtime_and_the_cache(tmp_path: Path) -> None:
    settings = Settings(embedding_runtime="torch", embedding_cache_dir=tmp_path / "graphs")
    embedder = SentenceTransformerEmbedder.from_settings(settings)
    assert (embedder.runtime, embedder.cache_dir) == ("torch", tmp_path / "graphs")
    assert SentenceTransformerEmbedder.from_settings(Settings()).runtime == "auto"


async def test_the_graph_is_cached_reused_and_replaced_when_broken(
    required: SentenceTransformerEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    first = _load(required, cache)
    assert first.file is not None
    assert first.file.parent == cache
    assert [p.name for p in cache.iterdir()] == [first.file.name]  # no partial file left
    probe = _probe(first)

    def no_export(*args: object) -> None:
        raise AssertionError("exported again although the graph was cached")

    with monkeypatch.context() as patch:
        patch.setattr(onnx_forward, "_export", no_export)
        again = _load(required, cache)
    assert again.file == first.file
    np.testing.assert_allclose(_probe(again), probe, atol=1e-6)

    first.file.write_bytes(b"not a graph")
    repaired = _load(required, cache)
    assert repaired.file == first.file
    assert first.file.stat().st_size > 1_000_000
    np.testing.assert_allclose(_probe(repaired), probe, atol=1e-6)


async def test_an_unwritable_cache_still_gives_a_session(
    required: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    forward = _load(required, blocker / "cache")
    assert forward.file is None
    assert _probe(forward).shape == (1, 4, 384)


def test_the_graph_name_follows_the_model_files(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    before = onnx_forward._digest(tmp_path, True)
    assert onnx_forward._digest(tmp_path, True) == before
    assert onnx_forward._digest(tmp_path, False) != before
    (tmp_path / "config.json").write_text('{"changed": true}')
    assert onnx_forward._digest(tmp_path, True) != before


def _load(embedder: SentenceTransformerEmbedder, cache: Path) -> onnx_forward.OnnxForward:
    assert embedder._model is not None
    direct, path = embedder._model.direct, embedder.path
    assert direct is not None
    assert path is not None
    return onnx_forward.load(direct.transformer, path, direct.token_types, cache)


def _probe(forward: onnx_forward.OnnxForward) -> np.ndarray:
    ids = np.array([[101, 7592, 2088, 102]], dtype=np.int64)
    return forward.hidden(ids, np.ones_like(ids), np.zeros_like(ids))


class _Broken:
    """A session stand-in whose runs fail or whose vectors disagree."""

    def __init__(self, fail: bool) -> None:
        self.fail = fail

    def run(self, names: object, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        if self.fail:
            raise RuntimeError("the session broke")
        ids = feed["input_ids"]
        return [np.ones((*ids.shape, 384), dtype=np.float32)]  # every text the same vector


@pytest.mark.parametrize("fail", [True, False])
async def test_a_session_that_fails_or_disagrees_leaves_torch_in_place(
    fail: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = SentenceTransformerEmbedder(name=MODEL, runtime="torch")
    await embedder.start()
    model, path = embedder._model, embedder.path
    assert model is not None
    assert model.direct is not None
    assert path is not None

    def broken(*args: object) -> onnx_forward.OnnxForward:
        return onnx_forward.OnnxForward(_Broken(fail), True, None)

    monkeypatch.setattr(onnx_forward, "load", broken)
    exact = local_module._encode(model, list(local_module._PROBES), None)
    local_module._attach_onnx(model, path, None, exact, required=False)
    assert model.direct.onnx is None
    with pytest.raises(EmbeddingError, match="ONNX Runtime cannot run the embedding model"):
        local_module._attach_onnx(model, path, None, exact, required=True)
    assert model.direct.onnx is None
    vector = await embedder.embed(["still embedded on torch"], kind="query")
    assert vector.shape == (1, 384)
    await embedder.close()
