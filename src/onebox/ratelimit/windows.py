"""Request and token windows on a :mod:`limits` async storage (memory or Redis).

* requests/min: ``MovingWindowRateLimiter`` -- an exact log of request timestamps (one entry per
  request, at most ``limit`` kept), atomic check-and-add (a Lua script in Redis, a lock in
  memory), and the exact time the oldest request leaves the window for ``Retry-After``.
* tokens/min: the sliding-window-counter primitives -- two counters per subject whatever the
  volume (a moving window would store one list entry per *token*), approximating the rolling
  minute by weighting the previous window; tokens are recorded after the fact, so they are added
  unconditionally and checked against the limit only at admission.
* tokens/day and tokens/month: plain counters per UTC calendar day and month (the key carries
  the period, e.g. ``tpd:key:abc:20250614``), the way quotas are billed and displayed.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast
from urllib.parse import quote

from limits import RateLimitItemPerMinute
from limits.aio.storage import MovingWindowSupport, SlidingWindowCounterSupport, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from onebox.ratelimit.models import Subject

MINUTE = 60
_UNBOUNDED = 10**15  # "limit" passed when recording tokens that were already spent
_MAX_LISTED = 1_000_000  # moving-window entries examined when only counting
_MIN_WAIT = 0.01


class _Item(RateLimitItemPerMinute):
    """A per-minute item whose storage key is exactly the given identifier (not the amount),
    so changing a subject's limit does not reset its window."""

    def key_for(self, *identifiers: bytes | str | int | float) -> str:
        return "/".join(str(i) for i in identifiers)


def subject_key(kind: str, subject: Subject) -> str:
    """``{kind}:{subject kind}:{subject id}``, ids percent-encoded (no ``/ : { }`` leaks)."""
    return f"{kind}:{quote(subject.kind, safe='')}:{quote(subject.id, safe='')}"


@dataclass(frozen=True)
class Period:
    """The current UTC day and month: their key suffixes and when they end."""

    day: str
    month: str
    day_end: datetime
    month_end: datetime
    now: datetime

    @classmethod
    def at(cls, now: datetime | None = None) -> Period:
        now = now or datetime.now(UTC)
        midnight = datetime(now.year, now.month, now.day, tzinfo=UTC)
        next_month = (
            datetime(now.year + 1, 1, 1, tzinfo=UTC)
            if now.month == 12
            else datetime(now.year, now.month + 1, 1, tzinfo=UTC)
        )
        return cls(
            day=now.strftime("%Y%m%d"),
            month=now.strftime("%Y%m"),
            day_end=midnight + timedelta(days=1),
            month_end=next_month,
            now=now,
        )

    def until_day_end(self) -> float:
        return (self.day_end - self.now).total_seconds()

    def until_month_end(self) -> float:
        return (self.month_end - self.now).total_seconds()


@dataclass(frozen=True)
class SlidingState:
    """Sliding window counter state: previous/current counts and their remaining lifetimes."""

    previous: int
    previous_ttl: float
    current: int
    current_ttl: float

    @property
    def used(self) -> float:
        return self.previous * self.previous_ttl / MINUTE + self.current

    def wait_for(self, need: int, limit: int) -> float | None:
        """Seconds until ``need`` more tokens fit under ``limit``; None if they fit now."""
        if self.used + need <= limit:
            return None
        if self.previous and self.current + need <= limit:
            # The previous window's weight decays linearly; wait until enough has decayed.
            wait = self.previous_ttl - (limit - self.current - need) * MINUTE / self.previous
            return max(wait, _MIN_WAIT)
        # Wait for the current window to roll over, then for its weight to decay enough.
        roll = max(self.current_ttl - MINUTE, 0.0)
        decay = MINUTE - (limit - need) * MINUTE / self.current if self.current else 0.0
        return max(roll + max(decay, 0.0), _MIN_WAIT)


class Windows:
    """The counting operations the limiter needs, on one :mod:`limits` storage."""

    def __init__(self, storage: Storage) -> None:
        if not isinstance(storage, MovingWindowSupport) or not isinstance(
            storage, SlidingWindowCounterSupport
        ):
            raise TypeError(f"{type(storage).__name__} lacks moving/sliding window support")
        self.storage = storage
        self._moving = MovingWindowRateLimiter(storage)
        self._sliding = cast(SlidingWindowCounterSupport, storage)

    # requests / minute ---------------------------------------------------------------------
    async def request_wait(self, subject: Subject, limit: int) -> float | None:
        """Seconds until one more request fits, or None if it fits now."""
        stats = await self._moving.get_window_stats(_Item(limit), subject_key("rpm", subject))
        if stats.remaining >= 1:
            return None
        return max(stats.reset_time - time.time(), _MIN_WAIT)

    async def request_hit(self, subject: Subject, limit: int) -> bool:
        return await self._moving.hit(_Item(limit), subject_key("rpm", subject))

    async def requests_this_minute(self, subject: Subject) -> int:
        _, count = await cast(MovingWindowSupport, self.storage).get_moving_window(
            subject_key("rpm", subject), _MAX_LISTED, MINUTE
        )
        return count

    # tokens / minute -----------------------------------------------------------------------
    async def minute_tokens(self, subject: Subject) -> SlidingState:
        state = await self._sliding.get_sliding_window(subject_key("tpm", subject), MINUTE)
        return SlidingState(*state)

    async def record_minute_tokens(self, subject: Subject, tokens: int) -> None:
        await self._sliding.acquire_sliding_window_entry(
            subject_key("tpm", subject), _UNBOUNDED, MINUTE, tokens
        )

    # tokens / day and month ----------------------------------------------------------------
    async def day_tokens(self, subject: Subject, period: Period) -> int:
        return await self.storage.get(subject_key("tpd", subject) + ":" + period.day)

    async def month_tokens(self, subject: Subject, period: Period) -> int:
        return await self.storage.get(subject_key("tpmo", subject) + ":" + period.month)

    async def record_period_tokens(self, subject: Subject, tokens: int, period: Period) -> None:
        # Keys outlive their period by a day so a late reader still sees the final count.
        day_ttl = math.ceil(period.until_day_end()) + 86_400
        month_ttl = math.ceil(period.until_month_end()) + 86_400
        await asyncio.gather(
            self.storage.incr(subject_key("tpd", subject) + ":" + period.day, day_ttl, tokens),
            self.storage.incr(subject_key("tpmo", subject) + ":" + period.month, month_ttl, tokens),
        )
