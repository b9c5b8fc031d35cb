"""What a job handler sees, and how it reports progress or gives up."""

from __future__ import annotations

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
    whose handler has not ended (the group is topped up from the queue as they end);
    listeners hear each id as it leaves."""

    def __init__(self) -> None:
        self.members: set[str] = set()
        self.shared: dict[str, Any] = {}
        self._listeners: list[Callable[[str], None]] = []

    def join(self, job_id: str) -> None:
        self.members.add(job_id)

    def on_leave(self, listener: Callable[[str], None]) -> None:
        self._listeners.append(listener)

    def leave(self, job_id: str) -> None:
        self.members.discard(job_id)
        for listener in list(self._listeners):
            listener(job_id)


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
