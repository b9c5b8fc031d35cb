"""A lean HTTP/1.1 load generator for streaming chat completions.

Raw asyncio sockets with keep-alive, so the generator's own overhead stays small next to
the servers it measures on the same two cores. Measures time to first content token and
end-to-end time of each request.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

_CONTENT = re.compile(rb'"content":"[^"]')


@dataclass
class Sample:
    ok: bool
    ttft: float | None
    total: float
    error: str | None = None


@dataclass
class Target:
    host: str
    port: int
    path: str
    token: str | None = None

    @classmethod
    def from_url(cls, url: str, token: str | None = None) -> Target:
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 80, parts.path, token)


# Servers close idle keep-alive connections (uvicorn after 5 s); a client must not reuse
# one that has sat idle that long, or it measures its own stale connections as errors.
IDLE_EXPIRY_SECONDS = 4.0


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = time.monotonic()

    def close(self) -> None:
        self.writer.close()


@dataclass
class Pool:
    target: Target
    idle: list[Connection] = field(default_factory=list)

    async def acquire(self) -> Connection:
        while self.idle:
            connection = self.idle.pop()
            if time.monotonic() - connection.idle_since < IDLE_EXPIRY_SECONDS:
                return connection
            connection.close()
        reader, writer = await asyncio.open_connection(self.target.host, self.target.port)
        return Connection(reader, writer)

    def release(self, connection: Connection) -> None:
        connection.idle_since = time.monotonic()
        self.idle.append(connection)

    def close(self) -> None:
        for connection in self.idle:
            connection.close()
        self.idle.clear()


def request_bytes(target: Target, body: dict[str, Any]) -> bytes:
    payload = json.dumps(body).encode()
    auth = f"Authorization: Bearer {target.token}\r\n" if target.token else ""
    head = (
        f"POST {target.path} HTTP/1.1\r\nHost: {target.host}:{target.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n{auth}\r\n"
    )
    return head.encode() + payload


async def one_request(pool: Pool, raw: bytes, deadline_s: float) -> Sample:
    started = time.perf_counter()
    ttft: float | None = None
    connection: Connection | None = None
    try:
        connection = await pool.acquire()
        connection.writer.write(raw)
        reader = connection.reader
        async with asyncio.timeout(deadline_s):
            status_line = await reader.readline()
            if not status_line:
                raise ConnectionError("connection closed")
            status = int(status_line.split()[1])
            chunked, length, keep_alive = False, 0, True
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                name, value = name.strip().lower(), value.strip().lower()
                if name == "transfer-encoding" and "chunked" in value:
                    chunked = True
                elif name == "content-length":
                    length = int(value)
                elif name == "connection" and value == "close":
                    keep_alive = False
            if chunked:
                while True:
                    size = int((await reader.readline()).split(b";")[0], 16)
                    if size == 0:
                        await reader.readline()
                        break
                    data = await reader.readexactly(size + 2)
                    if ttft is None and _CONTENT.search(data):
                        ttft = time.perf_counter() - started
            else:
                data = await reader.readexactly(length)
                if ttft is None and _CONTENT.search(data):
                    ttft = time.perf_counter() - started
        total = time.perf_counter() - started
        if keep_alive:
            pool.release(connection)
        else:
            connection.close()
        if status != 200:
            return Sample(False, ttft, total, f"HTTP {status}")
        return Sample(True, ttft, total)
    except (OSError, TimeoutError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
        if connection is not None:
            connection.close()
        return Sample(False, ttft, time.perf_counter() - started, type(exc).__name__)


async def open_loop(
    target: Target, body: dict[str, Any], rate: float, seconds: float, deadline_s: float = 30
) -> tuple[list[Sample], float]:
    """Requests arrive at ``rate`` per second regardless of how fast they finish."""
    pool = Pool(target)
    raw = request_bytes(target, body)
    tasks: list[asyncio.Task[Sample]] = []
    count = int(rate * seconds)
    begin = time.perf_counter()
    for index in range(count):
        delay = begin + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one_request(pool, raw, deadline_s)))
    samples = await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - begin
    pool.close()
    return list(samples), elapsed


async def concurrent(
    target: Target, body: dict[str, Any], streams: int, deadline_s: float = 60
) -> tuple[list[Sample], float]:
    """``streams`` requests at once, each on its own connection."""
    pool = Pool(target)
    raw = request_bytes(target, body)
    begin = time.perf_counter()
    samples = await asyncio.gather(*(one_request(pool, raw, deadline_s) for _ in range(streams)))
    elapsed = time.perf_counter() - begin
    pool.close()
    return list(samples), elapsed


async def closed_loop(
    target: Target, body: dict[str, Any], workers: int, seconds: float
) -> tuple[list[Sample], float]:
    """``workers`` clients each sending back-to-back: the maximum sustained rate."""
    pool = Pool(target)
    raw = request_bytes(target, body)
    samples: list[Sample] = []
    begin = time.perf_counter()
    deadline = begin + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            samples.append(await one_request(pool, raw, 30))

    await asyncio.gather(*(worker() for _ in range(workers)))
    elapsed = time.perf_counter() - begin
    pool.close()
    return samples, elapsed


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def summarize(samples: list[Sample], elapsed: float) -> dict[str, Any]:
    good = [s for s in samples if s.ok]
    ttfts = [s.ttft * 1000 for s in good if s.ttft is not None]
    totals = [s.total * 1000 for s in good]
    errors: dict[str, int] = {}
    for sample in samples:
        if not sample.ok:
            errors[sample.error or "?"] = errors.get(sample.error or "?", 0) + 1
    return {
        "requests": len(samples),
        "ok": len(good),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "achieved_rps": len(good) / elapsed if elapsed else 0.0,
        "ttft_ms": {q: percentile(ttfts, q) for q in ("50", "95", "99")} if ttfts else {},
        "total_ms": {q: percentile(totals, q) for q in ("50", "95", "99")} if totals else {},
    }
