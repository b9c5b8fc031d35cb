"""Background jobs with the in-process worker, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from onebox.core.db import utcnow
from onebox.core.settings import Settings
from onebox.jobs import worker as worker_module
from onebox.jobs.base import JobServices
from onebox.jobs.factory import build_dispatcher
from onebox.jobs.models import Job, JobStatus
from onebox.jobs.repository import JobRepository
from onebox.jobs.schemas import JobOut
from onebox.jobs.service import enqueue, get_job_for_owner, wait_for_jobs
from onebox.jobs.standalone import open_job_services
from onebox.jobs.worker import InProcessWorker

pytestmark = pytest.mark.anyio


@pytest.fixture
async def services(tmp_path: Path, database_url: str) -> AsyncIterator[JobServices]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        database_url=database_url,
        job_retry_base_seconds=0.1,
        job_lease_seconds=5.0,
    )
    async with open_job_services(settings) as built:
        yield built


def tuned(services: JobServices, **settings: Any) -> JobServices:
    return replace(services, settings=services.settings.model_copy(update=settings))


async def add_job(services: JobServices, kind: str, payload: dict[str, Any], **options: Any) -> str:
    async with services.sessionmaker() as session:
        job = await enqueue(session, kind, payload, settings=services.settings, **options)
        await session.commit()
        return job.id


async def load(services: JobServices, job_id: str) -> Job:
    async with services.sessionmaker() as session:
        job = await JobRepository(session).get(job_id)
    assert job is not None
    return job


async def wait_until(services: JobServices, job_id: str, status: str, within: float = 10) -> Job:
    async with asyncio.timeout(within):
        # The row changes in another connection; there is nothing to wait on but time.
        while (job := await load(services, job_id)).status != status:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return job


def marker_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_job_runs_to_done_with_progress_stored(services: JobServices, tmp_path: Path) -> None:
    marker = tmp_path / "ran.jsonl"
    worker = build_dispatcher(services.settings, services)
    assert isinstance(worker, InProcessWorker)
    await worker.start()
    try:
        job_id = await add_job(
            services,
            "testing.sleep",
            {"seconds": 1.2, "steps": 4, "marker": str(marker)},
            owner_id="owner-1",
            subject_id="subject-1",
        )
        worker.notify([job_id])
        seen: list[tuple[str, float, str]] = []

        def watch(jobs: list[Job]) -> None:
            seen.extend((job.status, job.progress, job.stage) for job in jobs)

        [job] = await worker.drain([job_id], max_wait=10, on_update=watch)
    finally:
        await worker.close()
    assert job.status == JobStatus.DONE
    assert job.progress == 1.0
    assert job.stage == "slept"
    assert job.attempts == 1
    assert job.error is None
    assert job.started_at is not None
    assert job.finished_at is not None
    assert job.lease_expires_at is None
    # Progress was visible while it ran, not only at the end.
    assert any(status == "running" and 0 < progress < 1 for status, progress, _ in seen)
    assert [line["attempt"] for line in marker_lines(marker)] == [1]

    async with services.sessionmaker() as session:
        mine = await get_job_for_owner(session, job_id, "owner-1")
        assert mine is not None
        assert await get_job_for_owner(session, job_id, "someone-else") is None
        assert [j.id for j in await JobRepository(session).list_for_subject("subject-1")] == [
            job_id
        ]
    out = JobOut.model_validate(mine)
    assert (out.status, out.progress, out.subject_id) == ("done", 1.0, "subject-1")


async def test_transient_failure_is_retried_with_backoff(
    services: JobServices, tmp_path: Path
) -> None:
    marker = tmp_path / "flaky.jsonl"
    worker = InProcessWorker(services, poll_interval=0.2)
    await worker.start()
    try:
        job_id = await add_job(
            services, "testing.flaky", {"failures": 2, "marker": str(marker)}, max_attempts=3
        )
        worker.notify([job_id])
        [job] = await worker.drain([job_id], max_wait=15)
    finally:
        await worker.close()
    assert job.status == JobStatus.DONE
    assert job.attempts == 3
    assert job.error is None
    runs = marker_lines(marker)
    assert [run["attempt"] for run in runs] == [1, 2, 3]
    # base 0.1 s: about 0.1 s before the second attempt and 0.2 s before the third.
    assert runs[1]["at"] - runs[0]["at"] >= 0.1
    assert runs[2]["at"] - runs[1]["at"] >= 0.2


async def test_exhausted_retries_fail_with_the_last_reason(services: JobServices) -> None:
    worker = InProcessWorker(services, poll_interval=0.2)
    await worker.start()
    try:
        job_id = await add_job(
            services, "testing.fail", {"message": "upstream said no"}, max_attempts=2
        )
        worker.notify([job_id])
        [job] = await worker.drain([job_id], max_wait=15)
    finally:
        await worker.close()
    assert job.status == JobStatus.FAILED
    assert job.attempts == 2
    assert job.error == "upstream said no (tried 2 times)"
    assert "Traceback" not in (job.error or "")


async def test_poison_job_fails_at_once_and_the_queue_moves_on(
    services: JobServices, tmp_path: Path
) -> None:
    marker = tmp_path / "next.jsonl"
    poison_id = await add_job(services, "testing.poison", {"message": "corrupt file"})
    next_id = await add_job(services, "testing.record", {"marker": str(marker)})
    worker = InProcessWorker(services, concurrency=1)
    await worker.start()
    try:
        poisoned, following = await worker.drain([poison_id, next_id], max_wait=10)
    finally:
        await worker.close()
    assert (poisoned.status, poisoned.attempts, poisoned.error) == ("failed", 1, "corrupt file")
    assert following.status == JobStatus.DONE
    assert len(marker_lines(marker)) == 1


async def test_unknown_kind_fails_clearly(services: JobServices) -> None:
    job_id = await add_job(services, "no.such.kind", {})
    worker = InProcessWorker(services)
    await worker.start()
    try:
        [job] = await worker.drain([job_id], max_wait=10)
    finally:
        await worker.close()
    assert job.status == JobStatus.FAILED
    assert job.attempts == 1
    assert "unknown job kind 'no.such.kind'" in (job.error or "")


async def test_concurrent_claims_never_share_a_job(services: JobServices) -> None:
    job_ids = {await add_job(services, "testing.record", {}) for _ in range(12)}

    async def claim_next(number: int) -> str | None:
        async with services.sessionmaker() as session:
            job = await JobRepository(session).claim_next(f"racer-{number}", 30)
            await session.commit()
        return job.id if job else None

    claimed = [i for i in await asyncio.gather(*(claim_next(n) for n in range(30))) if i]
    assert sorted(claimed) == sorted(job_ids)

    single = await add_job(services, "testing.record", {})

    async def claim(number: int) -> bool:
        async with services.sessionmaker() as session:
            job = await JobRepository(session).claim(single, f"racer-{number}", 30)
            await session.commit()
        return job is not None

    assert sum(await asyncio.gather(*(claim(n) for n in range(10)))) == 1
    assert (await load(services, single)).attempts == 1


async def test_a_background_kind_waits_for_every_other_due_job(services: JobServices) -> None:
    later = await add_job(services, "testing.background_record", {})
    first, second = [await add_job(services, "testing.record", {}) for _ in range(2)]

    async def claim_next() -> str | None:
        async with services.sessionmaker() as session:
            job = await JobRepository(session).claim_next("solo", 30)
            await session.commit()
        return job.id if job else None

    assert [await claim_next() for _ in range(4)] == [first, second, later, None]


async def test_two_workers_run_each_job_once(services: JobServices, tmp_path: Path) -> None:
    marker = tmp_path / "once.jsonl"
    job_ids = [
        await add_job(services, "testing.record", {"marker": str(marker)}) for _ in range(10)
    ]
    first = InProcessWorker(services, concurrency=3, name="first")
    second = InProcessWorker(services, concurrency=3, name="second")
    await asyncio.gather(first.start(), second.start())
    try:
        first.notify(job_ids)
        second.notify(job_ids)
        jobs = await wait_for_jobs(services.sessionmaker, job_ids, max_wait=15)
    finally:
        await asyncio.gather(first.close(), second.close())
    assert {job.status for job in jobs} == {"done"}
    assert sorted(line["job_id"] for line in marker_lines(marker)) == sorted(job_ids)


async def simulate_crash(services: JobServices, job_id: str, attempts: int) -> None:
    """The row as a worker that died mid-job leaves it: running, lease lapsed."""
    async with services.sessionmaker() as session:
        await session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                status=JobStatus.RUNNING,
                attempts=attempts,
                worker="dead-worker/0000",
                started_at=utcnow() - timedelta(minutes=5),
                lease_expires_at=utcnow() - timedelta(seconds=1),
            )
        )
        await session.commit()


async def test_stale_job_is_resumed_by_a_new_worker(services: JobServices) -> None:
    resumed = await add_job(services, "testing.record", {}, max_attempts=3)
    exhausted = await add_job(services, "testing.record", {}, max_attempts=3)
    await simulate_crash(services, resumed, attempts=1)
    await simulate_crash(services, exhausted, attempts=3)
    worker = InProcessWorker(services)
    await worker.start()
    try:
        done, failed = await worker.drain([resumed, exhausted], max_wait=10)
    finally:
        await worker.close()
    assert (done.status, done.attempts) == ("done", 2)
    assert failed.status == JobStatus.FAILED
    assert failed.error == "the worker stopped while running this job 3 times"


async def test_heartbeat_keeps_a_long_job_leased(services: JobServices) -> None:
    # Lease 1.2 s, sweeps every 0.6 s: without renewal the 2.5 s job would be taken back.
    quick = tuned(services, job_lease_seconds=1.2)
    job_id = await add_job(quick, "testing.sleep", {"seconds": 2.5, "steps": 2})
    worker = InProcessWorker(quick)
    await worker.start()
    try:
        [job] = await worker.drain([job_id], max_wait=10)
    finally:
        await worker.close()
    assert (job.status, job.attempts) == ("done", 1)


async def test_a_worker_that_lost_its_lease_stops_and_leaves_the_row_alone(
    services: JobServices, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "lost.jsonl"
    quick = tuned(services, job_lease_seconds=0.6)
    job_id = await add_job(quick, "testing.sleep", {"seconds": 5, "marker": str(marker)})
    worker = InProcessWorker(quick)
    await worker.start()
    try:
        await wait_until(quick, job_id, JobStatus.RUNNING)
        # As if the lease had lapsed and another worker had taken the job over.
        async with quick.sessionmaker() as session:
            await session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(worker="other/1234", lease_expires_at=utcnow() + timedelta(hours=1))
            )
            await session.commit()
        await asyncio.sleep(1.0)  # a few heartbeats
        after = await load(quick, job_id)
        later = await add_job(quick, "testing.record", {})
        [done] = await worker.drain([later], max_wait=10)
    finally:
        await worker.close()
    assert (after.status, after.worker) == ("running", "other/1234")
    assert done.status == JobStatus.DONE  # the worker carried on with other jobs
    assert not marker.exists()  # the abandoned run never finished
    assert any("no longer ours" in record.getMessage() for record in caplog.records)
    assert (await load(quick, job_id)).worker == "other/1234"  # close() left it alone


async def test_close_requeues_running_jobs_without_counting_the_attempt(
    services: JobServices, tmp_path: Path
) -> None:
    marker = tmp_path / "resumed.jsonl"
    job_id = await add_job(
        services, "testing.sleep", {"seconds": 1.0, "steps": 10, "marker": str(marker)}
    )
    worker = InProcessWorker(services)
    await worker.start()
    try:
        await wait_until(services, job_id, JobStatus.RUNNING)
    finally:
        await worker.close()
    job = await load(services, job_id)
    assert (job.status, job.attempts, job.lease_expires_at) == ("queued", 0, None)
    assert job.run_after <= utcnow()

    restarted = InProcessWorker(services)
    await restarted.start()
    try:
        [job] = await restarted.drain([job_id], max_wait=10)
    finally:
        await restarted.close()
    assert (job.status, job.attempts) == ("done", 1)
    assert [line["attempt"] for line in marker_lines(marker)] == [1]


async def test_notify_wakes_the_worker_before_its_poll(services: JobServices) -> None:
    worker = InProcessWorker(services, poll_interval=30)
    await worker.start()
    try:
        await asyncio.sleep(0.2)  # the loops are now idle for up to 30 s
        job_id = await add_job(services, "testing.record", {})
        worker.notify([job_id])
        [job] = await worker.drain([job_id], max_wait=5)
    finally:
        await worker.close()
    assert job.status == JobStatus.DONE


async def test_closing_does_not_wait_forever_for_a_stuck_job_loop(
    services: JobServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loop that cannot put its job back (blocked on a row lock, say) is left to its
    lease after CLOSE_SECONDS: a shutdown never hangs on it."""
    monkeypatch.setattr(worker_module, "CLOSE_SECONDS", 0.3)
    released = asyncio.Event()

    async def stuck() -> None:
        while not released.is_set():
            try:
                await released.wait()
            except asyncio.CancelledError:
                continue  # as a shielded database call would: cancelling does not stop it

    worker = InProcessWorker(services, poll_interval=0.2)
    loop = asyncio.create_task(stuck())
    await asyncio.sleep(0)  # it is waiting when the worker closes
    worker._tasks = [loop]
    started = time.monotonic()
    await worker.close()
    assert time.monotonic() - started < 5
    assert not loop.done()  # left behind, not waited for
    released.set()
    await loop
