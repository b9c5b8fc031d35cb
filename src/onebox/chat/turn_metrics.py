"""What a finished chat turn adds to the metrics: the same numbers as its usage row."""

from __future__ import annotations

from typing import Any

from onebox.core.messages import Usage
from onebox.core.metrics import metrics

# Turns that ran to an end of their own; a failed one would drag the latencies down.
_ENDED = frozenset({"complete", "partial", "cancelled"})


def observe_turn(
    row: dict[str, Any], door: str, usage: Usage | None, *, timed: bool = True
) -> None:
    """Counts one turn from its usage ``row``: tokens, cost, how it ended and, for turns
    that reached the model, time to first token, end-to-end latency and queue time (not
    when ``timed`` is false: a background request nobody waited for)."""
    series = metrics().model(row["model"])
    status = row["status"]
    series.requests(door, status).inc()
    series.prompt_tokens.inc(row["prompt_tokens"])
    series.generation_tokens.inc(row["completion_tokens"])
    series.cost.inc(row["cost"])
    if not timed:
        return
    if row["ttft_ms"] is not None:
        series.ttft.observe(row["ttft_ms"] / 1000)
    if status in _ENDED:
        series.e2e.observe(row["duration_ms"] / 1000)
        if usage is not None:
            # Upstream models wait in no queue of ours: their queueing is in their TTFT.
            series.queue.observe((usage.queue_ms or 0.0) / 1000)
