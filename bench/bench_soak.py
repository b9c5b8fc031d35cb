"""Soak: one ``onebox serve`` process under steady mixed traffic for a long time.

Every second the load sends a chat completion on /v1 (streamed and not, some answered
from a collection), a search and an embedding; every other second a message in the web
UI's chat (SSE); now and then the list pages, a document upload (a new one each time, the
oldest deleted so the set stays the same size) and a fresh conversation. The fake model
answers (``ONEBOX_LLM_PROVIDER=fake``); everything else is the real stack: SQLite, the
embedding model, the vector index, the in-process job worker.

Reported: Onebox's RSS every minute, its growth after warm-up (must stay within 10 %),
requests by kind and status, latency percentiles. Any 5xx or failed request fails it.

Duration: ``ONEBOX_SOAK_MINUTES=3 python -m bench soak`` (default 30 minutes; ``--quick``
3). A failed soak makes ``python -m bench`` exit non-zero, after writing its results.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.table import print_table
from onebox.testing.ready import stop_server, wait_until_ready

DEFAULT_MINUTES = 30.0
QUICK_MINUTES = 3.0
MAX_RSS_GROWTH = 0.10
SAMPLE_SECONDS = 60.0
TICK_SECONDS = 1.0
KEPT_DOCUMENTS = 8
MESSAGES_PER_CONVERSATION = 20
MODEL = "fake-cite-soak"  # "cite": the fake model quotes and cites retrieved passages
EMAIL = "soak@example.com"
PASSWORD = "soak-password-123"  # noqa: S105 (a throwaway account on a temporary server)
WORDS = [
    "harbour", "lantern", "granite", "meadow", "copper", "violet", "orchard", "falcon",
    "ember", "glacier", "canyon", "willow", "saffron", "thunder", "marble", "juniper",
]  # fmt: skip


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def onebox_server() -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """``onebox serve`` on a free port; yields its URL, process and log file (a file, not a
    pipe: a pipe nobody reads fills up and stalls the server's logging, then the server)."""
    with tempfile.TemporaryDirectory(prefix="onebox-soak-") as directory:
        port = _free_port()
        env = {
            **os.environ,
            "ONEBOX_LLM_PROVIDER": "fake",
            "ONEBOX_MODEL_NAME": MODEL,
            "ONEBOX_LOG_LEVEL": "WARNING",
        }
        log = Path(directory) / "onebox.log"
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "onebox", "serve", "--port", str(port), "--data-dir",
                 str(Path(directory) / "data")],
                env=env, stdout=log_file, stderr=subprocess.STDOUT,
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            if not wait_until_ready(url, alive=lambda: process.poll() is None, timeout=180):
                raise RuntimeError(log.read_text(errors="replace")[-4000:])
            yield url, process, log
        finally:
            stop_server(process, grace=30)


def logged_errors(log: Path) -> list[str]:
    """The server's own ERROR lines (JSON logging): the message and how its exception ended."""
    errors = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") == "ERROR":
            cause = str(entry.get("exception", "")).strip().splitlines()[-1:]
            errors.append(f"{entry.get('message')}: {' '.join(cause)}"[:400])
    return errors


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@dataclass
class Tally:
    statuses: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    failures: list[str] = field(default_factory=list)

    def record(self, kind: str, status: int | str, seconds: float, detail: str = "") -> None:
        self.statuses[kind][str(status)] += 1
        self.latencies[kind].append(seconds)
        if not isinstance(status, int) or status >= 500:
            self.failures.append(f"{kind}: {status} {detail[:200]}")

    def server_errors(self) -> int:
        return sum(
            count
            for counts in self.statuses.values()
            for status, count in counts.items()
            if not status.isdigit() or int(status) >= 500
        )


