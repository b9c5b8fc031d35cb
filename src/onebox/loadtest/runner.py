"""When requests start: open-loop schedules, ``hey``-style bursts, or closed-loop clients."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

Arrival = Literal["poisson", "uniform", "burst", "closed"]
ARRIVALS: tuple[Arrival, ...] = ("poisson", "uniform", "burst", "closed")


@dataclass(slots=True)
class Sample:
    """One request as measured. Times are ``time.perf_counter()`` seconds; ``start`` is
    where its latency is counted from (the schedule in open loop, the send otherwise)."""

    start: float
    done: float
    ok: bool
    error: str | None = None
    lag: float = 0.0  # how late the generator sent it against its schedule
    first_token: float | None = None
    token_times: list[float] = field(default_factory=list)  # reads that carried output
    output_tokens: int = 0

    @property
    def e2e(self) -> float:
        return self.done - self.start

    @property
    def ttft(self) -> float | None:
        return None if self.first_token is None else self.first_token - self.start


# One request: given its scheduled time (None in a closed loop), a finished Sample.
Request = Callable[[float | None], Awaitable[Sample]]


@dataclass(frozen=True)
class Load:
    """How much load, shaped how.

    ``rate`` (requests/s) with ``arrival`` poisson or uniform: an open loop, latency counted
    from each request's scheduled start; ``concurrency`` then caps requests in flight
    (those over the cap wait, and their wait counts). ``burst``: ``concurrency`` workers each
    sending every ``concurrency / rate`` s on the same ticks, latency from the send (what
    ``hey -c C -q rate/C`` does). ``closed``: ``concurrency`` clients back to back.
    Stops after ``requests`` requests or ``duration`` seconds, whichever is given.
    """

    arrival: Arrival
    rate: float | None = None
    concurrency: int | None = None
    duration: float | None = None
    requests: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.arrival not in ARRIVALS:
            raise ValueError(f"arrival must be one of {', '.join(ARRIVALS)}")
        if (self.duration is None) == (self.requests is None):
            raise ValueError("give either a duration or a number of requests")
        if self.duration is not None and self.duration <= 0:
            raise ValueError("the duration must be positive")
        if self.requests is not None and self.requests < 1:
            raise ValueError("the number of requests must be at least 1")
        if self.arrival in ("poisson", "uniform", "burst") and not (self.rate and self.rate > 0):
            raise ValueError(f"{self.arrival} arrivals need a positive rate")
        if self.arrival in ("burst", "closed") and not (self.concurrency and self.concurrency > 0):
            raise ValueError(f"{self.arrival} arrivals need a concurrency")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("the concurrency must be at least 1")

    def describe(self) -> str:
        until = f"{self.requests} requests" if self.requests else f"{self.duration:g} s"
        if self.arrival == "closed":
            return f"{self.concurrency} clients back to back, {until}"
        rate = self.rate or 0.0
        shape = f"{rate:g} req/s {self.arrival}"
        if self.arrival == "burst" and self.concurrency:
            every = self.concurrency / rate * 1000
            shape += f" (bursts of {self.concurrency} every {every:.0f} ms)"
        elif self.concurrency:
            shape += f", at most {self.concurrency} in flight"
        return f"{shape}, {until}"


class _Tickets:
    """Hands out request slots until the count or the deadline runs out."""

    def __init__(self, load: Load, begin: float) -> None:
        self.left = load.requests if load.requests is not None else math.inf
        self.deadline = begin + load.duration if load.duration is not None else math.inf

    def take(self, at: float) -> bool:
        if self.left <= 0 or at >= self.deadline:
            return False
        self.left -= 1
        return True


async def run_load(
    load: Load, request: Request, on_sample: Callable[[Sample], None] | None = None
) -> tuple[list[Sample], float]:
    """Runs ``load``; the samples (in completion order) and the ``perf_counter`` time it began."""
    samples: list[Sample] = []

    def record(sample: Sample) -> None:
        samples.append(sample)
        if on_sample is not None:
            on_sample(sample)

    begin = time.perf_counter()
    tickets = _Tickets(load, begin)
    if load.arrival == "closed":
        await _closed(load, request, tickets, record)
    elif load.arrival == "burst":
        await _burst(load, request, tickets, begin, record)
    else:
        await _open(load, request, tickets, begin, record)
    return samples, begin


async def _closed(
    load: Load, request: Request, tickets: _Tickets, record: Callable[[Sample], None]
) -> None:
    async def client() -> None:
        while tickets.take(time.perf_counter()):
            record(await request(None))

    assert load.concurrency is not None
    await asyncio.gather(*(client() for _ in range(load.concurrency)))


async def _burst(
    load: Load,
    request: Request,
    tickets: _Tickets,
    begin: float,
    record: Callable[[Sample], None],
) -> None:
    """Like Go's ``time.Tick`` in each of hey's workers: a tick missed while a request was
    still running is taken at once (the channel holds one), any others are dropped."""
    assert load.concurrency is not None
    assert load.rate is not None
    interval = load.concurrency / load.rate

    async def worker() -> None:
        tick = 1  # hey's first tick comes one interval after the start
        while True:
            due = begin + tick * interval
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
            if not tickets.take(max(due, now)):
                return
            sample = await request(None)
            record(sample)
            elapsed_ticks = math.floor((time.perf_counter() - begin) / interval)
            tick = max(tick + 1, elapsed_ticks)  # a missed tick is due at once

    await asyncio.gather(*(worker() for _ in range(load.concurrency)))


async def _open(
    load: Load,
    request: Request,
    tickets: _Tickets,
    begin: float,
    record: Callable[[Sample], None],
) -> None:
    assert load.rate is not None
    rng = random.Random(load.seed)  # noqa: S311 - arrival times, not secrets
    gate = asyncio.Semaphore(load.concurrency) if load.concurrency else None
    running: set[asyncio.Task[None]] = set()

    async def one(scheduled: float) -> None:
        if gate is None:
            record(await request(scheduled))
            return
        async with gate:
            record(await request(scheduled))

    due = begin
    count = 0
    while True:
        count += 1
        if load.arrival == "poisson":
            due += rng.expovariate(load.rate)
        else:
            due = begin + count / load.rate  # not a running sum: no drift
        if not tickets.take(due):
            break
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(due))
        running.add(task)
        task.add_done_callback(running.discard)
    if running:
        await asyncio.gather(*running)
