"""What a job handler sees, and how it reports progress or gives up."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from onebox.core.settings import Settings
    from onebox.embeddings.base import Embedder
    from onebox.jobs.sandbox import SandboxPool
    from onebox.vectors.base import VectorIndex


class PermanentJobError(Exception):
    """Retrying cannot help (a corrupt or unsupported file): the job fails at once with
    this message as its reason."""


@dataclass
class JobServices:
    """Long-lived machinery handlers use; built once per process (app or worker)."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    embedder: Embedder
    index: VectorIndex
    http: httpx.AsyncClient
    sandbox: SandboxPool  # CPU-heavy work on untrusted input (parsing) runs here


ProgressReporter = Callable[[float, str], Awaitable[None]]


class JobGroup:
    """Jobs of one kind claimed together and run side by side. Each keeps its own lease,
    transactions and outcome; handlers may share work through ``shared`` (ingestion embeds
    the passages of several documents in one batch). ``members`` holds the ids of the jobs
    whose handler has not ended; a member that needs nothing more from the shared work says
    :meth:`release` (its writes may still run). The runner tops the group up from the queue
    when few members are left ``active``; listeners hear each change."""

    def __init__(self) -> None:
        self.members: set[str] = set()
        self.released: set[str] = set()
        self.shared: dict[str, Any] = {}
        self.changed = asyncio.Event()
        self._listeners: list[Callable[[], None]] = []

    @property
    def active(self) -> int:
        """Members that may still ask for shared work."""
        return len(self.members - self.released)

    def join(self, job_id: str) -> None:
        self.members.add(job_id)
        self._notify()

    def release(self, job_id: str) -> None:
        if job_id in self.members:
            self.released.add(job_id)
            self._notify()

    def leave(self, job_id: str) -> None:
        self.members.discard(job_id)
        self.released.discard(job_id)
        self._notify()

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def _notify(self) -> None:
        self.changed.set()
        for listener in list(self._listeners):
            listener()


@dataclass
class JobContext:
    job_id: str
    kind: str
    payload: dict[str, Any]
    attempt: int  # 1 for the first run
    services: JobServices
    report: ProgressReporter
    max_attempts: int = 3
    group: JobGroup | None = None  # set when claimed with others of its kind

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts

    async def progress(self, fraction: float, stage: str) -> None:
        """Store progress (0..1) and what is happening; also renews the job's lease."""
        await self.report(min(1.0, max(0.0, fraction)), stage)


JobHandler = Callable[[JobContext], Awaitable[None]]