class Soak:
    def __init__(self, url: str, client: httpx.AsyncClient, tally: Tally) -> None:
        self.url = url
        self.client = client
        self.tally = tally
        self.key = ""
        self.csrf = ""
        self.collection_id = ""
        self.conversation_id = ""
        self.messages_in_conversation = 0
        self.documents: list[str] = []
        self.uploads = 0
        self.tasks: set[asyncio.Task[None]] = set()

    # --- set-up ---------------------------------------------------------------------

    async def sign_up(self) -> None:
        """The first account (single-user mode on loopback), its session and an API key."""
        created = await self.client.post(
            "/api/admin/users", json={"email": EMAIL, "password": PASSWORD, "role": "admin"}
        )
        created.raise_for_status()
        login = await self.client.post(
            "/api/auth/login", json={"email": EMAIL, "password": PASSWORD}
        )
        login.raise_for_status()
        self.csrf = login.json()["csrf_token"]
        key = await self.client.post(
            "/api/keys", json={"name": "soak"}, headers={"x-csrf-token": self.csrf}
        )
        key.raise_for_status()
        self.key = key.json()["secret"]
        collection = await self.client.post(
            "/api/collections", json={"name": "Soak"}, headers=self.session_headers
        )
        collection.raise_for_status()
        self.collection_id = collection.json()["id"]
        await self.new_conversation()

    @property
    def session_headers(self) -> dict[str, str]:
        return {"x-csrf-token": self.csrf}

    @property
    def key_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"}

    # --- one request of each kind -----------------------------------------------------

    async def timed(
        self, kind: str, send: Callable[[], Awaitable[httpx.Response]], read: bool = True
    ) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = await send()
        except httpx.HTTPError as exc:
            self.tally.record(kind, type(exc).__name__, time.perf_counter() - started, str(exc))
            return None
        self.tally.record(kind, response.status_code, time.perf_counter() - started, response.text)
        return response

    async def v1_chat(self, stream: bool, grounded: bool) -> None:
        body: dict[str, Any] = {
            "model": MODEL,
            "messages": [{"role": "user", "content": f"Tell me about {_words(6)}."}],
            "stream": stream,
        }
        if grounded:
            body["collections"] = [self.collection_id]
        kind = "v1 chat" + (" stream" if stream else "") + (" rag" if grounded else "")
        await self.timed(
            kind,
            lambda: self.client.post("/v1/chat/completions", json=body, headers=self.key_headers),
        )

    async def web_message(self) -> None:
        if self.messages_in_conversation >= MESSAGES_PER_CONVERSATION:
            await self.new_conversation()
        self.messages_in_conversation += 1
        path = f"/api/conversations/{self.conversation_id}/messages"
        await self.timed(
            "web chat",
            lambda: self.client.post(
                path, json={"content": f"Note: {_words(8)}"}, headers=self.session_headers
            ),
        )

    async def new_conversation(self) -> None:
        old = self.conversation_id
        response = await self.timed(
            "new conversation",
            lambda: self.client.post(
                "/api/conversations",
                json={"title": "Soak", "collection_ids": [self.collection_id]},
                headers=self.session_headers,
            ),
        )
        if response is not None and response.status_code == 201:
            self.conversation_id = response.json()["id"]
            self.messages_in_conversation = 0
        if old:
            await self.timed(
                "delete conversation",
                lambda: self.client.delete(
                    f"/api/conversations/{old}", headers=self.session_headers
                ),
            )

    async def search(self) -> None:
        body = {"query": _words(3), "collection_ids": [self.collection_id]}
        await self.timed(
            "search", lambda: self.client.post("/api/search", json=body, headers=self.key_headers)
        )

    async def embed(self) -> None:
        body = {"input": [_words(10), _words(10)]}
        await self.timed(
            "v1 embeddings",
            lambda: self.client.post("/v1/embeddings", json=body, headers=self.key_headers),
        )

    async def lists(self) -> None:
        await self.timed(
            "v1 models", lambda: self.client.get("/v1/models", headers=self.key_headers)
        )
        await self.timed(
            "list conversations",
            lambda: self.client.get("/api/conversations", headers=self.key_headers),
        )
        await self.timed(
            "list documents",
            lambda: self.client.get(
                f"/api/collections/{self.collection_id}/documents", headers=self.key_headers
            ),
        )

    async def upload(self) -> None:
        self.uploads += 1
        text = f"# Soak note {self.uploads}\n\n" + "\n\n".join(
            f"{_words(12).capitalize()}." for _ in range(20)
        )
        response = await self.timed(
            "upload",
            lambda: self.client.post(
                f"/api/collections/{self.collection_id}/documents",
                files=[("files", (f"note-{self.uploads}.md", text.encode()))],
                headers=self.key_headers,
            ),
        )
        if response is not None and response.status_code == 202:
            self.documents.extend(document["id"] for document in response.json()["documents"])
        while len(self.documents) > KEPT_DOCUMENTS:
            oldest = self.documents.pop(0)
            await self.timed(
                "delete document",
                lambda oldest=oldest: self.client.delete(  # type: ignore[misc]
                    f"/api/documents/{oldest}", headers=self.key_headers
                ),
            )

    # --- the schedule -----------------------------------------------------------------

    def start(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def tick(self, n: int) -> None:
        """The work of second ``n``: started on time whether or not the last is done."""
        self.start(self.v1_chat(stream=n % 2 == 0, grounded=n % 5 == 0))
        self.start(self.search())
        self.start(self.embed())
        if n % 2 == 0:
            self.start(self.web_message())
        if n % 10 == 0:
            self.start(self.lists())
        if n % 15 == 0:
            self.start(self.upload())

    async def drain(self) -> None:
        if self.tasks:
            await asyncio.gather(*self.tasks)


def _words(count: int) -> str:
    return " ".join(random.choice(WORDS) for _ in range(count))


async def soak(url: str, pid: int, minutes: float) -> dict[str, Any]:
    tally = Tally()
    duration = minutes * 60
    warmup = min(5 * 60.0, max(SAMPLE_SECONDS, duration / 6))
    samples: list[dict[str, float]] = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        runner = Soak(url, client, tally)
        await runner.sign_up()
        samples.append({"minute": 0.0, "rss_mb": round(rss_mb(pid), 1)})
        print(f"  minute  0: RSS {samples[-1]['rss_mb']:.1f} MB", flush=True)
        started = time.monotonic()
        next_sample = SAMPLE_SECONDS
        n = 0
        while (elapsed := time.monotonic() - started) < duration:
            runner.tick(n)
            n += 1
            if elapsed >= next_sample:
                samples.append({"minute": round(elapsed / 60, 2), "rss_mb": round(rss_mb(pid), 1)})
                done = sum(sum(c.values()) for c in tally.statuses.values())
                print(
                    f"  minute {elapsed / 60:5.1f}: RSS {samples[-1]['rss_mb']:.1f} MB, "
                    f"{done} requests, {tally.server_errors()} failed",
                    flush=True,
                )
                next_sample += SAMPLE_SECONDS
            await asyncio.sleep(max(0.0, started + n * TICK_SECONDS - time.monotonic()))
        await runner.drain()
        samples.append(
            {"minute": round((time.monotonic() - started) / 60, 2), "rss_mb": round(rss_mb(pid), 1)}
        )
    return _report(tally, samples, warmup, minutes)


def _report(
    tally: Tally, samples: list[dict[str, float]], warmup: float, minutes: float
) -> dict[str, Any]:
    after_warmup = [s for s in samples if s["minute"] * 60 >= warmup - 1]
    baseline = after_warmup[0]["rss_mb"] if after_warmup else samples[0]["rss_mb"]
    final = samples[-1]["rss_mb"]
    peak = max(s["rss_mb"] for s in after_warmup) if after_warmup else final
    growth = final / baseline - 1
    server_errors = tally.server_errors()
    kinds: dict[str, Any] = {}
    for kind, counts in sorted(tally.statuses.items()):
        times = sorted(tally.latencies[kind])
        kinds[kind] = {
            "requests": sum(counts.values()),
            "statuses": dict(sorted(counts.items())),
            "p50_ms": round(statistics.median(times) * 1000, 1),
            "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))] * 1000, 1),
        }
    print_table(
        ["kind", "requests", "statuses", "p50 ms", "p99 ms"],
        [
            [kind, k["requests"], json.dumps(k["statuses"]), k["p50_ms"], k["p99_ms"]]
            for kind, k in kinds.items()
        ],
    )
    passed = server_errors == 0 and growth <= MAX_RSS_GROWTH
    print(
        f"RSS after warm-up ({warmup / 60:.1f} min) {baseline:.1f} MB -> {final:.1f} MB "
        f"(peak {peak:.1f} MB): {growth:+.1%} (limit +{MAX_RSS_GROWTH:.0%}); "
        f"{server_errors} failed requests -> {'PASS' if passed else 'FAIL'}"
    )
    return {
        "minutes": minutes,
        "warmup_minutes": round(warmup / 60, 2),
        "rss_mb_by_minute": samples,
        "rss_baseline_mb": baseline,
        "rss_final_mb": final,
        "rss_peak_after_warmup_mb": peak,
        "rss_growth": round(growth, 4),
        "rss_growth_limit": MAX_RSS_GROWTH,
        "requests": sum(k["requests"] for k in kinds.values()),
        "server_errors": server_errors,
        "first_failures": tally.failures[:20],
        "by_kind": kinds,
        "passed": passed,
    }


def run(quick: bool = False) -> dict[str, Any]:
    default = QUICK_MINUTES if quick else DEFAULT_MINUTES
    minutes = float(os.environ.get("ONEBOX_SOAK_MINUTES", default))
    print(f"Soak: {minutes:g} minutes of mixed traffic against one onebox serve", flush=True)
    with onebox_server() as (url, process, log):
        result = asyncio.run(soak(url, process.pid, minutes))
        errors = logged_errors(log)
    result["server_logged_errors"] = len(errors)
    result["first_logged_errors"] = errors[:10]
    result["passed"] = result["passed"] and not errors
    if errors:
        print(f"The server logged {len(errors)} errors, the first: {errors[0]}")
    return result
