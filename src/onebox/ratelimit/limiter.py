"""The rate limiter: admission of a request against several subjects' limits at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

from onebox.ratelimit.admission import Admission, quietly
from onebox.ratelimit.backends import Backend, open_backend
from onebox.ratelimit.models import (
    CONCURRENT_STREAMS,
    REQUESTS_PER_MINUTE,
    TOKENS_PER_DAY,
    TOKENS_PER_MINUTE,
    TOKENS_PER_MONTH,
    Check,
    Limits,
    LimitsConfig,
    RateLimitExceeded,
    RateLimitStorageError,
    Subject,
    Usage,
)
from onebox.ratelimit.storage_health import StorageHealth, StorageState
from onebox.ratelimit.windows import Period, Windows, subject_key


class RateLimiter:
    """Counts requests, tokens and concurrent streams per subject in a :mod:`limits` storage.

    Every method that touches the storage raises :class:`RateLimitStorageError` when it fails,
    whatever the cause (see :mod:`onebox.ratelimit.storage_health`); :attr:`storage_healthy`
    and :attr:`storage_outages` tell whether it is failing now and how often it has."""

    def __init__(
        self,
        backend: Backend,
        *,
        key_prefix: str = "onebox:rl",
        lease_seconds: float = 60.0,
        refresh_interval: float | None = None,
        concurrency_retry_after: float = 1.0,
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self._backend = backend
        self._windows = Windows(backend.storage)
        self._slots = backend.slots
        self._prefix = key_prefix
        self.lease_seconds = lease_seconds
        self.refresh_interval = refresh_interval or lease_seconds / 3
        self.concurrency_retry_after = concurrency_retry_after
        self.storage_health = StorageHealth()

    @property
    def storage_healthy(self) -> bool:
        """False from a storage operation's failure until one succeeds again."""
        return self.storage_health.healthy

    @property
    def storage_outages(self) -> int:
        """Outages begun since this limiter was opened (a counter, for metrics)."""
        return self.storage_health.outages

    def storage_state(self) -> StorageState:
        return self.storage_health.state()

    async def check_storage(self) -> bool:
        """Ping the storage (a recovery is noticed even with no traffic); True if it answered."""
        try:
            with self.storage_health.watch():
                await self._slots.ping()
        except RateLimitStorageError:
            return False
        return True

    @classmethod
    async def from_url(
        cls,
        url: str,
        *,
        key_prefix: str = "onebox:rl",
        lease_seconds: float = 60.0,
        refresh_interval: float | None = None,
        concurrency_retry_after: float = 1.0,
    ) -> RateLimiter:
        """``memory://`` or ``redis://host:port/db`` (see :func:`parse_storage_url`)."""
        backend = await open_backend(url, key_prefix)
        return cls(
            backend,
            key_prefix=key_prefix,
            lease_seconds=lease_seconds,
            refresh_interval=refresh_interval,
            concurrency_retry_after=concurrency_retry_after,
        )

    @classmethod
    async def from_config(cls, config: LimitsConfig) -> RateLimiter:
        return await cls.from_url(
            config.storage_url, key_prefix=config.key_prefix, lease_seconds=config.lease_seconds
        )

    async def aclose(self) -> None:
        await self._backend.aclose()

    async def __aenter__(self) -> RateLimiter:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    def slot_key(self, subject: Subject) -> str:
        return f"{self._prefix}:{subject_key('slots', subject)}"

    async def admit(self, checks: Sequence[Check], estimated_tokens: int = 0) -> Admission:
        """Admit one request against every ``(subject, limits)``, or raise
        :class:`RateLimitExceeded` for the binding limit (the longest ``retry_after``) having
        taken nothing: it checks tokens/min, day and month (usage + estimate) and requests/min,
        takes a concurrency slot in each subject that has a limit (all or none, atomically),
        then counts the request against each requests/min window."""
        if estimated_tokens < 0:
            raise ValueError("estimated_tokens must not be negative")
        checks = list(checks)
        if not checks:
            # Nothing is limited (the common case on a gateway without quotas): no clock,
            # no id, no storage round trip on the hot path.
            return Admission(self, (), "", ())
        if len({subject for subject, _ in checks}) != len(checks):
            raise ValueError("a subject appears twice in one admission")
        # Only work that reaches the storage is watched: an empty watch would count as a
        # success and end an outage that is still going on.
        windowed = [(s, lim) for s, lim in checks if _windowed(lim)]
        if windowed:
            period = Period.at()
            with self.storage_health.watch():
                found = await asyncio.gather(
                    *(self._precheck(s, lim, estimated_tokens, period) for s, lim in windowed)
                )
            _raise_binding([e for errors in found for e in errors])

        member = uuid.uuid4().hex
        specs = [(self.slot_key(s), lim.concurrent_streams) for s, lim in checks]
        slots = [(key, n) for key, n in specs if n is not None]
        holders = [(s, lim.concurrent_streams) for s, lim in checks if lim.concurrent_streams]
        if slots:
            with self.storage_health.watch():
                full = await self._slots.acquire(slots, member, self.lease_seconds)
            if full is not None:
                subject, limit = holders[full]
                raise RateLimitExceeded(
                    subject, CONCURRENT_STREAMS, limit, self.concurrency_retry_after
                )
        try:
            await self._count_requests(checks)
        except BaseException:
            if slots:
                await quietly(self.release_slots(slots, member))
            raise
        return Admission(self, checks, member, slots)

    async def _precheck(
        self, subject: Subject, limits: Limits, estimate: int, period: Period
    ) -> list[RateLimitExceeded]:
        rpm, tpm = limits.requests_per_minute, limits.tokens_per_minute
        tpd, tpmo = limits.tokens_per_day, limits.tokens_per_month
        windows = self._windows
        rpm_wait, minute, day, month = await asyncio.gather(
            windows.request_wait(subject, rpm) if rpm else _nothing(),
            windows.minute_tokens(subject) if tpm else _nothing(),
            windows.day_tokens(subject, period) if tpd else _nothing(),
            windows.month_tokens(subject, period) if tpmo else _nothing(),
        )
        errors: list[RateLimitExceeded] = []
        if rpm and rpm_wait is not None:
            errors.append(RateLimitExceeded(subject, REQUESTS_PER_MINUTE, rpm, rpm_wait))
        # A request needs at least one token; one bigger than a whole limit waits for an empty
        # window rather than being refused forever.
        tpm_wait = (
            minute.wait_for(_need(estimate, tpm), tpm) if tpm and minute is not None else None
        )
        if tpm and tpm_wait is not None:
            errors.append(RateLimitExceeded(subject, TOKENS_PER_MINUTE, tpm, tpm_wait))
        if tpd and day is not None and day + _need(estimate, tpd) > tpd:
            errors.append(RateLimitExceeded(subject, TOKENS_PER_DAY, tpd, period.until_day_end()))
        if tpmo and month is not None and month + _need(estimate, tpmo) > tpmo:
            errors.append(
                RateLimitExceeded(subject, TOKENS_PER_MONTH, tpmo, period.until_month_end())
            )
        return errors

    async def _count_requests(self, checks: Sequence[Check]) -> None:
        counted = [(s, lim.requests_per_minute) for s, lim in checks if lim.requests_per_minute]
        if not counted:
            return
        with self.storage_health.watch():
            hits = await asyncio.gather(*(self._windows.request_hit(s, n) for s, n in counted))
            errors = []
            for (subject, limit), hit in zip(counted, hits, strict=True):
                if not hit:  # lost a race after the precheck
                    wait = await self._windows.request_wait(subject, limit)
                    errors.append(
                        RateLimitExceeded(subject, REQUESTS_PER_MINUTE, limit, wait or 1.0)
                    )
        _raise_binding(errors)

    async def record_tokens(self, subjects: Sequence[Subject], tokens: int) -> None:
        """Count ``tokens`` against each subject's minute, day and month windows."""
        if tokens <= 0 or not subjects:
            return
        period = Period.at()
        with self.storage_health.watch():
            await asyncio.gather(
                *(self._windows.record_minute_tokens(s, tokens) for s in subjects),
                *(self._windows.record_period_tokens(s, tokens, period) for s in subjects),
            )

    async def usage(self, subject: Subject) -> Usage:
        """Current counts for display. Requests are counted only where a requests/min limit
        applied; tokens are counted for every subject that went through :meth:`admit`."""
        period = Period.at()
        with self.storage_health.watch():
            requests, minute, day, month, streams = await asyncio.gather(
                self._windows.requests_this_minute(subject),
                self._windows.minute_tokens(subject),
                self._windows.day_tokens(subject, period),
                self._windows.month_tokens(subject, period),
                self._slots.count(self.slot_key(subject)),
            )
        return Usage(
            requests_this_minute=requests,
            tokens_this_minute=int(minute.used),
            tokens_today=day,
            tokens_this_month=month,
            concurrent_streams=streams,
        )

    # Used by Admission.
    async def refresh_slots(self, slots: Sequence[tuple[str, int]], member: str) -> int:
        with self.storage_health.watch():
            return await self._slots.refresh(slots, member, self.lease_seconds)

    async def release_slots(self, slots: Sequence[tuple[str, int]], member: str) -> None:
        with self.storage_health.watch():
            await self._slots.release([k for k, _ in slots], member)


def _windowed(limits: Limits) -> bool:
    return any(
        (
            limits.requests_per_minute,
            limits.tokens_per_minute,
            limits.tokens_per_day,
            limits.tokens_per_month,
        )
    )


async def _nothing() -> None:
    return None


def _need(estimate: int, limit: int) -> int:
    return max(1, min(estimate, limit))


def _raise_binding(errors: Sequence[RateLimitExceeded]) -> None:
    if errors:
        raise max(errors, key=lambda e: e.retry_after)
