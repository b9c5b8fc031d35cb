"""Showing a run: the rich tables, the JSON file and the optional plot."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from onebox.loadtest.runner import Sample
from onebox.loadtest.stats import LAG_WARNING_MS

PLOT_EXTRA = "bench"
LATENCY_ROWS = (("ttft", "TTFT"), ("itl", "ITL"), ("tpot", "TPOT"), ("e2e", "E2E"))


def sample_rows(samples: Sequence[Sample], begin: float) -> list[dict[str, Any]]:
    """Per request, for the JSON file (and the plot, which can be redrawn from it)."""
    return [
        {
            "t": round(s.start - begin, 6),
            "ok": s.ok,
            "error": s.error,
            "e2e_ms": round(s.e2e * 1000, 3),
            "ttft_ms": None if s.ttft is None else round(s.ttft * 1000, 3),
            "output_tokens": s.output_tokens,
            "lag_ms": round(s.lag * 1000, 3),
        }
        for s in samples
    ]


def _ms(value: float | int | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"


def print_load_report(console: Console, report: dict[str, Any]) -> None:
    """Throughput and latency tables of a chat or retrieve run."""
    summary = report["summary"]
    overview = Table(title=f"{report['mode']}: {report['target']}", title_justify="left")
    overview.add_column("load")
    overview.add_column("completed", justify="right")
    overview.add_column("failed", justify="right")
    overview.add_column("requests/s", justify="right")
    if report["mode"] == "chat":
        overview.add_column("output tokens/s", justify="right")
    row = [
        report["load"],
        str(summary["completed"]),
        f"[red]{summary['failed']}[/red]" if summary["failed"] else "0",
        f"{summary['requests_per_s']:.1f}",
    ]
    if report["mode"] == "chat":
        row.append(f"{summary['output_tokens_per_s']:.0f}")
    overview.add_row(*row)
    console.print(overview)

    latency = Table(title="latency (ms)", title_justify="left")
    latency.add_column("")
    for column in ("mean", "p50", "p95", "p99", "max"):
        latency.add_column(column, justify="right")
    for key, label in LATENCY_ROWS:
        values = summary["latency_ms"].get(key)
        if values:
            latency.add_row(label, *(_ms(values[c]) for c in ("mean", "p50", "p95", "p99", "max")))
    console.print(latency)
    if summary["errors"]:
        kinds = ", ".join(f"{kind} x{count}" for kind, count in summary["errors"].items())
        console.print(f"[red]errors[/red]: {kinds}", highlight=False)
    if not summary["generator_kept_up"]:
        lag = summary["send_lag_ms"]
        console.print(
            f"[yellow]The load generator sent late[/yellow] (p99 {lag['p99']:.1f} ms, max "
            f"{lag['max']:.1f} ms behind schedule, over {LAG_WARNING_MS:g} ms): it was short of "
            "CPU, and open-loop latencies include that delay. Run it on another machine or "
            "lower the rate.",
            highlight=False,
        )


def print_ingest_report(console: Console, report: dict[str, Any]) -> None:
    result = report["summary"]
    table = Table(title=f"ingest: {report['target']}", title_justify="left")
    for column in ("documents", "ready", "failed", "chunks", "upload s", "indexed s"):
        table.add_column(column, justify="right")
    table.add_column("docs/s", justify="right")
    table.add_column("chunks/s", justify="right")
    table.add_row(
        str(result["documents"]),
        str(result["ready"]),
        f"[red]{result['failed']}[/red]" if result["failed"] else "0",
        str(result["chunks"]),
        f"{result['upload_s']:.2f}",
        f"{result['indexed_s']:.2f}",
        f"{result['documents_per_s']:.2f}",
        f"{result['chunks_per_s']:.1f}",
    )
    console.print(table)
    ready = result.get("time_to_ready_ms")
    if ready:
        console.print(
            f"time from a document's upload to ready: p50 {_ms(ready['p50'])} ms, p95 "
            f"{_ms(ready['p95'])} ms (seen by polling every {result['poll_interval_s']:g} s)",
            highlight=False,
        )
    if result["failures"]:
        console.print(f"[red]failed[/red]: {result['failures']}", highlight=False)


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, allow_nan=False, default=_jsonable) + "\n")


def _jsonable(value: object) -> object:
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def write_plot(path: Path, report: dict[str, Any]) -> None:
    """Latency distribution and throughput over time, as a PNG. Needs matplotlib (the
    ``bench`` extra), imported only here."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError(
            f"--plot needs matplotlib: pip install 'onebox[{PLOT_EXTRA}]' ({exc})"
        ) from exc
    rows = [row for row in report["samples"] if row["ok"]]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    e2e = [row["e2e_ms"] for row in rows]
    ttft = [row["ttft_ms"] for row in rows if row["ttft_ms"] is not None]
    if e2e:
        left.hist(e2e, bins=60, alpha=0.6, label="end to end")
    if ttft:
        left.hist(ttft, bins=60, alpha=0.6, label="time to first token")
    for key, style in (("p50", ":"), ("p99", "--")):
        value = (report["summary"]["latency_ms"].get("e2e") or {}).get(key)
        if value is not None:
            left.axvline(value, color="black", linestyle=style, linewidth=1, label=f"E2E {key}")
    left.set_xlabel("ms")
    left.set_ylabel("requests")
    left.set_title("latency distribution")
    left.legend()
    timeline = report["summary"]["timeline"]
    seconds = [row["t"] for row in timeline]
    right.plot(seconds, [row["completed"] for row in timeline], label="completed/s")
    right.plot(seconds, [row["failed"] for row in timeline], label="failed/s", color="red")
    right.set_xlabel("s since start")
    right.set_ylabel("requests per second")
    right.set_title("throughput over time")
    if report["mode"] == "chat":
        tokens = right.twinx()
        tokens.plot(seconds, [row["output_tokens"] for row in timeline], color="gray", alpha=0.6)
        tokens.set_ylabel("output tokens per second", color="gray")
    right.legend(loc="lower right")
    figure.suptitle(f"{report['mode']} · {report['load']}")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
