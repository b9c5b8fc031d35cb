"""The in-process worker: a few asyncio loops inside the app that claim due jobs from the
database. Notifications only wake it sooner; polling finds jobs queued by other processes
(the CLI) and retries whose delay has passed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence

from onebox.core.db import utcnow
from onebox.jobs.base import JobServices
from onebox.jobs.dispatch import JobDispatcher
from onebox.jobs.models import Job
from onebox.jobs.repository import JobRepository
from onebox.jobs.runner import run_next
from onebox.jobs.service import wait_for_jobs

logger = logging.getLogger(__name__)

MIN_WAIT = 0.05  # seconds; keeps a loop from spinning on a job another loop is taking
# How long close() waits for the job loops to put their jobs back: one blocked on the
# database (a row lock that is not let go) must not hold a shutdown forever.
CLOSE_SECONDS = 15.0


def worker_name(prefix: str) -> str:
    return f"{prefix}@{socket.gethostname()}:{os.getpid()}"


def sweep_interval_for(lease_seconds: float) -> float:
    """How often to look for lapsed leases: well within one lease, at most every 30 s."""
    return min(30.0, max(0.2, lease_seconds / 2))


async def recover_stale(services: JobServices) -> list[str]:
    """Requeue (or fail, when out of attempts) jobs whose worker stopped; the requeued ids."""
    async with services.sessionmaker() as session:
        requeued, failed = await JobRepository(session).recover_stale()
        await session.commit()
    if requeued:
        logger.warning("resuming %d job(s) whose worker stopped: %s", len(requeued), requeued)
    if failed:
        logger.warning("gave up on %d job(s) whose worker kept stopping: %s", len(failed), failed)
    return requeued


class InProcessWorker(JobDispatcher):
    def __init__(
        self,
        services: JobServices,
        *,
        concurrency: int | None = None,
        poll_interval: float = 2.0,
        sweep_interval: float | None = None,
        name: str | None = None,
    ) -> None:
        settings = services.settings
        self.services = services
        self.concurrency = concurrency or settings.worker_concurrency
        self.poll_interval = poll_interval
        self.sweep_interval = sweep_interval or sweep_interval_for(settings.job_lease_seconds)
        self.name = name or worker_name("inprocess")
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if self._tasks:
            return
        self._loop = asyncio.get_running_loop()
        # Jobs left running by a previous process whose lease has lapsed come back first.
        try:
            await recover_stale(self.services)
        except Exception:
            logger.exception("could not recover stale jobs at start; the sweeper retries")
        for number in range(self.concurrency):
            self._tasks.append(
                asyncio.create_task(self._run_loop(f"{self.name}#{number}"), name=f"jobs-{number}")
            )
        self._tasks.append(asyncio.create_task(self._sweep_loop(), name="jobs-sweeper"))

    def notify(self, job_ids: Sequence[str]) -> None:
        if not job_ids or self._loop is None or self._loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._wake.set()
        else:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def close(self) -> None:
        """Cancel running jobs (each goes back to the queue, its attempt not counted). A job
        that cannot be put back within ``CLOSE_SECONDS`` is left to its lease, which lapses,
        and the job is resumed by the next worker."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        done, stuck = await asyncio.wait(tasks, timeout=CLOSE_SECONDS)
        for task in done:
            if not task.cancelled():
                task.exception()  # taken: a loop's failure was logged where it happened
        if stuck:
            logger.warning(
                "%d job loop(s) did not stop within %.0f s; their jobs are resumed once their "
                "leases lapse",
                len(stuck),
                CLOSE_SECONDS,
            )

    async def drain(
        self,
        job_ids: Sequence[str],
        *,
        max_wait: float | None = None,
        on_update: Callable[[list[Job]], Awaitable[None] | None] | None = None,
    ) -> list[Job]:
        """Wait until the given jobs are done or failed (while this worker runs them)."""
        self.notify(job_ids)
        return await wait_for_jobs(
            self.services.sessionmaker, job_ids, on_update=on_update, max_wait=max_wait
        )

    async def _run_loop(self, name: str) -> None:
        while True:
            # Cleared before looking, so a notification arriving after an empty look is
            # not missed.
            self._wake.clear()
            try:
                if await run_next(self.services, name):
                    continue
            except Exception:
                # One job's trouble (or a database hiccup) never stops the worker.
                logger.exception("job loop %s hit an error; continuing", name)
            await self._idle(self.poll_interval)

    async def _idle(self, longest: float) -> None:
        timeout = longest
        try:
            async with self.services.sessionmaker() as session:
                next_due = await JobRepository(session).next_run_after()
        except Exception:
            logger.warning("could not read the job queue", exc_info=True)
            next_due = None
        if next_due is not None:
            timeout = min(timeout, (next_due - utcnow()).total_seconds())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(MIN_WAIT, timeout))

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                if await recover_stale(self.services):
                    self._wake.set()
            except Exception:
                logger.exception("stale job sweep failed; retrying later")
