"""``onebox bench``: the load generator against the fake upstream (a real server process)
and a live Onebox. Timing bands are wide on purpose: they check that the numbers measure
the configured delays, not how fast this machine is (that belongs in bench/)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from onebox.core.settings import Settings
from onebox.llm.fake import FakeProvider
from onebox.loadtest.http import Client
from onebox.loadtest.runner import Load, Sample, run_load
from onebox.loadtest.stats import distribution, percentile, summarize
from onebox.testing.fake_upstream import FakeUpstream, start_fake_upstream
from tests.conftest import LiveServer, run_live_server

pytestmark = pytest.mark.timeout(240)
SRC = str(Path(__file__).resolve().parents[1] / "src")


def bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")])),
    }
    env.pop("OPENAI_API_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "onebox", "bench", *args],
        capture_output=True, text=True, timeout=timeout, env=env, check=False,
    )  # fmt: skip


def report_of(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


@pytest.fixture(scope="module")
def paced() -> Iterator[FakeUpstream]:
    """100 ms to the first token, then 50 tokens a second: 20 ms apart."""
    with start_fake_upstream(ttft_ms=100, tokens_per_second=50, tokens=6) as fake:
        yield fake


def test_streaming_run_reports_the_upstreams_ttft_and_token_pace(
    paced: FakeUpstream, tmp_path: Path
) -> None:
    out = tmp_path / "chat.json"
    result = bench(
        "chat", "--url", paced.url, "--concurrency", "2", "--requests", "12",
        "--max-tokens", "6", "--warmup", "1", "--json", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "TTFT" in result.stdout
    assert "ITL" in result.stdout
    report = report_of(out)
    summary = report["summary"]
    assert (summary["completed"], summary["failed"]) == (12, 0)
    latency = summary["latency_ms"]
    assert 95 <= latency["ttft"]["p50"] <= 180
    # Every read after the first carries one token, 20 ms after the one before it.
    assert 14 <= latency["itl"]["p50"] <= 40
    assert 14 <= latency["tpot"]["p50"] <= 40
    assert 190 <= latency["e2e"]["p50"] <= 320  # 100 ms + 5 x 20 ms
    # Usage reported by the server: six tokens per reply.
    assert summary["output_tokens"] == 12 * 6
    assert summary["output_tokens_per_s"] == pytest.approx(
        summary["output_tokens"] / summary["duration_s"]
    )
    for key in ("requests_per_s", "duration_s", "errors", "send_lag_ms", "timeline"):
        assert key in summary
    for key in ("mean", "p50", "p95", "p99", "max", "count"):
        assert key in latency["e2e"]
    assert report["mode"] == "chat"
    assert report["config"]["stream"] is True
    assert len(report["samples"]) == 12
    assert all(row["ok"] and row["output_tokens"] == 6 for row in report["samples"])


def test_non_streaming_run_reports_end_to_end_only(paced: FakeUpstream, tmp_path: Path) -> None:
    out = tmp_path / "whole.json"
    result = bench(
        "chat", "--url", paced.url, "--no-stream", "--concurrency", "2", "--requests", "6",
        "--max-tokens", "6", "--warmup", "0", "--json", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = report_of(out)["summary"]
    assert summary["completed"] == 6
    assert summary["latency_ms"]["ttft"] is None
    assert 190 <= summary["latency_ms"]["e2e"]["p50"] <= 320
    assert summary["output_tokens"] == 36


def test_open_loop_rate_sends_on_schedule(tmp_path: Path) -> None:
    with start_fake_upstream(ttft_ms=5, tokens=4) as fake:
        out = tmp_path / "rate.json"
        result = bench(
            "chat", "--url", fake.url, "--rate", "40", "--arrival", "uniform",
            "--duration", "2", "--max-tokens", "4", "--warmup", "0", "--json", str(out),
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = report_of(out)
    assert report["summary"]["requests"] == 79  # every 25 ms, strictly before 2 s
    assert report["config"]["arrival"] == "uniform"
    starts = [row["t"] for row in sorted(report["samples"], key=lambda row: row["t"])]
    # Latency counts from the schedule: the starts are the schedule, 25 ms apart.
    assert starts[1] - starts[0] == pytest.approx(0.025, abs=1e-6)


def test_failures_are_counted_with_their_kind(tmp_path: Path) -> None:
    with start_fake_upstream(fail_mode="status-500") as fake:
        out = tmp_path / "failing.json"
        result = bench(
            "chat", "--url", fake.url, "--model", "m", "--requests", "5", "--warmup", "0",
            "--json", str(out),
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = report_of(out)["summary"]
    assert (summary["completed"], summary["failed"]) == (0, 5)
    assert summary["errors"] == {"HTTP 500": 5}
    assert summary["latency_ms"]["e2e"] is None


def test_plot_is_a_png(paced: FakeUpstream, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the 'bench' extra is not installed")
    image = tmp_path / "run.png"
    result = bench(
        "chat", "--url", paced.url, "--requests", "4", "--max-tokens", "3", "--warmup", "0",
        "--plot", str(image),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unreachable_target_fails_clearly(tmp_path: Path) -> None:
    from tests.conftest import free_port

    result = bench("chat", "--url", f"http://127.0.0.1:{free_port()}", "--requests", "1")
    assert result.returncode == 1
    assert "bench failed" in result.stderr


# --- arrivals and statistics, without a server ---------------------------------------


def test_burst_arrivals_send_like_hey() -> None:
    """``hey -c 4 -q 10``: four workers, each on a 400 ms tick; all four fire together."""
    sends: list[float] = []

    async def request(scheduled: float | None) -> Sample:
        assert scheduled is None  # latency counts from the send, as hey does
        loop = asyncio.get_running_loop()
        sends.append(loop.time())
        await asyncio.sleep(0.01)
        return Sample(start=loop.time(), done=loop.time(), ok=True)

    async def run() -> float:
        begin = asyncio.get_running_loop().time()
        await run_load(Load("burst", rate=10, concurrency=4, requests=8), request)
        return begin

    begin = asyncio.run(run())
    offsets = sorted(send - begin for send in sends)
    assert len(offsets) == 8
    first, second = offsets[:4], offsets[4:]
    assert max(first) - min(first) < 0.05  # one burst
    assert 0.35 <= min(first) <= 0.5  # hey's first tick: one interval in
    assert 0.35 <= min(second) - min(first) <= 0.5


def test_closed_loop_keeps_the_concurrency() -> None:
    in_flight = {"now": 0, "most": 0}

    async def request(scheduled: float | None) -> Sample:
        in_flight["now"] += 1
        in_flight["most"] = max(in_flight["most"], in_flight["now"])
        await asyncio.sleep(0.005)
        in_flight["now"] -= 1
        return Sample(start=0.0, done=0.005, ok=True)

    samples, _ = asyncio.run(run_load(Load("closed", concurrency=3, requests=12), request))
    assert len(samples) == 12
    assert in_flight["most"] == 3


def test_load_refuses_contradictions() -> None:
    with pytest.raises(ValueError, match="either a duration or a number"):
        Load("closed", concurrency=1)
    with pytest.raises(ValueError, match="need a positive rate"):
        Load("poisson", duration=1)
    with pytest.raises(ValueError, match="need a concurrency"):
        Load("burst", rate=10, duration=1)


def test_percentiles_and_summary() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    assert distribution([]) is None
    samples = [
        Sample(start=0.0, done=0.1, ok=True, first_token=0.05, token_times=[0.05, 0.07, 0.1],
               output_tokens=3),
        Sample(start=0.0, done=0.2, ok=False, error="HTTP 503", lag=0.004),
    ]  # fmt: skip
    summary = summarize(samples, begin=0.0)
    assert (summary["completed"], summary["failed"]) == (1, 1)
    assert summary["errors"] == {"HTTP 503": 1}
    assert summary["latency_ms"]["ttft"]["p50"] == pytest.approx(50)
    assert summary["latency_ms"]["itl"]["mean"] == pytest.approx(25)
    assert summary["latency_ms"]["tpot"]["p50"] == pytest.approx(25)
    assert summary["generator_kept_up"] is False  # 4 ms late is over the 2 ms warning
    assert summary["timeline"][0] == {"t": 0.0, "completed": 1, "failed": 1, "output_tokens": 3}


# --- ingest and retrieve against a live Onebox ---------------------------------------


@pytest.fixture(scope="module")
def embeddings() -> Iterator[FakeUpstream]:
    with start_fake_upstream() as fake:
        yield fake


@pytest.fixture
def onebox(tmp_path: Path, embeddings: FakeUpstream) -> Iterator[LiveServer]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "live",
        llm_provider="fake",
        model_name="fake-echo",
        embedding_provider="openai",
        embedding_base_url=embeddings.url,
        chunk_size=400,
        chunk_overlap=50,
    )
    yield from run_live_server(settings, FakeProvider(model_name="fake-echo", context_size=4096))


def test_ingest_then_retrieve_on_a_running_onebox(onebox: LiveServer, tmp_path: Path) -> None:
    out = tmp_path / "ingest.json"
    result = bench(
        "ingest", "--url", onebox.url, "--documents", "6", "--words", "300", "--batch", "4",
        "--keep", "--json", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = report_of(out)["summary"]
    assert (summary["documents"], summary["ready"], summary["failed"]) == (6, 6, 0)
    assert summary["chunks"] >= 6  # 300 words of ~6 characters: several 400-character chunks
    assert summary["documents_per_s"] > 0
    assert summary["chunks_per_s"] == pytest.approx(summary["chunks"] / summary["indexed_s"])

    search = tmp_path / "search.json"
    result = bench(
        "retrieve", "--url", onebox.url, "--collection", summary["collection_id"],
        "--concurrency", "2", "--requests", "10", "--json", str(search),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    searched = report_of(search)["summary"]
    assert (searched["completed"], searched["failed"]) == (10, 0)
    assert searched["latency_ms"]["e2e"]["p50"] > 0


def test_ingest_deletes_the_collection_it_made(onebox: LiveServer) -> None:
    result = bench("ingest", "--url", onebox.url, "--documents", "2", "--words", "50")
    assert result.returncode == 0, result.stderr

    async def names() -> list[str]:
        client = Client(onebox.url)
        try:
            from onebox.loadtest.ingest import call

            listed = await call(client, "GET", "/api/collections")
            return [item["name"] for item in listed["items"]]
        finally:
            client.close()

    assert not [name for name in asyncio.run(names()) if name.startswith("onebox-bench-")]
