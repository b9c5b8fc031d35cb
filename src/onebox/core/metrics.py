"""Prometheus metrics: one set per process, shared by worker processes through files.

Several processes (uvicorn or gunicorn workers, ``onebox serve`` twice on one data dir,
Celery workers on the same host) each write their samples to mmap files in one directory,
prometheus_client's multiprocess mode, and ``GET /metrics`` merges them.
:func:`configure_multiprocess` picks that directory before the first metric exists and
sweeps what dead processes left there. Without it (the CLI) metrics live in memory.

The hot path never touches those files. A chat turn or an HTTP request adds to plain numbers
on pre-bound series (:class:`CounterSeries`, :class:`HistogramSeries`: no lock, no label
lookup, no formatting), and :meth:`Metrics.flush` hands the sums to prometheus_client once a
second and before every scrape. Every series is touched from the event loop's thread only.
"""

from __future__ import annotations

import contextlib
import os
import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric

from onebox.core.settings import Settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Seconds. vLLM's buckets, with finer steps below 10 ms for a gateway's own overhead.
TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
    7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0,
)  # fmt: skip
INTER_TOKEN_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4,
    0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 20.0,
)  # fmt: skip
E2E_BUCKETS = (
    0.01, 0.05, 0.1, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
    40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0,
)  # fmt: skip
QUEUE_BUCKETS = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
)  # fmt: skip
HTTP_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0, 300.0,
)  # fmt: skip
WORK_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
    300.0, 900.0,
)  # fmt: skip

GaugeMode = Literal["livesum", "livemax", "livemin"]

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class CounterSeries:
    """One labelled counter. ``inc`` adds to a float; :meth:`flush` writes the sum."""

    __slots__ = ("child", "pending")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.pending = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.pending += amount

    def flush(self) -> None:
        if self.pending:
            amount, self.pending = self.pending, 0.0
            self.child.inc(amount)


class HistogramSeries:
    """One labelled histogram. ``observe`` counts into local buckets (the same bounds as
    the family's); :meth:`flush` adds the counts and the sum to the shared values."""

    __slots__ = ("bounds", "child", "counts", "dirty", "total")

    def __init__(self, child: Any, bounds: tuple[float, ...]) -> None:
        self.child = child
        self.bounds = (*bounds, float("inf"))
        self.counts = [0] * len(self.bounds)
        self.total = 0.0
        self.dirty = False

    def observe(self, value: float) -> None:
        if value != value:  # NaN
            return
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value
        self.dirty = True

    def flush(self) -> None:
        if not self.dirty:
            return
        counts, self.counts = self.counts, [0] * len(self.bounds)
        total, self.total = self.total, 0.0
        self.dirty = False
        # prometheus_client has no bulk observe; its child keeps one value per bucket
        # (non-cumulative) and one for the sum, which is what observe() increments too.
        self.child._sum.inc(total)
        for index, count in enumerate(counts):
            if count:
                self.child._buckets[index].inc(count)


class ModelSeries:
    """Everything a chat turn records, bound to one model's label."""

    __slots__ = (
        "_metrics", "_requests", "cost", "e2e", "generation_tokens", "inter_token", "model",
        "prompt_tokens", "queue", "ttft",
    )  # fmt: skip

    def __init__(self, metrics: Metrics, model: str) -> None:
        self._metrics = metrics
        self.model = model
        self.ttft = metrics.histogram(metrics.time_to_first_token, TTFT_BUCKETS, model)
        self.inter_token = metrics.histogram(
            metrics.inter_token_latency, INTER_TOKEN_BUCKETS, model
        )
        self.e2e = metrics.histogram(metrics.e2e_request_latency, E2E_BUCKETS, model)
        self.queue = metrics.histogram(metrics.request_queue_time, QUEUE_BUCKETS, model)
        self.prompt_tokens = metrics.counter(metrics.prompt_tokens, model)
        self.generation_tokens = metrics.counter(metrics.generation_tokens, model)
        self.cost = metrics.counter(metrics.cost_usd, model)
        self._requests: dict[tuple[str, str], CounterSeries] = {}

    def requests(self, door: str, status: str) -> CounterSeries:
        series = self._requests.get((door, status))
        if series is None:
            series = self._metrics.counter(self._metrics.chat_requests, self.model, door, status)
            self._requests[(door, status)] = series
        return series


