"""The sandbox pool: tasks run in child processes; a task that crosses the CPU, wall-clock
or memory limit (or crashes its child) fails alone, and the next task runs in a fresh child.
Real processes, real limits."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import pytest

from onebox.documents.ingestion.parsing import ParseError
from onebox.jobs.sandbox import SandboxError, SandboxLimitError, SandboxLimits, SandboxPool
from tests import sandbox_tasks

pytestmark = pytest.mark.anyio

MB = 1024 * 1024
LIMITS = SandboxLimits(cpu_seconds=1, wall_seconds=20.0, memory_bytes=256 * MB)
# Imported by each child before its first task, so no task pays for the imports.
PRELOAD = ("tests.sandbox_tasks",)


@pytest.fixture
async def pool() -> AsyncIterator[SandboxPool]:
    built = SandboxPool(LIMITS, size=1, preload=PRELOAD)
    try:
        yield built
    finally:
        pids = built.processes
        await built.close()
        assert built.processes == []
        for pid in pids:
            assert not _running(pid), f"sandbox process {pid} outlived the pool"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_tasks_run_in_a_reused_child_and_raise_their_own_errors(pool: SandboxPool) -> None:
    first, value = await pool.run(sandbox_tasks.whoami, {"a": [1, 2]})
    assert value == {"a": [1, 2]}
    assert first != os.getpid()
    with pytest.raises(ParseError, match="not a document"):
        await pool.run(sandbox_tasks.refuse, "not a document")
    # A task's own exception leaves its warm child in place.
    second, _ = await pool.run(sandbox_tasks.whoami, None)
    assert second == first
    assert pool.processes == [first]


async def _recovers(pool: SandboxPool, failed_pid: int) -> None:
    pid, value = await pool.run(sandbox_tasks.whoami, "next")
    assert value == "next"
    assert pid != failed_pid
    assert not _running(failed_pid)


async def test_cpu_limit_fails_one_task_and_the_pool_recovers(pool: SandboxPool) -> None:
    pid, _ = await pool.run(sandbox_tasks.whoami, None)
    with pytest.raises(SandboxLimitError, match=r"more than 1 s of CPU time") as caught:
        await pool.run(sandbox_tasks.burn_cpu)
    assert caught.value.kind == "cpu"
    await _recovers(pool, pid)


async def test_wall_clock_limit_kills_a_task_that_hangs() -> None:
    quick = SandboxPool(
        SandboxLimits(cpu_seconds=5, wall_seconds=1.0, memory_bytes=256 * MB), preload=PRELOAD
    )
    try:
        pid, _ = await quick.run(sandbox_tasks.whoami, None)
        started = time.monotonic()
        with pytest.raises(SandboxLimitError, match=r"took longer than 1 s") as caught:
            await quick.run(sandbox_tasks.sleep, 60)
        assert caught.value.kind == "wall"
        assert time.monotonic() - started < 15
        await _recovers(quick, pid)
    finally:
        await quick.close()


async def test_memory_cap_fails_one_task_and_the_pool_recovers(pool: SandboxPool) -> None:
    pid, _ = await pool.run(sandbox_tasks.whoami, None)
    assert await pool.run(sandbox_tasks.allocate, 16) == 16 * MB  # within the cap
    with pytest.raises(SandboxLimitError, match=r"more than 256 MB of memory") as caught:
        await pool.run(sandbox_tasks.allocate, 1024)
    assert caught.value.kind == "memory"
    await _recovers(pool, pid)


async def test_a_crashing_task_fails_alone(pool: SandboxPool) -> None:
    pid, _ = await pool.run(sandbox_tasks.whoami, None)
    with pytest.raises(SandboxLimitError, match=r"stopped unexpectedly by SIGSEGV") as caught:
        await pool.run(sandbox_tasks.crash)
    assert caught.value.kind == "crash"
    await _recovers(pool, pid)


async def test_cancelling_a_task_kills_its_child(pool: SandboxPool) -> None:
    pid, _ = await pool.run(sandbox_tasks.whoami, None)
    task = asyncio.ensure_future(pool.run(sandbox_tasks.sleep, 60))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _recovers(pool, pid)


async def test_the_event_loop_keeps_running_while_a_task_burns_cpu(pool: SandboxPool) -> None:
    await pool.run(sandbox_tasks.whoami, None)  # started and warm
    gaps: list[float] = []

    async def tick() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = asyncio.ensure_future(tick())
    try:
        with pytest.raises(SandboxLimitError):
            await pool.run(sandbox_tasks.burn_cpu)
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
    assert len(gaps) > 20
    assert max(gaps) < 0.5, f"the loop stalled for {max(gaps):.2f} s"


async def test_tasks_run_side_by_side_up_to_the_pool_size() -> None:
    pool = SandboxPool(LIMITS, size=2, preload=PRELOAD)
    try:
        results = await asyncio.gather(
            pool.run(sandbox_tasks.sleep, 0.5), pool.run(sandbox_tasks.whoami, "x")
        )
        assert results[0] == 0.5
        assert len(pool.processes) == 2
    finally:
        await pool.close()


async def test_closing_stops_busy_children_and_refuses_new_tasks() -> None:
    pool = SandboxPool(LIMITS, size=1, preload=PRELOAD)
    await pool.run(sandbox_tasks.whoami, None)
    pids = pool.processes
    task = asyncio.ensure_future(pool.run(sandbox_tasks.sleep, 60))
    await asyncio.sleep(0.5)
    await pool.close()
    with pytest.raises(SandboxError, match="closed while the task ran"):
        await task
    assert not any(_running(pid) for pid in pids)
    with pytest.raises(SandboxError, match="closed"):
        await pool.run(sandbox_tasks.whoami, None)
