"""The last minutes, for the admin System page: a ring of totals read from the same merged
metrics a scrape sees, and the rates and percentiles between them (the same arithmetic as
PromQL's ``rate`` and ``histogram_quantile``)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from prometheus_client.metrics_core import Metric

Buckets = tuple[tuple[float, float], ...]  # (upper bound, cumulative count), +Inf last


@dataclass(frozen=True, slots=True)
class Totals:
    at: float  # Unix time
    generation_tokens: float = 0.0
    prompt_tokens: float = 0.0
    cost_usd: float = 0.0
    http_requests: float = 0.0
    http_errors: float = 0.0  # 5xx
    e2e: Buckets = ()
    ttft: Buckets = ()
    waiting: float = 0.0
    running: float = 0.0
    resident_memory_bytes: float = 0.0
    gpus: tuple[dict[str, Any], ...] = field(default_factory=tuple)


def _buckets(samples: Iterable[Any]) -> Buckets:
    """Cumulative counts by bound, summed over every label set (every model)."""
    by_bound: dict[float, float] = {}
    for sample in samples:
        bound = float(sample.labels["le"])
        by_bound[bound] = by_bound.get(bound, 0.0) + sample.value
    return tuple(sorted(by_bound.items()))


def read_totals(families: Iterable[Metric], at: float) -> Totals:
    sums: dict[str, float] = {}
    buckets: dict[str, list[Any]] = {}
    gpus: dict[str, dict[str, Any]] = {}
    for family in families:
        for sample in family.samples:
            name = sample.name
            if name.endswith("_bucket"):
                buckets.setdefault(name, []).append(sample)
            elif name == "onebox_http_requests_total":
                sums[name] = sums.get(name, 0.0) + sample.value
                if sample.labels.get("status", "").startswith("5"):
                    sums["errors"] = sums.get("errors", 0.0) + sample.value
            elif name.startswith("onebox_gpu_memory_"):
                gpu = gpus.setdefault(
                    sample.labels.get("gpu", ""), {"gpu": sample.labels.get("gpu", "")}
                )
                gpu[name.removeprefix("onebox_gpu_memory_")] = sample.value
            else:
                sums[name] = sums.get(name, 0.0) + sample.value
    return Totals(
        at=at,
        generation_tokens=sums.get("onebox_generation_tokens_total", 0.0),
        prompt_tokens=sums.get("onebox_prompt_tokens_total", 0.0),
        cost_usd=sums.get("onebox_cost_usd_total", 0.0),
        http_requests=sums.get("onebox_http_requests_total", 0.0),
        http_errors=sums.get("errors", 0.0),
        e2e=_buckets(buckets.get("onebox_e2e_request_latency_seconds_bucket", ())),
        ttft=_buckets(buckets.get("onebox_time_to_first_token_seconds_bucket", ())),
        waiting=sums.get("onebox_requests_waiting", 0.0),
        running=sums.get("onebox_requests_running", 0.0),
        resident_memory_bytes=sums.get("onebox_process_resident_memory_bytes", 0.0),
        gpus=tuple(gpus[key] for key in sorted(gpus)),
    )


def quantile(q: float, buckets: Buckets) -> float | None:
    """``histogram_quantile``: linear interpolation inside the bucket holding the rank."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bound: its value, as Prometheus does
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def _increase(new: float, old: float) -> float:
    """A counter's growth; a drop means it restarted from zero (a fresh start)."""
    return new - old if new >= old else new


def _bucket_increase(new: Buckets, old: Buckets) -> Buckets:
    before = dict(old)
    return tuple((bound, _increase(count, before.get(bound, 0.0))) for bound, count in new)


def between(old: Totals, new: Totals) -> dict[str, Any]:
    """What happened between two readings, as the System page shows it."""
    seconds = max(new.at - old.at, 1e-9)
    requests = _increase(new.http_requests, old.http_requests)
    errors = _increase(new.http_errors, old.http_errors)
    return {
        "at": new.at,
        "tokens_per_second": _increase(new.generation_tokens, old.generation_tokens) / seconds,
        "prompt_tokens_per_second": _increase(new.prompt_tokens, old.prompt_tokens) / seconds,
        "requests_per_second": requests / seconds,
        "error_rate": errors / requests if requests else 0.0,
        "cost_usd": _increase(new.cost_usd, old.cost_usd),
        "p95_latency_seconds": quantile(0.95, _bucket_increase(new.e2e, old.e2e)),
        "p95_ttft_seconds": quantile(0.95, _bucket_increase(new.ttft, old.ttft)),
        "queue_depth": new.waiting,
        "running": new.running,
    }


class Recent:
    """A ring of totals, one every ``interval`` seconds over ``window`` seconds."""

    def __init__(self, *, interval: float = 5.0, window: float = 900.0, span: float = 60.0):
        self.interval = interval
        self.window = window
        self.span = span  # the trailing stretch each point's percentiles cover
        self._ring: deque[Totals] = deque(maxlen=int(window / interval) + 1)

    def add(self, totals: Totals) -> None:
        self._ring.append(totals)

    def _before(self, totals: Totals, seconds: float, ring: list[Totals]) -> Totals:
        """The latest reading at least ``seconds`` older than ``totals``, else the oldest."""
        chosen = ring[0]
        for reading in ring:
            if reading.at <= totals.at - seconds:
                chosen = reading
        return chosen

    def report(self, now: Totals) -> dict[str, Any]:
        ring = (
            [*self._ring, now] if not self._ring or self._ring[-1].at < now.at else list(self._ring)
        )
        points = []
        for older, newer in pairwise(ring):
            point = between(older, newer)
            trailing = between(self._before(newer, self.span, ring), newer)
            point["p95_latency_seconds"] = trailing["p95_latency_seconds"]
            point["p95_ttft_seconds"] = trailing["p95_ttft_seconds"]
            points.append(point)
        current = between(self._before(now, self.span, ring), now) if len(ring) > 1 else None
        return {
            "interval_seconds": self.interval,
            "window_seconds": self.window,
            "span_seconds": self.span,
            "points": points,
            "current": current,
            "totals": {
                "generation_tokens": now.generation_tokens,
                "prompt_tokens": now.prompt_tokens,
                "cost_usd": now.cost_usd,
                "http_requests": now.http_requests,
            },
            "queue_depth": now.waiting,
            "running": now.running,
            "resident_memory_bytes": now.resident_memory_bytes,
            "gpus": list(now.gpus),
        }
