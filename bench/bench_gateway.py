"""Gateway overhead: identical load straight to an upstream and through Onebox.

The upstream is the fake OpenAI server (a real process). Onebox runs as its own process
with a models file pointing at it, the way a team would put it in front of vLLM. Reported:
added TTFT and end-to-end latency (p50/p95/p99) at fixed arrival rates, maximum sustained
req/s, 1,000 concurrent streams, error counts and Onebox's peak RSS.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.loadgen import Target, closed_loop, concurrent, open_loop, summarize
from bench.table import print_table
from onebox.testing.fake_upstream import start_fake_upstream
from onebox.testing.ready import wait_until_ready

TOKEN = "bench-token-" + "x" * 24
BODY = {
    "model": "upstream-model",
    "messages": [{"role": "user", "content": "Say something short."}],
    "stream": True,
    "max_tokens": 16,
}


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def onebox_server(upstream_url: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    with tempfile.TemporaryDirectory(prefix="onebox-bench-") as directory:
        models = Path(directory) / "models.yaml"
        models.write_text(
            "models:\n"
            "  - name: upstream-model\n"
            "    provider: openai\n"
            f"    upstream_url: {upstream_url}\n"
            "    context_window: 8192\n"
            "    max_retries: 0\n"
        )
        port = _free_port()
        env = {
            **os.environ,
            "ONEBOX_MODELS_FILE": str(models),
            "ONEBOX_API_TOKEN": TOKEN,
            "ONEBOX_LOG_LEVEL": "WARNING",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "onebox", "serve", "--port", str(port), "--data-dir",
             str(Path(directory) / "data")],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            if not wait_until_ready(url, alive=lambda: process.poll() is None):
                raise RuntimeError(process.stderr.read().decode() if process.stderr else "")
            yield url, process
        finally:
            process.terminate()
            process.wait(timeout=15)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _added(onebox: dict[str, Any], direct: dict[str, Any], key: str, q: str) -> float:
    try:
        return float(onebox[key][q]) - float(direct[key][q])
    except KeyError:
        return float("nan")


async def _measure(direct: Target, gateway: Target, quick: bool) -> dict[str, Any]:
    seconds = 3.0 if quick else 10.0
    rates = [50, 200] if quick else [50, 200, 500]
    results: dict[str, Any] = {"rates": {}}
    # Warm both paths (connection pools, imports, first-request costs).
    await open_loop(direct, BODY, 50, 1)
    await open_loop(gateway, BODY, 50, 1)
    for rate in rates:
        direct_run = summarize(*await open_loop(direct, BODY, rate, seconds))
        onebox_run = summarize(*await open_loop(gateway, BODY, rate, seconds))
        results["rates"][str(rate)] = {"direct": direct_run, "onebox": onebox_run}
    workers = 32
    results["max_sustained"] = {
        "direct": summarize(*await closed_loop(direct, BODY, workers, seconds / 2)),
        "onebox": summarize(*await closed_loop(gateway, BODY, workers, seconds / 2)),
    }
    streams = 200 if quick else 1000
    slow = {**BODY, "max_tokens": 32}
    results["concurrent"] = {
        "streams": streams,
        "direct": summarize(*await concurrent(direct, slow, streams)),
        "onebox": summarize(*await concurrent(gateway, slow, streams)),
    }
    return results


def run(quick: bool) -> dict[str, Any]:
    # 16 tokens streamed back to back after 10 ms: overhead dominates, as in the worst case.
    with contextlib.ExitStack() as stack:
        upstream = stack.enter_context(
            start_fake_upstream(ttft_ms=10, tokens_per_second=0, tokens=16)
        )
        url, process = stack.enter_context(onebox_server(upstream.url))
        direct = Target.from_url(f"{upstream.url}/chat/completions")
        gateway = Target.from_url(f"{url}/v1/chat/completions", TOKEN)
        results = asyncio.run(_measure(direct, gateway, quick))
        results["onebox_peak_rss_mb"] = peak_rss_mb(process.pid)

    rows = []
    for rate, pair in results["rates"].items():
        rows.append([
            f"{rate} req/s",
            pair["direct"]["achieved_rps"], pair["onebox"]["achieved_rps"],
            _added(pair["onebox"], pair["direct"], "ttft_ms", "50"),
            _added(pair["onebox"], pair["direct"], "ttft_ms", "95"),
            _added(pair["onebox"], pair["direct"], "ttft_ms", "99"),
            _added(pair["onebox"], pair["direct"], "total_ms", "95"),
            pair["direct"]["errors"], pair["onebox"]["errors"],
        ])  # fmt: skip
    print_table(
        ["load", "direct rps", "onebox rps", "+TTFT p50", "+TTFT p95", "+TTFT p99",
         "+e2e p95", "err direct", "err onebox"],
        rows,
    )  # fmt: skip
    sustained = results["max_sustained"]
    ratio = sustained["onebox"]["achieved_rps"] / max(sustained["direct"]["achieved_rps"], 1e-9)
    results["max_sustained"]["ratio"] = ratio
    conc = results["concurrent"]
    print()
    print_table(
        ["measure", "direct", "onebox", "onebox/direct"],
        [
            ["max sustained req/s (32 clients)", sustained["direct"]["achieved_rps"],
             sustained["onebox"]["achieved_rps"], ratio],
            [f"{conc['streams']} concurrent streams: errors", conc["direct"]["errors"],
             conc["onebox"]["errors"], ""],
            [f"{conc['streams']} concurrent streams: TTFT p95 ms",
             conc["direct"]["ttft_ms"].get("95", float("nan")),
             conc["onebox"]["ttft_ms"].get("95", float("nan")), ""],
            ["onebox peak RSS MB", "", results["onebox_peak_rss_mb"], ""],
        ],
    )  # fmt: skip
    return results