class Metrics:
    """Every metric family Onebox exports, built once per process by :func:`metrics`."""

    def __init__(self) -> None:
        registry = self.registry = CollectorRegistry()
        self._series: list[CounterSeries | HistogramSeries] = []
        self._models: dict[str, ModelSeries] = {}
        self._http_counts: dict[tuple[str, str, int], CounterSeries] = {}
        self._http_durations: dict[tuple[str, str], HistogramSeries] = {}

        def counter(name: str, text: str, labels: Iterable[str] = ()) -> Counter:
            return Counter(name, text, list(labels), registry=registry)

        def histogram(name: str, text: str, labels: Iterable[str], buckets: Any) -> Histogram:
            return Histogram(name, text, list(labels), registry=registry, buckets=buckets)

        def gauge(name: str, text: str, labels: Iterable[str], mode: GaugeMode) -> Gauge:
            return Gauge(name, text, list(labels), registry=registry, multiprocess_mode=mode)

        model = ("model",)
        # Chat turns, whichever door (vLLM's names, onebox_ prefix).
        self.time_to_first_token = histogram(
            "onebox_time_to_first_token_seconds",
            "From the request reaching the turn pipeline to the first streamed text",
            model, TTFT_BUCKETS,
        )  # fmt: skip
        self.inter_token_latency = histogram(
            "onebox_inter_token_latency_seconds",
            "Gap between consecutive streamed chunks (a token for the embedded engine)",
            model, INTER_TOKEN_BUCKETS,
        )  # fmt: skip
        self.e2e_request_latency = histogram(
            "onebox_e2e_request_latency_seconds",
            "From the request reaching the turn pipeline to the end of its reply",
            model, E2E_BUCKETS,
        )  # fmt: skip
        self.request_queue_time = histogram(
            "onebox_request_queue_time_seconds",
            "Time waiting in Onebox's engine queue before decoding (0 for upstream models)",
            model, QUEUE_BUCKETS,
        )  # fmt: skip
        self.prompt_tokens = counter("onebox_prompt_tokens_total", "Prompt tokens", model)
        self.generation_tokens = counter(
            "onebox_generation_tokens_total", "Generated (completion) tokens", model
        )
        self.cost_usd = counter("onebox_cost_usd_total", "Cost at the model's price, USD", model)
        self.chat_requests = counter(
            "onebox_chat_requests_total",
            "Chat turns by how they ended (complete, partial, error, cancelled)",
            ("model", "door", "status"),
        )
        self.requests_running = gauge(
            "onebox_requests_running", "Chat turns generating now", model, "livesum"
        )
        self.requests_waiting = gauge(
            "onebox_requests_waiting", "Requests waiting for an engine slot", model, "livesum"
        )
        # The embedded engine.
        self.engine_batch_size = gauge(
            "onebox_engine_batch_size",
            "Sequences decoded together per step, averaged over the last second",
            model, "livemax",
        )  # fmt: skip
        self.engine_kv_cache_usage = gauge(
            "onebox_engine_kv_cache_usage_ratio",
            "Share of the engine's KV cache cells in use (0..1)",
            model, "livemax",
        )  # fmt: skip
        # Upstream models.
        self.upstream_up = gauge(
            "onebox_upstream_up",
            "1 while the upstream's circuit is closed (or on trial), 0 while it cools down",
            model, "livemin",
        )  # fmt: skip
        self.upstream_cooldown_remaining = gauge(
            "onebox_upstream_cooldown_remaining_seconds",
            "Seconds before a cooling-down upstream is tried again",
            model, "livemax",
        )  # fmt: skip
        self.upstream_consecutive_failures = gauge(
            "onebox_upstream_consecutive_failures",
            "Failed calls in a row",
            model, "livemax",
        )  # fmt: skip
        self.upstream_cooldowns = counter(
            "onebox_upstream_cooldowns_total", "Times an upstream's circuit opened", model
        )
        self.upstream_errors = counter(
            "onebox_upstream_errors_total",
            "Upstream calls that failed before streaming (after retries), by reason",
            ("model", "reason"),
        )
        # HTTP.
        self.http_requests = counter(
            "onebox_http_requests_total",
            "HTTP requests by route template and status",
            ("method", "route", "status"),
        )
        self.http_request_duration = histogram(
            "onebox_http_request_duration_seconds",
            "HTTP request duration, to the end of the response body",
            ("method", "route"), HTTP_BUCKETS,
        )  # fmt: skip
        # Admission and guards.
        self.ratelimit_refusals = counter(
            "onebox_ratelimit_refusals_total",
            "Requests refused by a rate limit, by whom it counts (key, user, ip) and limit",
            ("scope", "limit"),
        )
        self.guard_blocks = counter(
            "onebox_guard_blocks_total", "Inputs and outputs the guard blocked", ("stage",)
        )
        # Background jobs and documents.
        self.jobs_finished = counter(
            "onebox_jobs_finished_total",
            "Job runs by outcome (done, failed, retried, released)",
            ("kind", "outcome"),
        )
        self.job_duration = histogram(
            "onebox_job_duration_seconds", "One job run", ("kind",), WORK_BUCKETS
        )
        self.chunks_indexed = counter(
            "onebox_ingestion_chunks_indexed_total", "Passages embedded and indexed"
        )
        self.embedding_latency = histogram(
            "onebox_embedding_latency_seconds",
            "One embedding call (a batch of passages, or a query)",
            ("kind",), WORK_BUCKETS,
        )  # fmt: skip
        self.retrieval_latency = histogram(
            "onebox_retrieval_latency_seconds",
            "Embedding the question, searching and hydrating passages",
            (), WORK_BUCKETS,
        )  # fmt: skip
        # The process and the machine.
        self.resident_memory = gauge(
            "onebox_process_resident_memory_bytes",
            "Resident memory of the Onebox processes (summed)",
            (), "livesum",
        )  # fmt: skip
        self.gpu_memory_used = gauge(
            "onebox_gpu_memory_used_bytes", "GPU memory in use (NVIDIA)", ("gpu",), "livemax"
        )
        self.gpu_memory_total = gauge(
            "onebox_gpu_memory_total_bytes", "GPU memory (NVIDIA)", ("gpu",), "livemax"
        )

    # Pre-bound series --------------------------------------------------------------------

    def counter(self, family: Counter, *labels: str) -> CounterSeries:
        series = CounterSeries(family.labels(*labels) if labels else family)
        self._series.append(series)
        return series

    def histogram(
        self, family: Histogram, bounds: tuple[float, ...], *labels: str
    ) -> HistogramSeries:
        series = HistogramSeries(family.labels(*labels) if labels else family, bounds)
        self._series.append(series)
        return series

    def model(self, name: str) -> ModelSeries:
        series = self._models.get(name)
        if series is None:
            series = self._models[name] = ModelSeries(self, name)
        return series

    def http(self, method: str, route: str, status: int, seconds: float) -> None:
        if method not in HTTP_METHODS:
            method = "OTHER"
        count = self._http_counts.get((method, route, status))
        if count is None:
            count = self.counter(self.http_requests, method, route, str(status))
            self._http_counts[(method, route, status)] = count
        count.pending += 1
        duration = self._http_durations.get((method, route))
        if duration is None:
            duration = self.histogram(self.http_request_duration, HTTP_BUCKETS, method, route)
            self._http_durations[(method, route)] = duration
        duration.observe(seconds)

    def flush(self) -> None:
        """Hands what the hot path counted to prometheus_client (its files, in multiprocess
        mode). Called once a second, before every scrape and at shutdown."""
        for series in self._series:
            series.flush()


