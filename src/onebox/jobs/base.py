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


@dataclass
class JobContext:
    job_id: str
    kind: str
    payload: dict[str, Any]
    attempt: int  # 1 for the first run
    services: JobServices
    report: ProgressReporter
    max_attempts: int = 3

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts

    async def progress(self, fraction: float, stage: str) -> None:
        """Store progress (0..1) and what is happening; also renews the job's lease."""
        await self.report(min(1.0, max(0.0, fraction)), stage)


JobHandler = Callable[[JobContext], Awaitable[None]]
