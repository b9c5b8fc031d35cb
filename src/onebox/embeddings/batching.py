"""One encoder call for the passages of several documents.

Small web pages have a few passages each; embedding them page by page runs the encoder on
batches of 1 to 8 texts, where its per-call cost (thread hand-off, tokenizer set-up, thread
synchronisation inside every layer) dwarfs the work. Ingestion jobs claimed together (a
:class:`~onebox.jobs.base.JobGroup`) share one :class:`CoalescingEmbedder`: each job's
``embed`` call waits until either a full batch of texts is pending or every job still
running is waiting for its vectors (or done), and then one call embeds them all. Nothing is
waited on by time, so it neither stalls nor depends on how loaded the machine is.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from onebox.embeddings.base import Embedder, InputKind, Vectors


@dataclass
class _Request:
    texts: list[str]
    future: asyncio.Future[Vectors] = field(repr=False)


class CoalescingEmbedder(Embedder):
    """Wraps ``inner`` for callers that run side by side; ``outstanding()`` is how many of
    them may still ask (it may grow and shrink; call :meth:`wake` when it changes)."""

    def __init__(self, inner: Embedder, outstanding: Callable[[], int], max_batch: int) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.max_batch = max(1, max_batch)
        self._outstanding = outstanding
        self._pending: list[_Request] = []
        self._flusher: asyncio.Task[None] | None = None
        self.calls = 0  # encoder calls made (for tests and diagnostics)

    async def embed(self, texts: Sequence[str], *, kind: InputKind = "document") -> Vectors:
        if kind != "document" or not texts:
            return await self.inner.embed(texts, kind=kind)
        request = _Request(list(texts), asyncio.get_running_loop().create_future())
        self._pending.append(request)
        self.wake()
        return await request.future

    def window(self) -> tuple[str, int] | None:
        return self.inner.window()

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def wake(self) -> None:
        """Check whether a batch can go now (a caller asked, or the callers changed)."""
        if (self._flusher is None or self._flusher.done()) and self._ready():
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush(), name="embedding-batch"
            )

    def _live(self) -> list[_Request]:
        self._pending = [request for request in self._pending if not request.future.done()]
        return self._pending

    def _ready(self) -> bool:
        live = self._live()
        if not live:
            return False
        texts = sum(len(request.texts) for request in live)
        return texts >= self.max_batch or len(live) >= self._outstanding()

    async def _flush(self) -> None:
        while self._ready():
            # At most one encoder batch per call (first fit, oldest first): a call just over
            # it would be cut by the encoder into a full batch and a tiny one, which costs
            # nearly as much. Index writes then overlap the next call.
            taken: list[_Request] = []
            kept: list[_Request] = []
            room = self.max_batch
            for request in self._pending:
                if len(request.texts) <= room or not taken:
                    taken.append(request)
                    room -= len(request.texts)
                else:
                    kept.append(request)
            self._pending = kept
            try:
                vectors = await self.inner.embed([t for r in taken for t in r.texts])
            except asyncio.CancelledError:
                for request in taken:
                    request.future.cancel()
                raise
            except Exception:
                # One bad request must not fail the others: each goes alone.
                for request in taken:
                    await self._alone(request)
                continue
            start = 0
            for request in taken:
                end = start + len(request.texts)
                if not request.future.done():
                    request.future.set_result(np.ascontiguousarray(vectors[start:end]))
                start = end
            self.calls += 1

    async def _alone(self, request: _Request) -> None:
        if request.future.done():
            return
        try:
            vectors = await self.inner.embed(request.texts)
        except Exception as exc:
            if not request.future.done():
                request.future.set_exception(exc)
            return
        self.calls += 1
        if not request.future.done():
            request.future.set_result(vectors)

    async def close(self) -> None:
        flusher, self._flusher = self._flusher, None
        if flusher is not None and not flusher.done():
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
