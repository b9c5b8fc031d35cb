"""An admitted request: its concurrency leases, their renewal, and its release."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Sequence
from types import TracebackType
from typing import Protocol, TypeVar

from onebox.ratelimit.models import Check, RateLimitStorageError, Subject, Usage

logger = logging.getLogger(__name__)

T = TypeVar("T")


async def quietly(awaitable: Awaitable[T]) -> T | None:
    """Cleanup that must not fail the request it belongs to. A storage failure is the
    limiter's to report (once per outage, see :mod:`onebox.ratelimit.storage_health`);
    anything else is a bug and logged as one."""
    try:
        return await awaitable
    except RateLimitStorageError:
        return None
    except Exception:
        logger.warning("rate limiter cleanup failed", exc_info=True)
        return None


class SlotKeeper(Protocol):
    """What an admission needs of the limiter that admitted it (the limiter imports this
    module, so the dependency points one way)."""

    refresh_interval: float

    async def refresh_slots(self, slots: Sequence[tuple[str, int]], member: str) -> int: ...
    async def release_slots(self, slots: Sequence[tuple[str, int]], member: str) -> None: ...
    async def record_tokens(self, subjects: Sequence[Subject], tokens: int) -> None: ...
    async def usage(self, subject: Subject) -> Usage: ...


class Admission:
    """An admitted request. Release it when the response is done, with the tokens it used --
    ``async with`` does so with :attr:`tokens_used` -- to record them and free its concurrency
    slots. While it holds slots, a background task renews their leases every
    ``refresh_interval``; a crashed process stops renewing and its slots lapse after a lease."""

    def __init__(
        self,
        limiter: SlotKeeper,
        checks: Sequence[Check],
        member: str,
        slots: Sequence[tuple[str, int]],
    ) -> None:
        self._limiter = limiter
        self.checks: tuple[Check, ...] = tuple(checks)
        self.slot_id = member
        self._slots = tuple(slots)
        self.tokens_used = 0
        self._released = False
        # Serialises lease renewal and release: a renewal landing after the release would
        # re-take the slot (there is room) and leave it held, unrenewed, for a whole lease.
        self._lease_lock = asyncio.Lock()
        self._refresher: asyncio.Task[None] | None = None
        if self._slots:
            self._refresher = asyncio.create_task(
                _keep_alive(weakref.ref(self), limiter.refresh_interval),
                name=f"ratelimit-lease-{member}",
            )

    @property
    def released(self) -> bool:
        return self._released

    async def refresh(self) -> bool:
        """Renew the concurrency leases now; False if a lapsed one could not be re-taken."""
        async with self._lease_lock:
            if self._released or not self._slots:
                return not self._released
            lost = await self._limiter.refresh_slots(self._slots, self.slot_id)
        if lost:
            logger.warning("rate limit slot lease %s lapsed and the slot was taken", self.slot_id)
        return lost == 0

    async def release(self, tokens_used: int | None = None) -> None:
        """Record the tokens used (default :attr:`tokens_used`) and free the slots; only the
        first call does anything. Storage failures are not raised: leases lapse anyway."""
        if self._released:
            return
        self._released = True
        if tokens_used is not None:
            self.tokens_used = tokens_used
        if self._slots:
            async with self._lease_lock:  # waits for a renewal in flight
                if self._refresher is not None:
                    self._refresher.cancel()
                await quietly(self._limiter.release_slots(self._slots, self.slot_id))
        if self.checks:
            subjects = [subject for subject, _ in self.checks]
            await quietly(self._limiter.record_tokens(subjects, self.tokens_used))

    async def charge(self, tokens: int) -> None:
        """Record ``tokens`` more against the same subjects: work done for this request
        after it ended (its conversation's title). Storage failures are not raised."""
        if self.checks and tokens > 0:
            subjects = [subject for subject, _ in self.checks]
            await quietly(self._limiter.record_tokens(subjects, tokens))

    async def usage(self, subject: Subject) -> Usage:
        return await self._limiter.usage(subject)

    async def __aenter__(self) -> Admission:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()


async def _keep_alive(ref: weakref.ref[Admission], interval: float) -> None:
    """Renew an admission's leases until it is released -- or dropped unreleased, so a leaked
    admission cannot keep its slots forever (only a weak reference is held)."""
    while True:
        await asyncio.sleep(interval)
        admission = ref()
        if admission is None or admission.released:
            return
        await quietly(admission.refresh())
        del admission
