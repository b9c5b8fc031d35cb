"""The metrics' clock, one per server process: each second it hands what the hot path
counted to prometheus_client and sets this process's gauges (turns running, engine queue,
batch size and KV cache, upstream circuits, memory, GPU); every few seconds it reads the
merged totals into the ring behind the admin System page."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping

from onebox.core.metrics import families, metrics
from onebox.llm.registry import ModelRegistry
from onebox.llm.upstream_health import UpstreamHealth
from onebox.observability.machine import gpu_memory, resident_memory_bytes
from onebox.observability.recent import Recent, Totals, read_totals

logger = logging.getLogger(__name__)


def set_gauges(models: ModelRegistry, running: Mapping[str, int]) -> None:
    """This process's gauges, read now."""
    current = metrics()
    for entry in models.entries():
        name = entry.name
        current.requests_running.labels(name).set(running.get(name, 0))
        load = entry.provider.engine_load()
        current.requests_waiting.labels(name).set(load.waiting if load else 0)
        if load is not None:
            current.engine_batch_size.labels(name).set(load.batch_size)
            current.engine_kv_cache_usage.labels(name).set(load.kv_cache_usage)
        health = getattr(entry.provider, "health", None)
        if isinstance(health, UpstreamHealth):
            current.upstream_up.labels(name).set(0 if health.state == "open" else 1)
            current.upstream_cooldown_remaining.labels(name).set(health.cooldown_remaining)
            current.upstream_consecutive_failures.labels(name).set(health.consecutive_failures)
    rss = resident_memory_bytes()
    if rss is not None:
        current.resident_memory.set(rss)
    for gpu in gpu_memory():
        current.gpu_memory_used.labels(gpu.index).set(gpu.used_bytes)
        current.gpu_memory_total.labels(gpu.index).set(gpu.total_bytes)


class Sampler:
    def __init__(
        self,
        models: ModelRegistry,
        running: Mapping[str, int],
        *,
        tick: float = 1.0,
        recent: Recent | None = None,
    ) -> None:
        self.models = models
        self.running = running
        self.tick = tick
        self.recent = recent or Recent()
        self._task: asyncio.Task[None] | None = None

    def refresh(self) -> None:
        """Flush the hot path's counts and set the gauges (event loop thread only)."""
        metrics().flush()
        set_gauges(self.models, self.running)

    async def totals(self) -> Totals:
        """The merged totals now (read off the event loop: it opens every process's file)."""
        at = time.time()
        return read_totals(await asyncio.to_thread(families), at)

    async def start(self) -> None:
        self.refresh()
        self.recent.add(await self.totals())
        self._task = asyncio.create_task(self._run(), name="metrics-sampler")

    async def _run(self) -> None:
        next_sample = time.monotonic() + self.recent.interval
        while True:
            await asyncio.sleep(self.tick)
            try:
                self.refresh()
                now = time.monotonic()
                if now >= next_sample:
                    next_sample = max(next_sample + self.recent.interval, now)
                    self.recent.add(await self.totals())
            except Exception:
                logger.exception("Metrics sampler step failed")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        metrics().flush()  # what this process counted outlives it in the shared files
