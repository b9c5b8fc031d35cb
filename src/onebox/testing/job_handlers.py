"""Job handlers with predictable behaviour, for tests and for smoke-testing workers."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from onebox.jobs.base import JobContext, PermanentJobError


async def sleep(ctx: JobContext) -> None:
    """``{"seconds": 2, "steps": 10}``: sleeps, reporting progress after each step."""
    seconds = float(ctx.payload.get("seconds", 1.0))
    steps = max(1, int(ctx.payload.get("steps", 10)))
    for step in range(steps):
        await ctx.progress(step / steps, f"sleeping {step + 1}/{steps}")
        await asyncio.sleep(seconds / steps)
    await ctx.progress(1.0, "slept")
    await _record(ctx)


async def fail(ctx: JobContext) -> None:
    """A transient failure on every attempt."""
    await _record(ctx)
    raise RuntimeError(str(ctx.payload.get("message", "testing failure")))


async def poison(ctx: JobContext) -> None:
    """A failure retrying cannot fix."""
    await _record(ctx)
    raise PermanentJobError(str(ctx.payload.get("message", "this input can never be processed")))


async def flaky(ctx: JobContext) -> None:
    """``{"failures": 2}``: fails the first N attempts, then succeeds."""
    await _record(ctx)
    if ctx.attempt <= int(ctx.payload.get("failures", 1)):
        raise RuntimeError(f"flaky failure on attempt {ctx.attempt}")
    await ctx.progress(1.0, "recovered")


async def record(ctx: JobContext) -> None:
    """``{"marker": "/path"}``: appends one JSON line per run to the marker file."""
    await ctx.progress(0.5, "recording")
    await _record(ctx)


async def group_record(ctx: JobContext) -> None:
    """A groupable kind: like ``record``, the line also lists the ids of the group's members
    as it ran; ``{"failures": n}`` fails the first ``n`` attempts (after recording)."""
    await asyncio.sleep(0)  # the other members of its group start
    await _record(ctx, members=sorted(ctx.group.members) if ctx.group else [ctx.job_id])
    if ctx.attempt <= int(ctx.payload.get("failures", 0)):
        raise RuntimeError(f"group member failed on attempt {ctx.attempt}")


async def _record(ctx: JobContext, **extra: object) -> None:
    marker = ctx.payload.get("marker")
    if not marker:
        return
    line = json.dumps(
        {"job_id": ctx.job_id, "attempt": ctx.attempt, "pid": os.getpid(), "at": time.time()}
        | extra
    )
    await asyncio.to_thread(_append, Path(str(marker)), line)


def _append(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
