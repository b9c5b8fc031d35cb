"""How a committed job reaches a worker. The database row is the truth; a dispatcher only
wakes a worker sooner, so a lost notification delays a job but never loses it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence


class JobDispatcher(ABC):
    @abstractmethod
    def notify(self, job_ids: Sequence[str]) -> None:
        """Called after the transaction that queued ``job_ids`` committed."""

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass
