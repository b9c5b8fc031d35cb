"""What metrics and access logs cost a request, in microseconds.

prometheus_client's multiprocess mode writes every increment to an mmap file under a lock;
Onebox's hot path instead adds to pre-bound series in memory and flushes once a second
(``onebox.core.metrics``). Measured here, in multiprocess mode on a temporary directory:

* one histogram observation and one counter increment, straight into prometheus_client and
  through Onebox's series (10,000 of each, best of a few rounds);
* everything one ``/v1/chat/completions`` turn records (HTTP counter and histogram, turn
  counters, TTFT, end-to-end and queue histograms, 20 inter-token gaps), both ways;
* one access log line (JSON through the logging module, written to /dev/null);
* the whole ``AccessLog`` middleware (request id, metrics, log line) around a trivial ASGI
  app, against the bare app.

The gateway's budget is p95 ≤ 3 ms and p99 ≤ 10 ms added at 200 req/s.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.table import print_table

ROUNDS = 5
GAPS_PER_TURN = 20


def _best_us(work: Callable[[], None], count: int) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best / count * 1e6


def _turn_row() -> dict[str, Any]:
    return {
        "model": "bench-model", "status": "complete", "prompt_tokens": 40,
        "completion_tokens": 20, "cost": 0.0001, "ttft_ms": 12.0, "duration_ms": 180.0,
    }  # fmt: skip


async def _asgi_us(app: Any, count: int) -> float:
    scope = {
        "type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": [],
        "client": ("127.0.0.1", 1), "app": None,
    }  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(count):
            await app(dict(scope), receive, send)
        best = min(best, time.perf_counter() - started)
    return best / count * 1e6


def run(quick: bool = False) -> dict[str, Any]:
    from prometheus_client import Counter, Histogram

    from onebox.chat.turn_metrics import observe_turn
    from onebox.core.access import AccessLog
    from onebox.core.logging import JsonFormatter, configure_logging
    from onebox.core.messages import Usage
    from onebox.core.metrics import (
        E2E_BUCKETS,
        configure_multiprocess,
        metrics,
        multiprocess_directory,
    )

    count = 2_000 if quick else 10_000
    configure_logging("INFO")  # as the server does: record fields it never writes are off
    created = None
    directory = multiprocess_directory()
    if directory is None:
        created = Path(tempfile.mkdtemp(prefix="onebox-bench-metrics-"))
        directory = configure_multiprocess(created)
    current = metrics()
    raw_histogram = Histogram(
        "bench_raw_seconds", "raw", ["model"], registry=None, buckets=E2E_BUCKETS
    ).labels("m")
    raw_counter = Counter("bench_raw_total", "raw", ["model"], registry=None).labels("m")
    series = current.model("bench-model")

    def raw_observes() -> None:
        for _ in range(count):
            raw_histogram.observe(0.05)

    def raw_incs() -> None:
        for _ in range(count):
            raw_counter.inc(3)

    def series_observes() -> None:
        for _ in range(count):
            series.e2e.observe(0.05)

    def series_incs() -> None:
        for _ in range(count):
            series.prompt_tokens.inc(3)

    usage = Usage(prompt_tokens=40, completion_tokens=20)
    row = _turn_row()

    def turns_buffered() -> None:
        for _ in range(count):
            current.http("POST", "/v1/chat/completions", 200, 0.2)
            observe_turn(row, "api", usage)
            for _ in range(GAPS_PER_TURN):
                series.inter_token.observe(0.004)
        current.flush()

    raw_labels = [Counter(f"bench_raw_{n}_total", "raw", ["m"], registry=None).labels("m")
                  for n in range(5)]  # fmt: skip
    raw_hists = [Histogram(f"bench_raw_{n}_seconds", "raw", ["m"], registry=None).labels("m")
                 for n in range(5)]  # fmt: skip

    def turns_direct() -> None:
        for _ in range(count):
            for counter in raw_labels:
                counter.inc(1)
            for histogram in raw_hists[:4]:
                histogram.observe(0.1)
            for _ in range(GAPS_PER_TURN):
                raw_hists[4].observe(0.004)

    logger = logging.getLogger("bench.access")
    logger.propagate = False
    with open(os.devnull, "w") as null:
        handler = logging.StreamHandler(null)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)

        def log_lines() -> None:
            for _ in range(count):
                logger.info(
                    "%s %s %d", "POST", "/v1/chat/completions", 200,
                    extra={"fields": {"method": "POST", "route": "/v1/chat/completions",
                                      "path": "/v1/chat/completions", "status": 200,
                                      "duration_ms": 1.234, "client": "127.0.0.1"}},
                )  # fmt: skip

        results = {
            "histogram observe, prometheus_client (mmap)": _best_us(raw_observes, count),
            "histogram observe, Onebox series": _best_us(series_observes, count),
            "counter inc, prometheus_client (mmap)": _best_us(raw_incs, count),
            "counter inc, Onebox series": _best_us(series_incs, count),
            f"one turn's metrics, straight to mmap ({GAPS_PER_TURN} gaps)": _best_us(
                turns_direct, count
            ),
            f"one turn's metrics, Onebox (+ flush, {GAPS_PER_TURN} gaps)": _best_us(
                turns_buffered, count
            ),
            "access log line (JSON, orjson)": _best_us(log_lines, count),
        }
        logger.removeHandler(handler)

    async def bare(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    access = logging.getLogger("onebox.access")
    saved = access.handlers[:], access.propagate, access.level
    with open(os.devnull, "w") as null:
        handler = logging.StreamHandler(null)
        handler.setFormatter(JsonFormatter())
        access.handlers[:] = [handler]
        access.propagate = False
        access.setLevel(logging.INFO)
        try:
            requests = count // 2
            bare_us = asyncio.run(_asgi_us(bare, requests))
            wrapped_us = asyncio.run(_asgi_us(AccessLog(bare, log=True), requests))
        finally:
            access.handlers[:], access.propagate, _ = saved[0], saved[1], None
            access.setLevel(saved[2])
    results["ASGI request, bare app"] = bare_us
    results["ASGI request, AccessLog middleware (id, metrics, log)"] = wrapped_us
    results["  added by the middleware"] = wrapped_us - bare_us

    print(f"Metrics and access log cost (multiprocess files in {directory}), µs, best of "
          f"{ROUNDS} rounds of {count:,}")  # fmt: skip
    print_table(["what", "µs each"], [[name, value] for name, value in results.items()])
    if created is not None:  # this process keeps writing there, harmlessly, once unlinked
        shutil.rmtree(created, ignore_errors=True)
    return {"microseconds": results, "count": count}
