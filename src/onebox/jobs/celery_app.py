"""Celery transport for jobs: the broker only carries job ids; claiming, retries and state
live in the database (see runner), so duplicate or lost messages are harmless. The app
process sends ids and sweeps for stranded jobs; ``onebox worker`` processes run them."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any

from celery import Celery
from celery.signals import worker_process_shutdown, worker_shutdown

from onebox.core.db import utcnow
from onebox.core.settings import Settings
from onebox.jobs.base import JobServices
from onebox.jobs.dispatch import JobDispatcher
from onebox.jobs.models import JobStatus
from onebox.jobs.repository import JobRepository
from onebox.jobs.runner import run_job
from onebox.jobs.worker import recover_stale, sweep_interval_for

logger = logging.getLogger(__name__)

TASK_NAME = "onebox.run_job"
QUEUE = "onebox"
REDISPATCH_AFTER = 60.0  # seconds before the sweeper sends a still-waiting job again


def make_celery(settings: Settings) -> Celery:
    app = Celery("onebox", broker=settings.celery_broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_default_queue=QUEUE,
        # A message is acknowledged only after its job ran, and one whose worker died is
        # given back; each process takes one message at a time so none sits behind a
        # long job while another worker idles.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=settings.worker_concurrency,
        broker_connection_retry_on_startup=True,
        # Publishing from a request or the sweeper must not hang on a dead broker: the
        # sweeper sends again later.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        broker_connection_timeout=3.0,
    )
    runtime = _WorkerRuntime(settings, app)

    def run_job_task(job_id: str) -> bool:
        return runtime.run(job_id)

    app.task(
        name=TASK_NAME,
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
    )(run_job_task)
    _runtimes.add(runtime)
    return app


class _WorkerRuntime:
    """One JobServices and one event loop per worker process, made on the first task (after
    the fork) and reused: the engine pool and HTTP client belong to that loop, so a loop
    per task would break them. The loop runs in its own thread, which suits every pool."""

    def __init__(self, settings: Settings, app: Celery) -> None:
        self.settings = settings
        self.app = app
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._services_cm: AbstractAsyncContextManager[JobServices] | None = None
        self._services: JobServices | None = None
        self.worker = ""

    def _ensure(self) -> tuple[asyncio.AbstractEventLoop, JobServices]:
        with self._lock:
            if self._pid == os.getpid() and self._loop and self._services:
                return self._loop, self._services
            from onebox.jobs.standalone import open_job_services

            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="onebox-jobs", daemon=True)
            thread.start()
            services_cm = open_job_services(self.settings)
            try:
                services = asyncio.run_coroutine_threadsafe(services_cm.__aenter__(), loop).result()
            except BaseException:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(timeout=5)
                loop.close()
                raise
            self._pid, self._loop, self._thread = os.getpid(), loop, thread
            self._services_cm, self._services = services_cm, services
            self.worker = f"celery@{socket.gethostname()}:{os.getpid()}"
            return loop, services

    def run(self, job_id: str) -> bool:
        loop, services = self._ensure()
        ran, retries = asyncio.run_coroutine_threadsafe(self._run(services, job_id), loop).result()
        for retry_id, retry_in in retries.items():
            # The retry waits in the broker; if this send is lost the sweeper finds the
            # job once it is due.
            try:
                self.app.send_task(TASK_NAME, args=[retry_id], countdown=retry_in, queue=QUEUE)
            except Exception:
                logger.warning("could not schedule the retry of job %s", retry_id, exc_info=True)
        return ran

    async def _run(self, services: JobServices, job_id: str) -> tuple[bool, dict[str, float]]:
        """Whether ``job_id`` ran here, and the seconds until each job run with it (its
        group's members too) that failed and waits to be retried."""
        ran = await run_job(services, job_id, self.worker)
        if not ran:
            return False, {}
        async with services.sessionmaker() as session:
            repository = JobRepository(session)
            jobs = [await repository.get(ran_id) for ran_id in ran]
        now = utcnow()
        return True, {
            job.id: max(0.0, (job.run_after - now).total_seconds())
            for job in jobs
            if job is not None and job.status == JobStatus.QUEUED
        }

    def close(self) -> None:
        with self._lock:
            loop, thread, services_cm = self._loop, self._thread, self._services_cm
            if loop is None or self._pid != os.getpid():
                return
            self._loop = self._thread = self._services_cm = self._services = None
            self._pid = None
        try:
            if services_cm is not None:
                asyncio.run_coroutine_threadsafe(
                    services_cm.__aexit__(None, None, None), loop
                ).result(timeout=30)
        except Exception:
            logger.warning("closing job services failed", exc_info=True)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if thread is not None:
                thread.join(timeout=5)


# Weak, so dispatchers made and dropped in the app process (tests) leave nothing behind.
_runtimes: weakref.WeakSet[_WorkerRuntime] = weakref.WeakSet()


def _close_runtimes(**_: Any) -> None:
    for runtime in list(_runtimes):
        runtime.close()


# Prefork children get worker_process_shutdown; solo and thread pools only worker_shutdown.
worker_process_shutdown.connect(_close_runtimes, weak=False)
worker_shutdown.connect(_close_runtimes, weak=False)


class CeleryDispatcher(JobDispatcher):
    """Sends committed job ids to the broker and, in the app process, sweeps for jobs a
    crashed worker left running or whose message was lost."""

    def __init__(
        self,
        services: JobServices,
        *,
        app: Celery | None = None,
        sweep_interval: float | None = None,
        redispatch_after: float = REDISPATCH_AFTER,
    ) -> None:
        settings = services.settings
        self.services = services
        self.app = app or make_celery(settings)
        self.sweep_interval = sweep_interval or sweep_interval_for(settings.job_lease_seconds)
        self.redispatch_after = redispatch_after
        # One thread does all publishing: requests never block on the broker, and kombu's
        # producer pool is used from a single thread.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onebox-dispatch")
        self._sent: dict[str, float] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def notify(self, job_ids: Sequence[str]) -> None:
        if job_ids:
            self._submit(list(job_ids), force=True)

    def _submit(self, job_ids: list[str], *, force: bool) -> Future[int] | None:
        try:
            return self._executor.submit(self._send, job_ids, force)
        except RuntimeError:  # shut down
            logger.warning("job dispatcher closed; %d job(s) wait for a sweep", len(job_ids))
            return None

    def _send(self, job_ids: list[str], force: bool) -> int:
        now = time.monotonic()
        sent = 0
        for job_id in job_ids:
            if not force and now - self._sent.get(job_id, -1e18) < self.redispatch_after:
                continue
            try:
                self.app.send_task(TASK_NAME, args=[job_id], queue=QUEUE)
            except Exception as exc:
                # Never raised into the request: the job is committed and the sweeper
                # sends it again.
                logger.warning("could not send job %s to the broker: %s", job_id, exc)
                return sent
            self._sent[job_id] = now
            sent += 1
        for job_id, at in list(self._sent.items()):
            if now - at >= self.redispatch_after:
                del self._sent[job_id]
        return sent

    async def start(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_loop(), name="jobs-sweeper")

    async def sweep(self) -> int:
        """Resume jobs with lapsed leases and send due jobs that may have no message."""
        recovered = await recover_stale(self.services)
        grace = timedelta(seconds=self.sweep_interval)
        async with self.services.sessionmaker() as session:
            due = await JobRepository(session).due_ids(due_before=utcnow() - grace)
        sent = 0
        for ids, force in ((recovered, True), ([i for i in due if i not in recovered], False)):
            future = self._submit(ids, force=force) if ids else None
            if future is not None:
                sent += await asyncio.wrap_future(future)
        return sent

    async def _sweep_loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                logger.exception("job sweep failed; retrying later")
            await asyncio.sleep(self.sweep_interval)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        # Unsent ids are dropped, not lost: the rows stay queued for the next sweep.
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
        await asyncio.to_thread(self.app.close)


def run_worker(
    settings: Settings, *, pool: str = "prefork", concurrency: int | None = None
) -> None:
    """Run a Celery worker in this process until it is stopped (``onebox worker``)."""
    app = make_celery(settings)
    app.worker_main(
        [
            "worker",
            f"--pool={pool}",
            f"--concurrency={concurrency or settings.worker_concurrency}",
            f"--loglevel={settings.log_level}",
            f"--queues={QUEUE}",
            # Several workers on one host need distinct names.
            f"--hostname=onebox-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
        ]
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m onebox.jobs.celery_app")
    parser.add_argument("command", choices=["worker"])
    parser.add_argument("--pool", default="prefork", choices=["prefork", "solo", "threads"])
    parser.add_argument("--concurrency", type=int, default=None)
    args = parser.parse_args(argv)
    run_worker(Settings(), pool=args.pool, concurrency=args.concurrency)


if __name__ == "__main__":
    main()
