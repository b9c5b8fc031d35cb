"""Queueing jobs and reading their state; what APIs and the CLI call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from onebox.core.db import utcnow
from onebox.core.requestid import REQUEST_ID_FIELD, request_id
from onebox.core.settings import Settings
from onebox.jobs.models import Job, JobStatus
from onebox.jobs.repository import JobRepository

FINISHED = frozenset({JobStatus.DONE, JobStatus.FAILED})


async def enqueue(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any],
    *,
    subject_id: str | None = None,
    owner_id: str | None = None,
    max_attempts: int | None = None,
    settings: Settings,
) -> Job:
    """Add a queued job to the caller's transaction (flushed, not committed). Hand its id to
    the dispatcher only after the commit, so no worker looks for a row it cannot see. The
    current request id rides in the payload, so the worker's log lines carry it."""
    current = request_id.get()
    if current is not None and REQUEST_ID_FIELD not in payload:
        payload = {**payload, REQUEST_ID_FIELD: current}
    job = Job(
        kind=kind,
        payload=payload,
        subject_id=subject_id,
        owner_id=owner_id,
        status=JobStatus.QUEUED,
        progress=0.0,
        stage="",
        attempts=0,
        max_attempts=max_attempts or settings.job_max_attempts,
        run_after=utcnow(),
    )
    await JobRepository(session).add(job)
    return job


async def get_job_for_owner(session: AsyncSession, job_id: str, owner_id: str) -> Job | None:
    """None when the job does not exist or belongs to someone else (same answer for both,
    so ids cannot be probed)."""
    job = await JobRepository(session).get(job_id)
    if job is None or job.owner_id != owner_id:
        return None
    return job


async def jobs_for_owner(
    session: AsyncSession, owner_id: str, *, limit: int = 50, offset: int = 0
) -> list[Job]:
    return await JobRepository(session).list_for_owner(owner_id, limit=limit, offset=offset)


async def wait_for_jobs(
    sessionmaker: async_sessionmaker[AsyncSession],
    job_ids: Sequence[str],
    *,
    on_update: Callable[[list[Job]], Awaitable[None] | None] | None = None,
    poll_interval: float = 0.25,
    max_wait: float | None = None,
) -> list[Job]:
    """Poll until every job is done or failed; returns them in ``job_ids`` order. Works
    whichever process runs the jobs. ``on_update`` sees each poll (a CLI progress bar). A
    job deleted meanwhile is simply left out. Raises TimeoutError when ``max_wait`` seconds
    pass first."""
    deadline = None if max_wait is None else time.monotonic() + max_wait
    order = {job_id: position for position, job_id in enumerate(job_ids)}
    while True:
        async with sessionmaker() as session:
            jobs = await JobRepository(session).get_many(list(job_ids))
        jobs.sort(key=lambda job: order[job.id])
        if on_update is not None:
            result = on_update(jobs)
            if result is not None:
                await result
        if all(job.status in FINISHED for job in jobs):
            return jobs
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"jobs not finished after {max_wait} s")
        await asyncio.sleep(poll_interval)
