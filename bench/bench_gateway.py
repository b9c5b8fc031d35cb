"""Gateway overhead: identical load straight to an upstream and through Onebox, measured
by an outside load generator (``hey``) and by ``onebox bench``, in the same run.

The upstream is the fake OpenAI server (a real process) answering 16 tokens after 20 ms.
Onebox runs as its own process with a models file pointing at it, the way a team puts it in
front of vLLM. For each of streaming and not, at 50 and 200 requests/s, and repeated
(medians reported, every run kept):

* ``hey -c C -q R/C``: C workers on the same tick, so bursts of C requests;
* ``onebox bench --arrival burst --concurrency C``: the same bursts (should agree with hey);
* ``onebox bench --arrival poisson``: the same rate as independent arrivals, latency from
  each request's scheduled start (no coordinated omission).

"Added" is Onebox minus direct, per run, for end-to-end latency (hey's response time) and,
from onebox bench, time to first token. Then the most requests per second with
``wrk -c64`` (closed loop), straight and through Onebox with 1, 2 and 4 workers.

LiteLLM's proxy, when installed (``make bench-deps``), is measured the same way in the same
run, in front of the same fake: added latency by ``hey -c 5`` at a rate it holds (Onebox
alongside, alternating) and its ``wrk -c64`` peak; the report gives Onebox's peaks as
multiples of it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.gateway_servers import (
    TOKEN,
    hey,
    litellm,
    litellm_executable,
    onebox,
    onebox_bench,
    postgres18,
    raise_priority,
    several_workers_env,
    wrk,
)
from bench.table import print_table
from onebox.testing.fake_upstream import start_fake_upstream

RATES = (50, 200)
# hey's workers, i.e. requests per burst (every BURST/rate seconds). Five is the fewest that
# still holds 200 req/s against a 20 ms upstream (each worker's tick: 25 ms).
BURST = 5
WIDE_BURST = 20  # once more at 200 req/s with bursts this size: how much the shape matters
WORKER_COUNTS = (1, 2, 4)
QUANTILES = ("p50", "p95", "p99")
# LiteLLM's proxy peaks below 100 req/s on two cores: its latency is compared at a rate it
# holds, Onebox's alongside.
LITELLM_RATE = 20


def _machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()]}


def _added(onebox_run: dict[str, Any], direct_run: dict[str, Any], key: str) -> dict[str, float]:
    ours, theirs = onebox_run.get(key) or {}, direct_run.get(key) or {}
    return {q: ours[q] - theirs[q] for q in QUANTILES if q in ours and q in theirs}


def _median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {
        q: statistics.median(run[q] for run in runs) for q in QUANTILES if runs and q in runs[0]
    }


def _pair(
    tool: str, upstream: str, gateway: str, stream: bool, rate: int, seconds: float
) -> dict[str, Any]:
    if tool.startswith("hey"):
        burst = WIDE_BURST if tool == "hey-wide" else BURST
        direct = hey(upstream, stream, rate, burst, seconds, None)
        through = hey(gateway, stream, rate, burst, seconds, TOKEN)
        return {
            "direct": direct,
            "onebox": through,
            "added_e2e_ms": _added(through, direct, "e2e_ms"),
        }
    direct = onebox_bench(upstream, stream, tool, rate, BURST, seconds, None)
    through = onebox_bench(gateway, stream, tool, rate, BURST, seconds, TOKEN)
    added = {"added_e2e_ms": _added(through["latency_ms"], direct["latency_ms"], "e2e")}
    if stream:
        added["added_ttft_ms"] = _added(through["latency_ms"], direct["latency_ms"], "ttft")
    return {"direct": direct, "onebox": through, **added}


def _overhead(
    upstream: str,
    gateway: str,
    repeats: int,
    seconds: float,
    rates: tuple[int, ...] = RATES,
    tools: tuple[str, ...] = ("hey", "burst", "poisson"),
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for stream in (True, False):
        for rate in rates:
            key = f"{'stream' if stream else 'whole'}@{rate}"
            runs: dict[str, list[dict[str, Any]]] = {tool: [] for tool in tools}
            if rate == max(RATES) and "hey" in tools and len(tools) > 2:
                runs["hey-wide"] = []
            for _ in range(repeats):
                for tool in runs:  # interleaved, so drift in the machine's load hits all
                    runs[tool].append(_pair(tool, upstream, gateway, stream, rate, seconds))
            results[key] = {
                tool: {
                    "median_added_e2e_ms": _median_of([r["added_e2e_ms"] for r in done]),
                    "median_direct_e2e_ms": _median_of(
                        [
                            r["direct"].get("e2e_ms") or r["direct"]["latency_ms"]["e2e"]
                            for r in done
                        ]
                    ),
                    **(
                        {"median_added_ttft_ms": _median_of([r["added_ttft_ms"] for r in done])}
                        if not tool.startswith("hey") and stream
                        else {}
                    ),
                    "runs": done,
                }
                for tool, done in runs.items()
            }
            print(f"  {key}: " + ", ".join(
                f"{tool} +p95 {results[key][tool]['median_added_e2e_ms'].get('p95', float('nan')):.1f} ms"
                for tool in runs
            ), flush=True)  # fmt: skip
    return results


def _throughput(upstream: str, seconds: float, repeats: int) -> dict[str, Any]:
    """wrk -c64, streaming: straight, then through Onebox with 1, 2 and 4 workers sharing
    PostgreSQL 18 (pgvector) and Redis counters (what several workers need)."""
    results: dict[str, Any] = {"direct": wrk(upstream, True, seconds, 64, None), "workers": {}}
    with postgres18() as database:
        shared = several_workers_env(database, upstream)
        for count in WORKER_COUNTS:
            with onebox(upstream, count, shared) as (url, _):
                wrk(f"{url}/v1", True, 2, 64, TOKEN)  # warm every worker's pools
                results["workers"][str(count)] = wrk(f"{url}/v1", True, seconds, 64, TOKEN)
                if count == 2 and repeats:
                    print("  latency with 2 workers:", flush=True)
                    results["two_workers_overhead"] = _overhead(
                        upstream, f"{url}/v1", repeats, seconds, (max(RATES),), ("hey", "poisson")
                    )
            print(
                f"  {count} worker(s): {results['workers'][str(count)]['rps']:.0f} req/s",
                flush=True,
            )
    return results


def _litellm(upstream: str, gateway: str, seconds: float, repeats: int) -> dict[str, Any]:
    """LiteLLM's proxy in front of the same upstream: added latency by ``hey -c 5`` at
    ``LITELLM_RATE``, Onebox's measured alongside (runs alternating), and its ``wrk -c64``
    peak."""
    executable = litellm_executable()
    if executable is None:
        print("  LiteLLM: not installed (make bench-deps), skipped", flush=True)
        return {"skipped": "LiteLLM's proxy is not installed (make bench-deps)"}
    results: dict[str, Any] = {"version": _litellm_version(executable), "rate": LITELLM_RATE}
    with litellm(executable, upstream) as url:
        peer = f"{url}/v1"
        for stream in (True, False):
            hey(peer, stream, LITELLM_RATE, BURST, 2, TOKEN)  # its pools and first-call costs
        for stream in (True, False):
            runs: dict[str, list[dict[str, Any]]] = {"litellm": [], "onebox": []}
            for _ in range(repeats):
                for name, target in (("litellm", peer), ("onebox", gateway)):
                    direct = hey(upstream, stream, LITELLM_RATE, BURST, seconds, None)
                    through = hey(target, stream, LITELLM_RATE, BURST, seconds, TOKEN)
                    runs[name].append(
                        {"direct": direct, name: through, "added_e2e_ms": _added(through, direct, "e2e_ms")}
                    )  # fmt: skip
            key = f"{'stream' if stream else 'whole'}@{LITELLM_RATE}"
            results[key] = {
                name: {"median_added_e2e_ms": _median_of([r["added_e2e_ms"] for r in done]),
                       "runs": done}
                for name, done in runs.items()
            }  # fmt: skip
            print(f"  {key}: added p50 LiteLLM +" + " ms, Onebox +".join(
                f"{results[key][name]['median_added_e2e_ms'].get('p50', float('nan')):.1f}"
                for name in runs
            ) + " ms", flush=True)  # fmt: skip
        results["wrk_c64"] = wrk(peer, True, seconds, 64, TOKEN)
    # And with one worker per core, the count at which Onebox peaks here.
    with litellm(executable, upstream, workers=2) as url:
        wrk(f"{url}/v1", True, 2, 64, TOKEN)  # warm both workers
        results["wrk_c64_two_workers"] = wrk(f"{url}/v1", True, seconds, 64, TOKEN)
    print(f"  LiteLLM wrk -c64: {results['wrk_c64']['rps']:.0f} req/s, two workers "
          f"{results['wrk_c64_two_workers']['rps']:.0f}", flush=True)  # fmt: skip
    return results


def _litellm_version(executable: str) -> str | None:
    python = Path(executable).with_name("python")
    if not python.is_file():
        return None
    found = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return found.stdout.strip() or None


def _peaks_over_litellm(results: dict[str, Any]) -> dict[str, float] | None:
    """Onebox's ``wrk -c64`` peaks over LiteLLM's: one process each, and each one's best
    worker count."""
    peer = results.get("litellm", {})
    if "wrk_c64" not in peer:
        return None
    workers = results["max_throughput"]["workers"]
    best_peer = max(peer["wrk_c64"]["rps"], peer["wrk_c64_two_workers"]["rps"])
    return {
        "one_process": results["single_process_wrk_c64"]["rps"] / peer["wrk_c64"]["rps"],
        "best_workers": max(run["rps"] for run in workers.values()) / best_peer,
    }


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(quick: bool) -> dict[str, Any]:
    missing = [tool for tool in ("hey", "wrk") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(
            f"the gateway benchmark measures with {' and '.join(missing)}: "
            f"apt-get install {' '.join(missing)}"
        )
    repeats, seconds = (1, 4.0) if quick else (3, 10.0)
    results: dict[str, Any] = {
        "method": {
            "upstream": "onebox.testing.fake_upstream: 16 tokens after 20 ms (stream and not)",
            "onebox": "one `onebox serve` process, embedded topology (SQLite, Qdrant Edge, "
            "in-memory counters), models file pointing at the fake, an API token; metrics "
            "and the JSON access log on (ONEBOX_LOG_LEVEL=INFO, to a file)",
            "repeats": repeats,
            "seconds_per_run": seconds,
            "hey": f"hey -c {BURST} -q RATE/{BURST} (bursts of {BURST}); also -c {WIDE_BURST} "
            f"at {max(RATES)} req/s",
            "priority_raised": raise_priority(),
        },
        "machine_before": _machine(),
    }
    with contextlib.ExitStack() as stack:
        fake = stack.enter_context(start_fake_upstream(ttft_ms=20, tokens=16, tokens_per_second=0))
        url, process = stack.enter_context(onebox(fake.url))
        gateway = f"{url}/v1"
        for stream in (True, False):  # warm both paths: pools, caches, first-request costs
            hey(fake.url, stream, 100, 4, 2, None)
            hey(gateway, stream, 100, 4, 2, TOKEN)
        print("overhead (median of repeats):", flush=True)
        results["overhead"] = _overhead(fake.url, gateway, repeats, seconds)
        results["single_process_wrk_c64"] = wrk(gateway, True, seconds, 64, TOKEN)
        results["onebox_peak_rss_mb"] = _peak_rss_mb(process.pid)
        print("LiteLLM's proxy, same upstream:", flush=True)
        results["litellm"] = _litellm(fake.url, gateway, seconds, repeats)
    with start_fake_upstream(ttft_ms=20, tokens=16, tokens_per_second=0) as fake:
        print("max throughput, wrk -c64:", flush=True)
        results["max_throughput"] = _throughput(fake.url, seconds, repeats)
    results["peak_over_litellm"] = _peaks_over_litellm(results)
    results["machine_after"] = _machine()
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _print(results)
    return results


_LABELS = {
    "hey": f"hey -c {BURST}",
    "burst": f"onebox bench burst {BURST}",
    "poisson": "onebox bench poisson",
    "hey-wide": f"hey -c {WIDE_BURST}",
}


def _print(results: dict[str, Any]) -> None:
    rows = []
    for key, tools in results["overhead"].items():
        for tool in tools:
            added = tools[tool]["median_added_e2e_ms"]
            direct = tools[tool]["median_direct_e2e_ms"]
            rows.append([key, _LABELS[tool],
                         direct.get("p95", float("nan")), added.get("p50", float("nan")),
                         added.get("p95", float("nan")), added.get("p99", float("nan"))])  # fmt: skip
    for key, tools in results["max_throughput"].get("two_workers_overhead", {}).items():
        for tool in tools:
            added = tools[tool]["median_added_e2e_ms"]
            rows.append([f"{key}, 2 workers", _LABELS[tool],
                         tools[tool]["median_direct_e2e_ms"].get("p95", float("nan")),
                         added.get("p50", float("nan")), added.get("p95", float("nan")),
                         added.get("p99", float("nan"))])  # fmt: skip
    peer = results.get("litellm", {})
    for key in (f"stream@{LITELLM_RATE}", f"whole@{LITELLM_RATE}"):
        for name in ("litellm", "onebox"):
            if key not in peer:
                continue
            added = peer[key][name]["median_added_e2e_ms"]
            direct = _median_of([run["direct"]["e2e_ms"] for run in peer[key][name]["runs"]])
            rows.append([key, f"hey -c {BURST}, {'LiteLLM' if name == 'litellm' else 'Onebox'}",
                         direct.get("p95", float("nan")), added.get("p50", float("nan")),
                         added.get("p95", float("nan")), added.get("p99", float("nan"))])  # fmt: skip
    print_table(["load", "measured by", "direct p95", "+p50", "+p95", "+p99"], rows)
    throughput = results["max_throughput"]
    print()
    peak_rows = [["direct to the fake", throughput["direct"]["rps"]]]
    peak_rows += [["onebox, 1 process (embedded)", results["single_process_wrk_c64"]["rps"]]]
    peak_rows += [[f"onebox, {n} worker(s)", r["rps"]] for n, r in throughput["workers"].items()]
    if "wrk_c64" in peer:
        name = f"LiteLLM {peer.get('version') or ''}".rstrip()
        peak_rows.append([f"{name}, 1 worker", peer["wrk_c64"]["rps"]])
        peak_rows.append([f"{name}, 2 workers", peer["wrk_c64_two_workers"]["rps"]])
    print_table(["wrk -c64, streaming", "req/s"], peak_rows)
    ratio = results.get("peak_over_litellm")
    if ratio:
        print(f"Onebox's peak over LiteLLM's: {ratio['one_process']:.1f}x (one process each), "
              f"{ratio['best_workers']:.1f}x (each at its best worker count)")  # fmt: skip
