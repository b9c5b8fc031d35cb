"""Two real `onebox serve` processes on one data dir: their metrics add up in either one's
/metrics (prometheus_client multiprocess files in <data_dir>/metrics, nothing configured),
a stopped process's counters stay while its gauges go, every log line is JSON, and a
request id given to an upload shows up in the log lines of the job that ingests it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from onebox.testing.fake_upstream import start_fake_upstream
from onebox.testing.ready import wait_until_ready
from tests.conftest import free_port
from tests.documents_helpers import create_collection, upload, wait_for_documents
from tests.metrics_helpers import Samples, scrape_sync, value

pytestmark = pytest.mark.timeout(240)

MODEL = "fake-echo"
V1 = "/v1/chat/completions"


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def records(self) -> list[dict[str, Any]]:
        lines = self.log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_server(env: dict[str, str], tmp: Path, name: str) -> Server:
    port = free_port()
    log = tmp / f"{name}.log"
    base = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    with log.open("wb") as stderr, (tmp / f"{name}.out").open("wb") as stdout:
        process = subprocess.Popen(
            [sys.executable, "-m", "onebox", "serve", "--port", str(port)],
            env={**base, **env}, stdout=stdout, stderr=stderr,
        )  # fmt: skip
    server = Server(f"http://127.0.0.1:{port}", process, log)
    if not wait_until_ready(server.url, timeout=120, alive=lambda: process.poll() is None):
        server.stop()
        raise AssertionError(f"{name} did not start:\n{log.read_text()[-3000:]}")
    return server


@dataclass
class Pair:
    a: Server
    b: Server
    data_dir: Path


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    tmp = tmp_path_factory.mktemp("workers")
    with start_fake_upstream() as embeddings:
        env = {
            "ONEBOX_DATA_DIR": str(tmp / "data"),
            "ONEBOX_LLM_PROVIDER": "fake",
            "ONEBOX_MODEL_NAME": MODEL,
            "ONEBOX_EMBEDDING_PROVIDER": "openai",
            "ONEBOX_EMBEDDING_BASE_URL": embeddings.url,
            # Each process keeps its own in-memory index: Qdrant Edge is one process's.
            "ONEBOX_VECTOR_BACKEND": "qdrant",
            "ONEBOX_QDRANT_URL": ":memory:",
            "ONEBOX_LOG_LEVEL": "INFO",
        }
        a = start_server(env, tmp, "a")  # first: it migrates the shared database
        try:
            b = start_server(env, tmp, "b")
            try:
                yield Pair(a, b, tmp / "data")
            finally:
                b.stop()
        finally:
            a.stop()


def chat(url: str) -> dict[str, int]:
    response = httpx.post(
        f"{url}{V1}",
        json={"model": MODEL, "messages": [{"role": "user", "content": "add us up"}]},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return dict(response.json()["usage"])


def api_turns(samples: Samples) -> float:
    return value(samples, "onebox_chat_requests_total", model=MODEL, door="api", status="complete")


def settle(url: str, expected_turns: float) -> Samples:
    """Each process hands its counts over once a second: wait for both to have."""
    deadline = time.monotonic() + 15
    while True:
        samples = scrape_sync(url)
        if api_turns(samples) >= expected_turns or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


def test_request_id_follows_an_upload_into_its_job(pair: Pair) -> None:
    import asyncio

    async def ingest() -> str:
        async with httpx.AsyncClient(base_url=pair.a.url, timeout=30) as client:
            collection = await create_collection(client, "manuals")
            response = await upload(
                client, collection["id"], [("pump.md", b"# Pump\n\nPrime it before use.\n")],
                headers={"X-Request-ID": "ingest-7f3a"},
            )  # fmt: skip
            assert response.status_code == 202, response.text
            assert response.headers["x-request-id"] == "ingest-7f3a"
            items = await wait_for_documents(client, collection["id"], expected=1, max_wait=90)
            assert items[0]["status"] == "ready", items
            return str(items[0]["job"]["id"])

    job_id = asyncio.run(ingest())
    records = pair.a.records() + pair.b.records()  # every line of both logs is JSON
    traced = [r for r in records if r.get("request_id") == "ingest-7f3a"]
    job_lines = [r for r in traced if r["logger"] == "onebox.jobs.runner"]
    assert any("started" in r["message"] and job_id in r["message"] for r in job_lines)
    assert any(r.get("job_id") == job_id and r.get("outcome") == "done" for r in job_lines)
    assert any(r["logger"] == "onebox.access" and r["status"] == 202 for r in traced)
    samples = scrape_sync(pair.a.url)
    assert value(samples, "onebox_jobs_finished_total", kind="ingest_document", outcome="done") >= 1
    assert value(samples, "onebox_ingestion_chunks_indexed_total") >= 1
    assert value(samples, "onebox_embedding_latency_seconds_count", kind="document") >= 1
    assert value(samples, "onebox_jobs", kind="ingest_document", state="queued") == 0


def test_two_processes_add_up(pair: Pair) -> None:
    before = settle(pair.a.url, 0)
    usages = [chat(pair.a.url) for _ in range(3)] + [chat(pair.b.url) for _ in range(2)]
    expected = api_turns(before) + 5

    for url in (pair.a.url, pair.b.url):  # either process answers for both
        after = settle(url, expected)
        assert api_turns(after) == expected
        for name, key in (
            ("onebox_prompt_tokens_total", "prompt_tokens"),
            ("onebox_generation_tokens_total", "completion_tokens"),
        ):
            grown = value(after, name, model=MODEL) - value(before, name, model=MODEL)
            assert grown == sum(usage[key] for usage in usages), name
        route = {"method": "POST", "route": V1, "status": "200"}
        assert (
            value(after, "onebox_http_requests_total", **route)
            - value(before, "onebox_http_requests_total", **route)
            == 5
        )
        ttft = "onebox_time_to_first_token_seconds_count"
        assert value(after, ttft, model=MODEL) - value(before, ttft, model=MODEL) == 5
        assert value(after, "onebox_requests_running", model=MODEL) == 0
        assert value(after, "onebox_process_resident_memory_bytes") > 0

    # B stops: what it counted stays in the totals; its live gauges leave with it.
    directory = pair.data_dir / "metrics"
    pid = pair.b.process.pid
    rss_both = value(scrape_sync(pair.a.url), "onebox_process_resident_memory_bytes")
    assert list(directory.glob(f"gauge_livesum_{pid}.db"))
    pair.b.stop()
    after_stop = scrape_sync(pair.a.url)
    assert api_turns(after_stop) == expected
    assert not list(directory.glob(f"gauge_live*_{pid}.db"))
    assert list(directory.glob(f"counter_{pid}.db"))
    assert 0 < value(after_stop, "onebox_process_resident_memory_bytes") < rss_both
