"""The embedded llama.cpp engine: one decode thread, a bounded queue, batched decoding.

KV memory. The context uses llama.cpp's non-unified cache: ``n_seq_max = slots`` streams of
``context_size`` cells each (``n_ctx = context_size * slots``), so every chat can use the whole
configured context no matter what the others do. The price is memory that grows with the
slots: per cell it is ``2 * n_layer * n_embd_kv * 2`` bytes (f16), 22.5 KiB for SmolLM2-135M,
so 8 slots of 8,192 tokens hold 1.4 GiB. Lower ``max_batch_sequences`` or ``context_size`` to
shrink it; the size is logged at start.

Same text as one request at a time. With separate streams each sequence's attention only sees
its own cells, and llama.cpp's matrix kernels compute every output row the same way whatever
the other rows are, so a sequence's logits are bit-for-bit independent of the batch it shares,
*provided* that (1) its prompt is always cut into the same chunks (multiples of ``n_batch`` from
position 0, each chunk in a ``llama_decode`` call of its own) and (2) flash attention is off:
the CPU flash-attention kernel's result depends on the padded KV length of the whole batch,
which the other sequences change. Both were measured (llama-cpp-python 0.3.36, CPU): random
arrivals, prompts of 13 to 714 tokens and reused slots gave bit-identical logits with these
rules, and different tokens as soon as either rule was broken.

Scheduling, once per loop iteration: drop cancelled sequences (freeing their KV cells), move
waiting requests into free slots in arrival order, prefill up to ``n_batch`` prompt tokens (one
chunk per call, oldest sequence first; a long prompt takes one chunk per iteration so running
streams keep moving), then advance every generating sequence by one token in a single
``llama_decode`` call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onebox.llm.base import (
    EngineLoad,
    FinishReason,
    GenerationParams,
    ProviderError,
    ProviderOverloadedError,
    TextDelta,
    Usage,
)
from onebox.llm.llamacpp_text import TextAssembler

if TYPE_CHECKING:
    from onebox.llm.llamacpp_native import NativeModel

logger = logging.getLogger(__name__)

Event = TextDelta | Usage | ProviderError
Inbox = asyncio.Queue[list[Event]]


@dataclass(eq=False)
class Job:
    """One request as the engine sees it. Results go to ``inbox`` on ``loop``, a list of
    events per engine step; the last event is a Usage or a ProviderError."""

    prompt: list[int]
    params: GenerationParams
    stops: tuple[str, ...]
    loop: asyncio.AbstractEventLoop
    inbox: Inbox
    enqueued: float = field(default_factory=time.monotonic)
    cancelled: bool = False


@dataclass(eq=False)
class _Sequence:
    job: Job
    slot: int
    text: TextAssembler
    sampler: Any = None  # a llama_sampler chain, or None for greedy
    admitted: float = field(default_factory=time.monotonic)
    queue_ms: float | None = None
    pos: int = 0  # tokens in this slot's KV cache
    next_token: int = -1  # sampled, not yet decoded
    generated: int = 0


class LlamaEngine:
    """The scheduler, and the one thread that touches the llama.cpp context."""

    def __init__(
        self,
        model_path: Path,
        *,
        context_size: int,
        slots: int,
        max_queued: int,
        threads: int,
        n_batch: int = 512,
        flash_attn: bool = False,
        ignore_eos: bool = False,  # benchmarks only: generate exactly max_tokens
    ) -> None:
        self.model_path = model_path
        self.slots = slots
        self.max_queued = max_queued
        self.n_batch = max(n_batch, slots)
        self._context_size = context_size
        self._threads = threads
        self._flash_attn = flash_attn
        self._ignore_eos = ignore_eos
        self._cond = threading.Condition()
        self._waiting: deque[Job] = deque()
        self._running = 0  # admitted and not yet released (guarded by _cond)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._avg_job_s = 2.0  # how long a request holds a slot, for retry_after
        self._seqs: list[_Sequence] = []  # engine thread only
        self._free_slots: list[int] = list(range(slots))
        self._outbox: dict[Job, list[Event]] = {}
        self._native: NativeModel | None = None
        # Statistics, for tests and benchmarks.
        self.admitted = 0
        self.decode_calls = 0
        self.max_batch_seen = 0
        self.decode_steps = 0  # generation steps, and the sequences they advanced
        self.decoded_rows = 0
        self._load_seen = (0, 0)  # (steps, rows) at the previous load() reading

    # -- any thread ------------------------------------------------------------------------

    @property
    def model(self) -> NativeModel:
        """The loaded model: vocabulary, chat template, tokenizer (thread-safe parts)."""
        if self._native is None:
            raise ProviderError("The embedded model is not loaded")
        return self._native

    @property
    def active_sequences(self) -> int:
        return self._running

    @property
    def waiting_requests(self) -> int:
        return len(self._waiting)

    def load(self) -> EngineLoad:
        """A reading for the metrics, from any thread; approximate by a step at most."""
        steps, rows = self.decode_steps, self.decoded_rows
        seen_steps, seen_rows = self._load_seen
        self._load_seen = (steps, rows)
        cells = sum(seq.pos for seq in list(self._seqs))
        capacity = self.slots * self._native.n_ctx_seq if self._native is not None else 0
        return EngineLoad(
            running=self._running,
            waiting=len(self._waiting),
            batch_size=(rows - seen_rows) / (steps - seen_steps) if steps > seen_steps else 0.0,
            kv_cache_usage=min(cells / capacity, 1.0) if capacity else 0.0,
        )

    def start(self) -> concurrent.futures.Future[None]:
        """Start the decode thread; the future resolves once the model is loaded."""
        loaded: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._main, args=(loaded,), name="llamacpp-engine", daemon=True
        )
        self._thread.start()
        return loaded

    def stop(self) -> None:
        """Stop the thread (after its current step), fail what is left and free everything."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def submit(self, job: Job) -> None:
        """Queue a job, or raise ProviderOverloadedError when the waiting queue is full."""
        with self._cond:
            if self._stopping or self._thread is None:
                raise ProviderError("The embedded model is not running")
            if len(self._waiting) + self._running >= self.slots + self.max_queued:
                ahead = len(self._waiting) + self._running - self.slots + 1
                retry_after = max(0.1, self._avg_job_s * ahead / self.slots)
                raise ProviderOverloadedError(
                    f"The embedded model is busy ({self._running} running, "
                    f"{len(self._waiting)} waiting)",
                    retry_after=round(retry_after, 2),
                )
            job.enqueued = time.monotonic()
            self._waiting.append(job)
            self._cond.notify()

    def cancel(self, job: Job) -> None:
        """Forget a job: a waiting one leaves the queue now, a running one frees its slot
        before the next decode step."""
        with self._cond:
            job.cancelled = True
            if job in self._waiting:
                self._waiting.remove(job)

    # -- the engine thread -----------------------------------------------------------------

    def _main(self, loaded: concurrent.futures.Future[None]) -> None:
        from onebox.llm.llamacpp_native import NativeModel

        try:
            native = NativeModel(
                self.model_path,
                context_size=self._context_size,
                slots=self.slots,
                threads=self._threads,
                n_batch=self.n_batch,
                flash_attn=self._flash_attn,
            )
        except BaseException as exc:
            loaded.set_exception(exc)
            return
        self._native = native
        logger.info(
            "Loaded %s: %d slots x %d tokens of context (KV cache %.0f MiB), %d threads",
            self.model_path.name, self.slots, native.n_ctx_seq,
            native.kv_cache_bytes() / 2**20, self._threads,
        )  # fmt: skip
        loaded.set_result(None)
        try:
            while self._wait_for_work():
                try:
                    self._step(native)
                except Exception:
                    logger.exception("llama.cpp engine step failed")
                    for seq in list(self._seqs):
                        self._fail(seq, "The embedded model failed")
                self._flush()
        finally:
            with self._cond:
                self._stopping = True
                left, self._waiting = list(self._waiting), deque()
            for seq in list(self._seqs):
                self._fail(seq, "The embedded model was shut down")
            for job in left:
                self._outbox[job] = [ProviderError("The embedded model was shut down")]
            self._flush()
            native.close()

    def _wait_for_work(self) -> bool:
        with self._cond:
            while not self._stopping and not self._waiting and not self._seqs:
                self._cond.wait()
            if self._stopping:
                return False
            for seq in [s for s in self._seqs if s.job.cancelled]:
                self._release(seq)
            while self._waiting and self._free_slots:
                self._admit(self._waiting.popleft())
            return True

    def _admit(self, job: Job) -> None:  # under _cond
        sampler = None
        if job.params.temperature > 0:
            seed = job.params.seed if job.params.seed is not None else secrets.randbits(32)
            sampler = self.model.new_sampler(job.params, seed & 0xFFFFFFFF)
        slot = self._free_slots.pop(0)
        self._seqs.append(_Sequence(job, slot, TextAssembler(job.stops), sampler))
        self._running += 1
        self.admitted += 1

    def _release(self, seq: _Sequence) -> None:
        self.model.forget(seq.slot)
        if seq.sampler is not None:
            self.model.free_sampler(seq.sampler)
            seq.sampler = None
        self._seqs.remove(seq)
        self._free_slots.append(seq.slot)
        self._free_slots.sort()
        with self._cond:
            self._running -= 1
            if not seq.job.cancelled:
                held = time.monotonic() - seq.admitted
                self._avg_job_s = 0.8 * self._avg_job_s + 0.2 * held

    def _step(self, native: NativeModel) -> None:
        """Prefill up to n_batch prompt tokens, one chunk per call, then one decode step."""
        budget = self.n_batch
        for seq in [s for s in self._seqs if s.pos < len(s.job.prompt)]:
            chunk = seq.job.prompt[seq.pos : seq.pos + self.n_batch]
            if len(chunk) > budget:
                break
            budget -= len(chunk)
            if seq.queue_ms is None:
                seq.queue_ms = (time.monotonic() - seq.job.enqueued) * 1000
            self.decode_calls += 1
            if not native.prefill(seq.slot, chunk, seq.pos):
                self._fail(seq, "llama.cpp could not evaluate the prompt")
                continue
            seq.pos += len(chunk)
            if seq.pos == len(seq.job.prompt):
                self._accept(native, seq, self._sample(native, seq, len(chunk) - 1))
        seqs = [s for s in self._seqs if s.next_token >= 0]
        if not seqs:
            return
        self.decode_calls += 1
        if not native.step([s.next_token for s in seqs], [s.pos for s in seqs],
                           [s.slot for s in seqs]):  # fmt: skip
            for seq in seqs:
                self._fail(seq, "llama.cpp failed while generating")
            return
        self.max_batch_seen = max(self.max_batch_seen, len(seqs))
        self.decode_steps += 1
        self.decoded_rows += len(seqs)
        for row, seq in enumerate(seqs):
            seq.pos += 1
            self._accept(native, seq, self._sample(native, seq, row))

    @staticmethod
    def _sample(native: NativeModel, seq: _Sequence, row: int) -> int:
        if seq.sampler is None:
            return native.greedy(row)
        return native.sample(seq.sampler, row)

    def _accept(self, native: NativeModel, seq: _Sequence, token: int) -> None:
        """Turn a sampled token into text and decide whether the sequence goes on."""
        seq.next_token = -1
        if not self._ignore_eos and native.is_eog(token):
            self._finish(seq, "stop")
            return
        seq.generated += 1
        text = seq.text.feed(native.piece(token))
        if text:
            self._outbox.setdefault(seq.job, []).append(TextDelta(text))
        if seq.text.stopped:
            self._finish(seq, "stop")
        elif seq.generated >= seq.job.params.max_tokens or seq.pos >= native.n_ctx_seq:
            self._finish(seq, "length")
        else:
            seq.next_token = token

    def _finish(self, seq: _Sequence, reason: FinishReason) -> None:
        events = self._outbox.setdefault(seq.job, [])
        if rest := seq.text.flush():
            events.append(TextDelta(rest))
        events.append(
            Usage(
                prompt_tokens=len(seq.job.prompt),
                completion_tokens=seq.generated,
                finish_reason=reason,
                queue_ms=seq.queue_ms,
            )
        )
        self._release(seq)

    def _fail(self, seq: _Sequence, message: str) -> None:
        self._outbox.setdefault(seq.job, []).append(ProviderError(message))
        self._release(seq)

    def _flush(self) -> None:
        """Hand this step's events over: one wake-up per event loop, not one per token."""
        if not self._outbox:
            return
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Job, list[Event]]]] = {}
        for job, events in self._outbox.items():
            if not job.cancelled:
                by_loop.setdefault(job.loop, []).append((job, events))
        self._outbox = {}
        for loop, deliveries in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, deliveries)
            except RuntimeError:  # the consumer's event loop is closed: nobody is listening
                for job, _ in deliveries:
                    job.cancelled = True


def _deliver(deliveries: list[tuple[Job, list[Event]]]) -> None:
    for job, events in deliveries:
        job.inbox.put_nowait(events)
