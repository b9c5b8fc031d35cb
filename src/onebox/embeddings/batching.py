"""One encoder call for the passages of several documents.

Small web pages have a few passages each; embedding them page by page runs the encoder on
batches of 1 to 8 texts, where its per-call cost (thread hand-off, tokenizer set-up, thread
synchronisation inside every layer) dwarfs the work. Ingestion jobs claimed together (a
:class:`~onebox.jobs.base.JobGroup`) share one :class:`CoalescingEmbedder`: each job's
``embed`` call waits until either a full batch of texts is pending or every job still
running is waiting for its vectors (or done), and then one call embeds them all. Nothing is
waited on by time, so it neither stalls nor depends on how loaded the machine is. A call
takes texts of similar length from all the waiting jobs (the encoder pads a batch to its
longest text: on the PostgreSQL manual, first-come batches padded to 225k word pieces where
length-sorted ones need 146k), the oldest text always among them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from onebox.embeddings.base import Embedder, InputKind, Vectors


@dataclass(eq=False)
class _Item:
    request: _Request
    position: int
    text: str
    taken: bool = False


@dataclass(eq=False)
class _Request:
    texts: list[str]
    future: asyncio.Future[Vectors] = field(repr=False)
    items: list[_Item] = field(default_factory=list, repr=False)
    rows: Vectors | None = field(default=None, repr=False)
    missing: int = 0

    def __post_init__(self) -> None:
        self.items = [_Item(self, position, text) for position, text in enumerate(self.texts)]
        self.missing = len(self.texts)

    def waiting(self) -> list[_Item]:
        return [item for item in self.items if not item.taken]

    def fill(self, position: int, row: Vectors) -> None:
        if self.future.done():
            return
        if self.rows is None:
            self.rows = np.empty((len(self.texts), row.shape[-1]), dtype=np.float32)
        self.rows[position] = row
        self.missing -= 1
        if self.missing == 0:
            self.future.set_result(self.rows)


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
        texts = sum(len(request.waiting()) for request in live)
        return texts > 0 and (texts >= self.max_batch or len(live) >= self._outstanding())

    async def _flush(self) -> None:
        while self._ready():
            taken = self._take()
            try:
                vectors = await self.inner.embed([item.text for item in taken])
            except asyncio.CancelledError:
                for item in taken:
                    item.request.future.cancel()
                raise
            except Exception:
                # One bad request must not fail the others: each goes alone.
                failed = list(dict.fromkeys(item.request for item in taken))
                self._pending = [r for r in self._pending if r not in failed]
                for request in failed:
                    await self._alone(request)
                continue
            for item, row in zip(taken, vectors, strict=True):
                item.request.fill(item.position, row)
            self.calls += 1

    def _take(self) -> list[_Item]:
        """One encoder batch: texts of similar length (the encoder pads each batch to its
        longest text, so mixed lengths waste up to a third of the work on the padding),
        always including the oldest text waiting so that none waits forever."""
        items = [item for request in self._pending for item in request.waiting()]
        if len(items) > self.max_batch:
            oldest = items[0]
            items.sort(key=lambda item: -len(item.text))
            start = min(
                next(i for i, item in enumerate(items) if item is oldest),
                len(items) - self.max_batch,
            )
            items = items[start : start + self.max_batch]
        for item in items:
            item.taken = True
        return items

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
