"""All SQL for jobs. Every state change after a claim is conditioned on the claim token held
in ``worker``, so a worker that lost its lease can never overwrite the row of the worker
that took the job over."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from onebox.core.db import utcnow
from onebox.jobs.models import Job, JobStatus
from onebox.jobs.registry import BACKGROUND


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """What a runner needs from a row it now owns (plain values, no session attached)."""

    id: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    worker: str


_CLAIM_COLUMNS = (Job.id, Job.kind, Job.payload, Job.attempts, Job.max_attempts, Job.worker)


def _stale_reason(attempts: int) -> str:
    times = "once" if attempts == 1 else f"{attempts} times"
    return f"the worker stopped while running this job {times}"


class JobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def _postgres(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    async def add(self, job: Job) -> None:
        self.session.add(job)
        await self.session.flush()

    async def get(self, job_id: str) -> Job | None:
        return await self.session.get(Job, job_id, populate_existing=True)

    async def get_many(self, job_ids: Sequence[str]) -> list[Job]:
        if not job_ids:
            return []
        result = await self.session.execute(
            select(Job).where(Job.id.in_(job_ids)).execution_options(populate_existing=True)
        )
        return list(result.scalars().all())

    async def list_for_owner(self, owner_id: str, *, limit: int = 50, offset: int = 0) -> list[Job]:
        result = await self.session.execute(
            select(Job)
            .where(Job.owner_id == owner_id)
            .order_by(Job.created_at.desc(), Job.id)
            .limit(limit)
            .offset(offset)
        )
        return list(result.scalars().all())

    async def list_for_subject(self, subject_id: str) -> list[Job]:
        result = await self.session.execute(
            select(Job).where(Job.subject_id == subject_id).order_by(Job.created_at, Job.id)
        )
        return list(result.scalars().all())

    # Claiming ---------------------------------------------------------------------------

    def _claim_values(self, worker: str, lease_seconds: float, now: datetime) -> dict[str, Any]:
        return {
            "status": JobStatus.RUNNING,
            "attempts": Job.attempts + 1,
            "worker": worker,
            "started_at": now,
            "finished_at": None,
            "lease_expires_at": now + timedelta(seconds=lease_seconds),
            "updated_at": now,
        }

    async def claim(self, job_id: str, worker: str, lease_seconds: float) -> ClaimedJob | None:
        """Take one specific job if it is queued and due; None when someone else has it,
        it is finished, or it is waiting out a retry delay."""
        now = utcnow()
        # A conditional UPDATE is atomic on both backends: PostgreSQL re-checks the WHERE
        # clause after waiting for a concurrent writer's row lock, SQLite has one writer.
        statement = (
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.QUEUED, Job.run_after <= now)
            .values(self._claim_values(worker, lease_seconds, now))
            .returning(*_CLAIM_COLUMNS)
            .execution_options(synchronize_session=False)
        )
        return self._claimed((await self.session.execute(statement)).first())

    async def claim_next(
        self, worker: str, lease_seconds: float, *, kind: str | None = None
    ) -> ClaimedJob | None:
        """Take the oldest due job nobody holds (of ``kind`` when given), or None; a
        ``BACKGROUND`` kind only when no other job is due."""
        now = utcnow()
        due = [Job.status == JobStatus.QUEUED, Job.run_after <= now]
        if kind is not None:
            due.append(Job.kind == kind)
        candidate = (
            select(Job.id)
            .where(*due)
            .order_by(
                case((Job.kind.in_(sorted(BACKGROUND)), 1), else_=0),
                Job.run_after,
                Job.created_at,
            )
            .limit(1)
            # Its own scan of the table, never tied to the row the UPDATE is looking at.
            .correlate(None)
        )
        if self._postgres:
            # Concurrent claimers skip each other's locked rows instead of queueing on the
            # same one and then finding it already taken.
            candidate = candidate.with_for_update(skip_locked=True)
        statement = (
            update(Job)
            .where(Job.id == candidate.scalar_subquery(), Job.status == JobStatus.QUEUED)
            .values(self._claim_values(worker, lease_seconds, now))
            .returning(*_CLAIM_COLUMNS)
            .execution_options(synchronize_session=False)
        )
        return self._claimed((await self.session.execute(statement)).first())

    @staticmethod
    def _claimed(row: Any) -> ClaimedJob | None:
        if row is None:
            return None
        return ClaimedJob(
            id=row.id,
            kind=row.kind,
            payload=dict(row.payload or {}),
            attempts=int(row.attempts),
            max_attempts=int(row.max_attempts),
            worker=row.worker,
        )

    # While running ----------------------------------------------------------------------

    async def _update_owned(self, job_id: str, worker: str, **values: Any) -> bool:
        values.setdefault("updated_at", utcnow())
        result = await self.session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.worker == worker)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def renew(
        self,
        job_id: str,
        worker: str,
        lease_seconds: float,
        *,
        progress: float | None = None,
        stage: str | None = None,
    ) -> bool:
        """Extend the lease (and store progress); False once the job is no longer ours."""
        values: dict[str, Any] = {
            "lease_expires_at": utcnow() + timedelta(seconds=lease_seconds),
        }
        if progress is not None:
            values["progress"] = progress
        if stage is not None:
            values["stage"] = stage[:200]
        return await self._update_owned(job_id, worker, **values)

    async def mark_done(self, job_id: str, worker: str, *, stage: str | None = None) -> bool:
        values: dict[str, Any] = {
            "status": JobStatus.DONE,
            "progress": 1.0,
            "error": None,
            "lease_expires_at": None,
            "finished_at": utcnow(),
        }
        if stage is not None:
            values["stage"] = stage[:200]
        return await self._update_owned(job_id, worker, **values)

    async def mark_failed(self, job_id: str, worker: str, error: str) -> bool:
        return await self._update_owned(
            job_id,
            worker,
            status=JobStatus.FAILED,
            error=error,
            lease_expires_at=None,
            finished_at=utcnow(),
        )

    async def requeue(self, job_id: str, worker: str, *, run_after: datetime, error: str) -> bool:
        """Back to the queue after a transient failure; the attempt stays counted."""
        return await self._update_owned(
            job_id,
            worker,
            status=JobStatus.QUEUED,
            error=error,
            run_after=run_after,
            lease_expires_at=None,
        )

    async def release(self, job_id: str, worker: str) -> bool:
        """Back to the queue, due now, without counting the attempt (shutdown)."""
        return await self._update_owned(
            job_id,
            worker,
            status=JobStatus.QUEUED,
            attempts=Job.attempts - 1,
            run_after=utcnow(),
            lease_expires_at=None,
        )

    # Housekeeping -----------------------------------------------------------------------

    async def recover_stale(self) -> tuple[list[str], list[str]]:
        """Jobs whose worker stopped renewing: requeued (ids first) or, having used up
        their attempts, failed (ids second)."""
        now = utcnow()
        rows = (
            await self.session.execute(
                select(Job.id, Job.attempts, Job.max_attempts).where(
                    Job.status == JobStatus.RUNNING, Job.lease_expires_at < now
                )
            )
        ).all()
        requeued: list[str] = []
        failed: list[str] = []
        for job_id, attempts, max_attempts in rows:
            exhausted = attempts >= max_attempts
            values: dict[str, Any] = (
                {
                    "status": JobStatus.FAILED,
                    "error": _stale_reason(attempts),
                    "finished_at": now,
                }
                if exhausted
                else {"status": JobStatus.QUEUED, "run_after": now}
            )
            # Re-checked so a worker that renewed in the meantime keeps its job.
            result = await self.session.execute(
                update(Job)
                .where(
                    Job.id == job_id,
                    Job.status == JobStatus.RUNNING,
                    Job.lease_expires_at < now,
                )
                .values(lease_expires_at=None, updated_at=now, **values)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount:  # type: ignore[attr-defined]
                (failed if exhausted else requeued).append(job_id)
        return requeued, failed

    async def due_ids(self, *, due_before: datetime | None = None, limit: int = 500) -> list[str]:
        """Queued jobs whose time has come (oldest first)."""
        cutoff = due_before or utcnow()
        result = await self.session.execute(
            select(Job.id)
            .where(Job.status == JobStatus.QUEUED, Job.run_after <= cutoff)
            .order_by(Job.run_after, Job.created_at)
            .limit(limit)
        )
        return list(result.scalars().all())

    async def next_run_after(self) -> datetime | None:
        """When the earliest queued job becomes due (possibly in the past)."""
        result = await self.session.execute(
            select(Job.run_after)
            .where(Job.status == JobStatus.QUEUED)
            .order_by(Job.run_after)
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def unfinished_counts(self) -> list[tuple[str, str, int]]:
        """(kind, status, count) for queued and running jobs: the backlog, for the metrics."""
        result = await self.session.execute(
            select(Job.kind, Job.status, func.count())
            .where(Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
            .group_by(Job.kind, Job.status)
        )
        return [(str(kind), str(status), int(count)) for kind, status, count in result.all()]
