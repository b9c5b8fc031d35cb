"""Runs one job: claim, heartbeat, progress, and the retry policy. The same code runs inside
the app (in-process worker) and in Celery worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from datetime import datetime, timedelta

from onebox.core.db import utcnow
from onebox.core.metrics import metrics
from onebox.core.requestid import REQUEST_ID_FIELD, request_id, valid_request_id
from onebox.jobs.base import JobContext, JobGroup, JobServices, PermanentJobError
from onebox.jobs.registry import GROUPABLE, resolve
from onebox.jobs.repository import ClaimedJob, JobRepository

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.5  # seconds between stored progress updates within one stage
MAX_REASON_CHARS = 500


def claim_token(worker: str) -> str:
    """Unique per claim, so a worker that lost its lease cannot touch a later run's row."""
    return f"{worker}/{secrets.token_hex(4)}"[:200]


def retry_delay(base_seconds: float, attempts: int) -> float:
    delay = base_seconds * 2.0 ** max(0, attempts - 1)
    # Jitter spreads retries of jobs that failed together (an upstream outage).
    return delay + delay * 0.1 * random.random()  # noqa: S311 - not for security


def failure_reason(exc: BaseException) -> str:
    """One line for people; the traceback goes to the log."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    reason = text or type(exc).__name__
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 1] + "…"
    return reason


async def run_job(services: JobServices, job_id: str, worker: str) -> list[str]:
    """Run ``job_id`` if it can be claimed now, with queued jobs of its kind when the kind
    is groupable (as :func:`run_next` does): the ids of the jobs run, empty (and nothing
    done) when it could not be claimed. Celery workers come in here: a message for one page
    of an upload runs the upload's other queued pages in its group, and their own messages
    then find them claimed."""
    token = claim_token(worker)
    async with services.sessionmaker() as session:
        job = await JobRepository(session).claim(job_id, token, services.settings.job_lease_seconds)
        await session.commit()
    if job is None:
        return []
    return await run_claimed(services, job, worker)


async def run_next(services: JobServices, worker: str) -> bool:
    """Run the oldest due job, if any (with others of its kind when groupable, see
    :func:`run_claimed`); False when none was waiting."""
    lease = services.settings.job_lease_seconds
    async with services.sessionmaker() as session:
        first = await JobRepository(session).claim_next(claim_token(worker), lease)
        await session.commit()
    if first is None:
        return False
    await run_claimed(services, first, worker)
    return True


async def run_claimed(services: JobServices, first: ClaimedJob, worker: str) -> list[str]:
    """Run a claimed job; the ids of all the jobs run. When its kind is groupable, more due
    jobs of that kind are claimed with it and all run side by side as one
    :class:`JobGroup` of up to ``job_group_size`` active members; whenever half of them have
    released the shared work (or ended) the group is topped up from the queue, so the jobs
    still working never wait for a new group to be claimed and started."""
    limit = services.settings.job_group_size
    if first.kind not in GROUPABLE or limit < 2:
        await execute(services, first)
        return [first.id]
    group = JobGroup()
    ran: list[str] = []
    running: set[asyncio.Task[None]] = set()

    def start(jobs: list[ClaimedJob]) -> None:
        for job in jobs:
            group.join(job.id)
            ran.append(job.id)
            running.add(asyncio.create_task(execute(services, job, group), name=f"job-{job.id}"))

    try:
        start([first, *await claim_more(services, worker, first.kind, limit - 1)])
        queue_empty = False
        while running:
            changed = asyncio.ensure_future(group.changed.wait())
            try:
                await asyncio.wait({*running, changed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                changed.cancel()
            group.changed.clear()
            running = {task for task in running if not task.done()}
            if not queue_empty and group.active <= limit // 2:
                more = await claim_more(services, worker, first.kind, limit - group.active)
                queue_empty = not more
                start(more)
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    return ran


async def claim_more(services: JobServices, worker: str, kind: str, count: int) -> list[ClaimedJob]:
    """Up to ``count`` more due jobs of ``kind``, oldest first, in one transaction; each
    with its own claim token and lease, so each is resumed alone if this worker stops."""
    lease = services.settings.job_lease_seconds
    jobs: list[ClaimedJob] = []
    async with services.sessionmaker() as session:
        repository = JobRepository(session)
        while len(jobs) < count:
            job = await repository.claim_next(claim_token(worker), lease, kind=kind)
            if job is None:
                break
            jobs.append(job)
        await session.commit()
    return jobs


class _Lease:
    """Keeps the claim alive and stores progress, one short transaction per write."""

    def __init__(self, services: JobServices, job: ClaimedJob) -> None:
        self.services = services
        self.job = job
        self.lease_seconds = services.settings.job_lease_seconds
        self.lost = False
        self.stage: str | None = None
        self._progress: float | None = None
        self._dirty = False
        self._last_write = time.monotonic()  # the claim itself set the lease
        self._lock = asyncio.Lock()
        self.handler_task: asyncio.Task[None] | None = None

    async def report(self, fraction: float, stage: str) -> None:
        stage_changed = stage != self.stage
        self._progress, self.stage, self._dirty = fraction, stage, True
        if stage_changed or time.monotonic() - self._last_write >= PROGRESS_INTERVAL:
            await self.write()

    async def write(self) -> None:
        async with self._lock:
            progress, stage = (self._progress, self.stage) if self._dirty else (None, None)
            self._dirty = False
            self._last_write = time.monotonic()
            try:
                async with self.services.sessionmaker() as session:
                    owned = await JobRepository(session).renew(
                        self.job.id,
                        self.job.worker,
                        self.lease_seconds,
                        progress=progress,
                        stage=stage,
                    )
                    await session.commit()
            except Exception:
                # Progress is advisory; if the database stays unreachable the lease lapses
                # and the job is resumed elsewhere.
                logger.warning("could not renew the lease of job %s", self.job.id, exc_info=True)
                return
        if not owned and not self.lost:
            self.lost = True
            logger.warning(
                "job %s is no longer ours (resumed elsewhere after its lease lapsed, or "
                "removed); stopping",
                self.job.id,
            )
            if self.handler_task is not None:
                self.handler_task.cancel()

    async def heartbeat(self) -> None:
        """Renews the lease every third of it, and stores progress the reporter held back
        (so a handler that reports and then works quietly still shows where it is)."""
        renew_every = self.lease_seconds / 3
        while True:
            await asyncio.sleep(min(PROGRESS_INTERVAL, renew_every))
            if self._dirty or time.monotonic() - self._last_write >= renew_every:
                await self.write()


async def execute(services: JobServices, job: ClaimedJob, group: JobGroup | None = None) -> None:
    """Run a job this worker has claimed and record how it ended. Never raises, except
    CancelledError (shutdown), after putting the job back in the queue. Its log lines carry
    the id of the request that queued it. A grouped job leaves its group when it ends."""
    token = request_id.set(valid_request_id(job.payload.get(REQUEST_ID_FIELD)))
    started = time.perf_counter()
    outcome = "released"
    logger.info("job %s (%s) started, attempt %d", job.id, job.kind, job.attempts)
    try:
        outcome = await _execute(services, job, group)
    finally:
        if group is not None:
            group.leave(job.id)
        seconds = time.perf_counter() - started
        metrics().jobs_finished.labels(job.kind, outcome).inc()
        metrics().job_duration.labels(job.kind).observe(seconds)
        logger.info(
            "job %s (%s) %s after %.2fs", job.id, job.kind, outcome, seconds,
            extra={"fields": {"job_id": job.id, "outcome": outcome}},
        )  # fmt: skip
        request_id.reset(token)


async def _execute(services: JobServices, job: ClaimedJob, group: JobGroup | None) -> str:
    """The outcome: done, failed, retried, released or lost (another worker has it)."""
    lease = _Lease(services, job)
    try:
        handler = resolve(job.kind)
        context = JobContext(
            job_id=job.id,
            kind=job.kind,
            payload=job.payload,
            attempt=job.attempts,
            services=services,
            report=lease.report,
            max_attempts=job.max_attempts,
            group=group,
        )

        async def call() -> None:
            await handler(context)

        lease.handler_task = asyncio.create_task(call(), name=f"job-{job.id}")
        heartbeat = asyncio.create_task(lease.heartbeat(), name=f"job-{job.id}-lease")
        try:
            await lease.handler_task
        finally:
            # Stopped before the outcome is stored, so no late renewal races with it.
            await _stop(heartbeat)
            await _stop(lease.handler_task)
    except asyncio.CancelledError:
        if lease.lost:  # the lease cancelled the handler: another worker has the job
            return "lost"
        await _finish(services, job, "released")
        raise
    except PermanentJobError as exc:
        logger.warning("job %s (%s) failed permanently: %s", job.id, job.kind, exc)
        await _finish(services, job, "failed", failure_reason(exc))
        return "failed"
    except Exception as exc:
        if lease.lost:
            return "lost"
        reason = failure_reason(exc)
        if job.attempts >= job.max_attempts:
            logger.exception("job %s (%s) failed for good", job.id, job.kind)
            attempts = "once" if job.attempts == 1 else f"{job.attempts} times"
            await _finish(services, job, "failed", f"{reason} (tried {attempts})")
            return "failed"
        else:
            delay = retry_delay(services.settings.job_retry_base_seconds, job.attempts)
            logger.warning(
                "job %s (%s) failed on attempt %d of %d, retrying in %.1fs",
                job.id,
                job.kind,
                job.attempts,
                job.max_attempts,
                delay,
                exc_info=True,
            )
            await _finish(
                services, job, "requeue", reason, run_after=utcnow() + timedelta(seconds=delay)
            )
            return "retried"
    if lease.lost:
        return "lost"
    await _finish(services, job, "done", stage=lease.stage)
    return "done"


async def _stop(task: asyncio.Task[None]) -> None:
    if task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def _finish(
    services: JobServices,
    job: ClaimedJob,
    outcome: str,
    error: str = "",
    *,
    stage: str | None = None,
    run_after: datetime | None = None,
) -> None:
    async def store() -> None:
        async with services.sessionmaker() as session:
            repository = JobRepository(session)
            if outcome == "done":
                owned = await repository.mark_done(job.id, job.worker, stage=stage)
            elif outcome == "failed":
                owned = await repository.mark_failed(job.id, job.worker, error)
            elif outcome == "requeue":
                assert run_after is not None
                owned = await repository.requeue(
                    job.id, job.worker, run_after=run_after, error=error
                )
            else:
                owned = await repository.release(job.id, job.worker)
            await session.commit()
        if not owned:
            logger.warning("job %s was no longer ours when it ended (%s)", job.id, outcome)

    try:
        # Shielded so a second cancellation during shutdown cannot lose the outcome.
        await asyncio.shield(store())
    except asyncio.CancelledError:
        raise
    except Exception:
        # The lease lapses and the job is resumed, so the outcome is not lost for good.
        logger.exception("could not record the outcome of job %s (%s)", job.id, outcome)