_metrics: Metrics | None = None
_directory: Path | None = None
_lock = threading.Lock()


def metrics() -> Metrics:
    """This process's metrics, built on first use."""
    global _metrics
    current = _metrics
    if current is None:
        with _lock:
            if _metrics is None:
                _metrics = Metrics()
            current = _metrics
    return current


def metrics_directory(settings: Settings) -> Path:
    configured = settings.metrics_dir or os.environ.get(MULTIPROC_ENV)
    return Path(configured) if configured else settings.data_dir / "metrics"


def multiprocess_directory() -> Path | None:
    return _directory


def configure_multiprocess(directory: Path) -> Path:
    """Switches this process to file-backed metrics in ``directory`` (the first call wins;
    later calls return the directory in use). Files of processes that are gone are swept:
    all of them when no other live process uses the directory (a fresh start), else only
    their live gauges (their counters stay, so totals never drop while others run)."""
    global _directory, _metrics
    with _lock:
        if _directory is not None:
            return _directory
        directory = directory.resolve()
        directory.mkdir(parents=True, exist_ok=True)
        os.environ[MULTIPROC_ENV] = str(directory)
        from prometheus_client import values

        with _locked(directory):
            _sweep_at_start(directory)
            if not getattr(values.ValueClass, "_multiprocess", False):
                values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
                _metrics = Metrics()  # file-backed now; created under the lock
            elif _metrics is None:
                _metrics = Metrics()
            _directory = directory
    return directory


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialises the start-up sweep between processes starting together."""
    try:
        import fcntl
    except ImportError:  # not POSIX: nothing to serialise with
        yield
        return
    with (directory / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pid_of(path: Path) -> int | None:
    tail = path.stem.rpartition("_")[2]
    return int(tail) if tail.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _sweep_at_start(directory: Path) -> None:
    from prometheus_client import multiprocess

    me = os.getpid()
    files = {path: _pid_of(path) for path in directory.glob("*.db")}
    pids = {pid for pid in files.values() if pid is not None}
    others = {pid for pid in pids if pid != me and _alive(pid)}
    if not others:
        for path, pid in files.items():
            if pid != me:  # ours may already be open (the variable was set before import)
                path.unlink(missing_ok=True)
        return
    for pid in pids - others:
        multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]


def sweep_dead_processes() -> None:
    """Drops the live gauges of processes that have exited (a crashed or stopped worker
    must not keep reporting requests running)."""
    directory = _directory
    if directory is None:
        return
    from prometheus_client import multiprocess

    for path in directory.glob("gauge_live*.db"):
        pid = _pid_of(path)
        if pid is not None and pid != os.getpid() and not _alive(pid):
            multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]


class _Families:
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


def render(extra: Iterable[Metric] = ()) -> bytes:
    """The Prometheus text exposition: every process's samples, merged, plus ``extra``
    families computed at scrape time."""
    from prometheus_client import generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    if _directory is not None:
        MultiProcessCollector(registry, str(_directory))  # type: ignore[no-untyped-call]
    else:
        registry.register(metrics().registry)
    registry.register(_Families(extra))
    return generate_latest(registry)


def families() -> list[Metric]:
    """Every family with its samples, merged across processes (what a scrape sees)."""
    if _directory is not None:
        from prometheus_client.multiprocess import MultiProcessCollector

        collector = MultiProcessCollector(None, str(_directory))  # type: ignore[no-untyped-call]
        return list(collector.collect())  # type: ignore[no-untyped-call]
    return list(metrics().registry.collect())
