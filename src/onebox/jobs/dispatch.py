"""How a committed job reaches a worker. The database row is the truth; a dispatcher only
wakes a worker sooner, so a lost notification delays a job but never loses it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from onebox.core.settings import Settings
    from onebox.jobs.base import JobServices


class JobDispatcher(ABC):
    @abstractmethod
    def notify(self, job_ids: Sequence[str]) -> None:
        """Called after the transaction that queued ``job_ids`` committed."""

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass


def build_dispatcher(settings: Settings, services: JobServices) -> JobDispatcher:
    """The dispatcher ``settings.jobs_backend`` asks for; call ``start()`` once the app is
    ready and ``close()`` before the services are torn down."""
    if settings.jobs_backend == "celery":
        from onebox.jobs.celery_app import CeleryDispatcher

        return CeleryDispatcher(services)
    from onebox.jobs.worker import InProcessWorker

    return InProcessWorker(services)
