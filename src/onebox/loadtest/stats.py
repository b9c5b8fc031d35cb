"""From samples to the numbers a run reports: throughput, latency percentiles, a timeline."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from onebox.loadtest.runner import Sample

QUANTILES = (50, 90, 95, 99)
# Sends later than this against the schedule (p99) mean the generator itself was short of
# CPU and the latencies include its delay.
LAG_WARNING_MS = 2.0


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return math.nan
    position = (len(sorted_values) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def distribution(values: Iterable[float]) -> dict[str, float | int] | None:
    """mean, p50/p90/p95/p99, min and max of ``values`` (None when there are none)."""
    ordered = sorted(values)
    if not ordered:
        return None
    summary: dict[str, float | int] = {"count": len(ordered), "mean": sum(ordered) / len(ordered)}
    for q in QUANTILES:
        summary[f"p{q}"] = percentile(ordered, q)
    summary["min"] = ordered[0]
    summary["max"] = ordered[-1]
    return summary


def summarize(samples: Sequence[Sample], begin: float) -> dict[str, Any]:
    """The report of one run; latencies in milliseconds, times relative to ``begin``."""
    good = [s for s in samples if s.ok]
    failed = [s for s in samples if not s.ok]
    end = max((s.done for s in samples), default=begin)
    duration = max(end - begin, 1e-9)
    output_tokens = sum(s.output_tokens for s in good)
    ttfts = [s.ttft * 1000 for s in good if s.ttft is not None]
    itls = [
        (later - earlier) * 1000
        for s in good
        for earlier, later in zip(s.token_times, s.token_times[1:], strict=False)
    ]
    tpots = [
        (s.done - s.first_token) * 1000 / (s.output_tokens - 1)
        for s in good
        if s.first_token is not None and s.output_tokens > 1
    ]
    lags = [s.lag * 1000 for s in samples]
    lag = distribution(lags)
    return {
        "requests": len(samples),
        "completed": len(good),
        "failed": len(failed),
        "errors": dict(Counter(s.error or "?" for s in failed).most_common()),
        "duration_s": duration,
        "requests_per_s": len(good) / duration,
        "output_tokens": output_tokens,
        "output_tokens_per_s": output_tokens / duration,
        "latency_ms": {
            "ttft": distribution(ttfts),
            "itl": distribution(itls),
            "tpot": distribution(tpots),
            "e2e": distribution(s.e2e * 1000 for s in good),
        },
        "send_lag_ms": lag,
        "generator_kept_up": lag is None or float(lag["p99"]) <= LAG_WARNING_MS,
        "timeline": timeline(samples, begin),
    }


def timeline(samples: Sequence[Sample], begin: float, step: float = 1.0) -> list[dict[str, Any]]:
    """Per ``step`` seconds of the run: requests completed and failed, output tokens."""
    if not samples:
        return []
    buckets = math.floor((max(s.done for s in samples) - begin) / step) + 1
    rows = [
        {"t": index * step, "completed": 0, "failed": 0, "output_tokens": 0}
        for index in range(buckets)
    ]
    for sample in samples:
        row = rows[max(0, math.floor((sample.done - begin) / step))]
        if sample.ok:
            row["completed"] += 1
            row["output_tokens"] += sample.output_tokens
        else:
            row["failed"] += 1
    return rows
