"""Usage records for every generation, written in batches off the request path.

Recording is a synchronous append to an in-memory buffer; a background task inserts the
buffer in one statement every ``flush_interval`` seconds (or sooner when it fills), so a
busy gateway pays for one INSERT per batch, not one per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from onebox.core.db import new_id, utcnow
from onebox.llm.base import Usage
from onebox.usage.repository import UsageRepository

logger = logging.getLogger(__name__)

INSERT_SLICE = 100  # rows per INSERT statement within one flush


@dataclass
class GenerationMeter:
    """Times one generation and turns it into a usage row."""

    started: float = field(default_factory=time.perf_counter)
    first_token: float | None = None
    ended: float | None = None
    chunks: int = 0

    def token(self) -> None:
        if self.first_token is None:
            self.first_token = time.perf_counter()
        self.chunks += 1

    def finish(self) -> None:
        self.ended = time.perf_counter()

    @property
    def ttft_ms(self) -> float | None:
        return None if self.first_token is None else (self.first_token - self.started) * 1000

    @property
    def duration_ms(self) -> float:
        return ((self.ended or time.perf_counter()) - self.started) * 1000

    def row(
        self,
        *,
        source: str,
        user_id: str | None,
        model: str,
        api_key_id: str | None = None,
        requested_model: str,
        provider: str,
        usage: Usage | None,
        cost_per_token: tuple[float, float],
        status: str,
        error_type: str | None = None,
    ) -> dict[str, Any]:
        prompt = usage.prompt_tokens if usage else 0
        completion = usage.completion_tokens if usage else self.chunks
        decode_seconds = (
            (self.ended or time.perf_counter()) - self.first_token if self.first_token else 0.0
        )
        return {
            "id": new_id(),
            "created_at": utcnow(),
            "user_id": user_id,
            "api_key_id": api_key_id,
            "source": source,
            "model": model,
            "requested_model": requested_model,
            "provider": provider,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "queue_ms": usage.queue_ms if usage else None,
            "ttft_ms": self.ttft_ms,
            "duration_ms": self.duration_ms,
            "tokens_per_second": (
                (completion - 1) / decode_seconds if completion > 1 and decode_seconds > 0 else None
            ),
            "cost": prompt * cost_per_token[0] + completion * cost_per_token[1],
            "status": status,
            "error_type": error_type,
        }


class UsageRecorder:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        flush_interval: float = 1.0,
        max_batch: int = 1000,
        max_buffer: int = 100_000,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self.max_buffer = max_buffer
        self.dropped = 0
        self._buffer: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def record(self, row: dict[str, Any]) -> None:
        if len(self._buffer) >= self.max_buffer:
            # The database has been unreachable for a long while; keep memory bounded.
            self.dropped += 1
            return
        self._buffer.append(row)
        if len(self._buffer) >= self.max_batch:
            self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="usage-recorder")

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> int:
        written = 0
        while self._buffer:
            batch, self._buffer = self._buffer[: self.max_batch], self._buffer[self.max_batch :]
            try:
                async with self.sessionmaker() as session:
                    repository = UsageRepository(session)
                    # Binding each row's parameters runs on the event loop; in slices, the
                    # requests in flight get the loop back between them (a batch of 1,000
                    # rows would hold it for several milliseconds).
                    for start in range(0, len(batch), INSERT_SLICE):
                        await repository.insert_many(batch[start : start + INSERT_SLICE])
                    await session.commit()
            except Exception:
                logger.exception("Could not write %d usage records; will retry", len(batch))
                self._buffer[:0] = batch
                return written
            written += len(batch)
        return written

    async def close(self) -> None:
        # Never cancel the task: a batch it has taken from the buffer would be lost in
        # the middle of its INSERT. Ask it to stop after its current flush instead.
        if self._task is not None:
            self._closing = True
            self._wake.set()
            await self._task
            self._task = None
        await self.flush()
