"""Jobs through a real Redis broker and real Celery worker processes, on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete

from onebox.core.settings import Settings
from onebox.jobs.base import JobServices
from onebox.jobs.celery_app import CeleryDispatcher
from onebox.jobs.factory import build_dispatcher
from onebox.jobs.models import Job, JobStatus
from onebox.jobs.repository import JobRepository
from onebox.jobs.service import enqueue, wait_for_jobs
from onebox.jobs.standalone import open_job_services

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

BROKER_URL = os.environ.get("ONEBOX_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
LEASE_SECONDS = 2.0
# Test job kinds never embed: an upstream embedder with a known size starts without a
# request, sparing each worker process the seconds of loading torch and the local model.
EMBEDDINGS: dict[str, Any] = {
    "embedding_provider": "openai",
    "embedding_base_url": "http://127.0.0.1:9/v1",
    "embedding_dimension": 8,
}


@pytest.fixture
def broker_url() -> Iterator[str]:
    """A dedicated Redis database, emptied before and after."""
    import redis

    client = redis.Redis.from_url(BROKER_URL, socket_connect_timeout=2)
    try:
        client.flushdb()
    except redis.ConnectionError as exc:
        client.close()
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Redis not reachable at {BROKER_URL}: {exc}")
    try:
        yield BROKER_URL
    finally:
        client.flushdb()
        client.close()


def environment(postgres_url: str, broker_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "ONEBOX_DATA_DIR": str(tmp_path / "data"),
        "ONEBOX_DATABASE_URL": postgres_url,
        "ONEBOX_JOBS_BACKEND": "celery",
        "ONEBOX_CELERY_BROKER_URL": broker_url,
        "ONEBOX_VECTOR_BACKEND": "qdrant",
        # Local mode locks its folder to one process: workers get their own folder.
        "ONEBOX_QDRANT_URL": str(tmp_path / "qdrant"),
        "ONEBOX_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
        "ONEBOX_JOB_RETRY_BASE_SECONDS": "0.2",
        "ONEBOX_WORKER_CONCURRENCY": "1",
        "ONEBOX_LOG_LEVEL": "INFO",
        **{f"ONEBOX_{name.upper()}": str(value) for name, value in EMBEDDINGS.items()},
    }


@dataclass
class Cluster:
    services: JobServices
    dispatcher: CeleryDispatcher
    env: dict[str, str]
    tmp_path: Path
    workers: list[subprocess.Popen[bytes]]

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        log = (self.tmp_path / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "onebox.jobs.celery_app", "worker", "--pool", "prefork"],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group, so a kill reaches the pool children too.
            start_new_session=True,
        )
        log.close()
        self.workers.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}"
            for path in sorted(self.tmp_path.glob("*.log"))
        )

    async def enqueue(self, kind: str, payload: dict[str, Any], **options: Any) -> str:
        async with self.services.sessionmaker() as session:
            job = await enqueue(session, kind, payload, settings=self.services.settings, **options)
            await session.commit()
        self.dispatcher.notify([job.id])
        return job.id

    async def load(self, job_id: str) -> Job:
        async with self.services.sessionmaker() as session:
            job = await JobRepository(session).get(job_id)
        assert job is not None
        return job

    async def wait(self, job_ids: list[str], within: float) -> list[Job]:
        try:
            return await wait_for_jobs(self.services.sessionmaker, job_ids, max_wait=within)
        except TimeoutError:
            pytest.fail(f"jobs did not finish within {within} s\n{self.logs()}")


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture
async def cluster(postgres_url: str, broker_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    env = environment(postgres_url, broker_url, tmp_path)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "app",
        database_url=postgres_url,
        jobs_backend="celery",
        celery_broker_url=broker_url,
        vector_backend="qdrant",
        qdrant_url=":memory:",
        job_lease_seconds=LEASE_SECONDS,
        job_retry_base_seconds=0.2,
        **EMBEDDINGS,
    )
    async with open_job_services(settings) as services:
        async with services.sessionmaker() as session:
            await session.execute(delete(Job))
            await session.commit()
        dispatcher = build_dispatcher(settings, services)
        assert isinstance(dispatcher, CeleryDispatcher)
        await dispatcher.start()
        cluster = Cluster(services, dispatcher, env, tmp_path, [])
        try:
            yield cluster
        finally:
            for process in cluster.workers:
                stop(process)
            await dispatcher.close()


async def test_worker_runs_jobs_and_a_poison_job_fails_alone(cluster: Cluster) -> None:
    marker = cluster.tmp_path / "ran.jsonl"
    poison = await cluster.enqueue("testing.poison", {"message": "cannot parse this"})
    records = [await cluster.enqueue("testing.record", {"marker": str(marker)}) for _ in range(3)]
    flaky = await cluster.enqueue(
        "testing.flaky", {"failures": 1, "marker": str(marker)}, max_attempts=3
    )
    cluster.start_worker("worker")

    jobs = await cluster.wait([poison, *records, flaky], within=40)
    by_id = {job.id: job for job in jobs}
    assert (by_id[poison].status, by_id[poison].attempts) == ("failed", 1)
    assert by_id[poison].error == "cannot parse this"
    assert [by_id[r].status for r in records] == ["done"] * 3
    # Retried through the broker (a countdown message) after its first failure.
    assert (by_id[flaky].status, by_id[flaky].attempts) == ("done", 2)
    runs = [json.loads(line) for line in marker.read_text().splitlines()]
    assert sorted(run["job_id"] for run in runs) == sorted([*records, flaky, flaky])
    # Run by the worker process, not here.
    assert {run["pid"] for run in runs}.isdisjoint({os.getpid()})


async def test_a_message_runs_the_queued_jobs_of_a_groupable_kind_as_one_group(
    cluster: Cluster,
) -> None:
    # Ingestion's kind is groupable: the pages of an upload share embedding batches in a
    # Celery worker as they do in the in-process one.
    marker = cluster.tmp_path / "grouped.jsonl"
    ids = [await cluster.enqueue("testing.group_record", {"marker": str(marker)}) for _ in range(3)]
    flaky = await cluster.enqueue(
        "testing.group_record", {"marker": str(marker), "failures": 1}, max_attempts=3
    )
    cluster.start_worker("worker")

    jobs = await cluster.wait([*ids, flaky], within=40)
    assert [job.status for job in jobs] == ["done"] * 4, cluster.logs()
    by_id = {job.id: job for job in jobs}
    assert [by_id[job_id].attempts for job_id in ids] == [1, 1, 1]
    assert by_id[flaky].attempts == 2  # its retry was scheduled though another's message ran it
    runs = [json.loads(line) for line in marker.read_text().splitlines()]
    first_runs = [run for run in runs if run["attempt"] == 1]
    assert sorted(run["job_id"] for run in first_runs) == sorted([*ids, flaky])
    everyone = sorted([*ids, flaky])
    assert all(run["members"] == everyone for run in first_runs), runs


async def test_job_of_a_killed_worker_is_resumed_by_another(cluster: Cluster) -> None:
    marker = cluster.tmp_path / "resumed.jsonl"
    job_id = await cluster.enqueue(
        "testing.sleep", {"seconds": 3.0, "steps": 6, "marker": str(marker)}
    )
    first = cluster.start_worker("first")
    async with asyncio.timeout(40):
        while True:
            job = await cluster.load(job_id)
            if job.status == JobStatus.RUNNING and job.progress > 0:
                break
            assert first.poll() is None, cluster.logs()
            await asyncio.sleep(0.05)
    stop(first, signal.SIGKILL)
    assert (await cluster.load(job_id)).status == JobStatus.RUNNING

    cluster.start_worker("second")
    [job] = await cluster.wait([job_id], within=40)
    assert (job.status, job.attempts) == ("done", 2), cluster.logs()
    runs = [json.loads(line) for line in marker.read_text().splitlines()]
    assert [run["attempt"] for run in runs] == [2]
