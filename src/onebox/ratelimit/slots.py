"""Concurrency slots held under expiring leases.

Each subject with a ``concurrent_streams`` limit has a set of slot holders, each with a lease
expiry. Acquiring first drops expired leases, so a holder that died (process crash, SIGKILL,
lost network) frees its slot when its lease runs out; a healthy holder refreshes its lease
while it streams. In Redis the set is a sorted set (member = slot id, score = lease expiry in
ms by the *Redis server clock*, so replica clock skew does not matter), changed only by Lua
scripts so that check-and-add is atomic across every replica. The whole key also gets a TTL of
two leases, refreshed with every lease, as a safety net against keys nobody touches again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol, cast

import coredis

from onebox.ratelimit.models import RateLimitStorageError
from onebox.ratelimit.storage_health import STORAGE_FAILURES


class SlotStore(Protocol):
    async def acquire(
        self, specs: Sequence[tuple[str, int]], member: str, lease: float
    ) -> int | None:
        """Take a slot in every ``(key, limit)`` or none; the index of the full one, else None."""

    async def refresh(self, specs: Sequence[tuple[str, int]], member: str, lease: float) -> int:
        """Extend the leases (re-taking lapsed ones when there is room); how many are lost."""

    async def release(self, keys: Sequence[str], member: str) -> None: ...

    async def count(self, key: str) -> int: ...

    async def ping(self) -> None:
        """Raise :class:`RateLimitStorageError` unless the store answers."""

    async def aclose(self) -> None: ...


class MemorySlotStore:
    """Slots for one process; the same lease rules, so an abandoned admission is reclaimed."""

    def __init__(self) -> None:
        self._slots: dict[str, dict[str, float]] = {}

    def _live(self, key: str, now: float) -> dict[str, float]:
        holders = self._slots.setdefault(key, {})
        for member in [m for m, expiry in holders.items() if expiry <= now]:
            del holders[member]
        return holders

    async def acquire(
        self, specs: Sequence[tuple[str, int]], member: str, lease: float
    ) -> int | None:
        now = time.monotonic()
        for index, (key, limit) in enumerate(specs):
            if len(self._live(key, now)) >= limit:
                self._forget_empty([k for k, _ in specs])
                return index
        for key, _ in specs:
            self._slots[key][member] = now + lease
        return None

    async def refresh(self, specs: Sequence[tuple[str, int]], member: str, lease: float) -> int:
        now = time.monotonic()
        lost = 0
        for key, limit in specs:
            holders = self._live(key, now)
            if member in holders or len(holders) < limit:
                holders[member] = now + lease
            else:
                lost += 1
        return lost

    async def release(self, keys: Sequence[str], member: str) -> None:
        for key in keys:
            self._slots.get(key, {}).pop(member, None)
        self._forget_empty(keys)

    async def count(self, key: str) -> int:
        count = len(self._live(key, time.monotonic()))
        self._forget_empty([key])
        return count

    async def ping(self) -> None:
        return None

    def _forget_empty(self, keys: Sequence[str]) -> None:
        for key in keys:
            if not self._slots.get(key, True):
                del self._slots[key]

    async def aclose(self) -> None:
        self._slots.clear()


_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: slot sets; ARGV: member, lease_ms, limit per key. Returns 0, or the 1-based full key.
_ACQUIRE = (
    _NOW_MS
    + """
local lease = tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= tonumber(ARGV[i + 2]) then
    return i
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + lease, ARGV[1])
  redis.call('PEXPIRE', key, lease * 2)
end
return 0
"""
)

# Same arguments; extends held leases, re-takes lapsed ones if there is room; returns lost count.
_REFRESH = (
    _NOW_MS
    + """
local lease = tonumber(ARGV[2])
local lost = 0
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZSCORE', key, ARGV[1])
      or redis.call('ZCARD', key) < tonumber(ARGV[i + 2]) then
    redis.call('ZADD', key, now + lease, ARGV[1])
    redis.call('PEXPIRE', key, lease * 2)
  else
    lost = lost + 1
  end
end
return lost
"""
)

_RELEASE = """
for _, key in ipairs(KEYS) do
  redis.call('ZREM', key, ARGV[1])
end
return 0
"""

_COUNT = (
    _NOW_MS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""
)


class RedisSlotStore:
    """Slots shared by every replica through one Redis (see the module docstring)."""

    def __init__(self, pool: coredis.ConnectionPool) -> None:
        self._client: coredis.Redis[bytes] = coredis.Redis(connection_pool=pool)
        self._acquire = self._client.register_script(_ACQUIRE)
        self._refresh = self._client.register_script(_REFRESH)
        self._release = self._client.register_script(_RELEASE)
        self._count = self._client.register_script(_COUNT)

    @staticmethod
    def _args(specs: Sequence[tuple[str, int]], member: str, lease: float) -> tuple[str | int, ...]:
        return (member, max(1, round(lease * 1000)), *(limit for _, limit in specs))

    async def acquire(
        self, specs: Sequence[tuple[str, int]], member: str, lease: float
    ) -> int | None:
        try:
            full = await self._acquire.execute(
                keys=[k for k, _ in specs], args=self._args(specs, member, lease)
            )
        except STORAGE_FAILURES as exc:
            raise RateLimitStorageError(f"Redis concurrency slots: {exc}") from exc
        full = cast(int, full)
        return None if full == 0 else full - 1

    async def refresh(self, specs: Sequence[tuple[str, int]], member: str, lease: float) -> int:
        try:
            lost = await self._refresh.execute(
                keys=[k for k, _ in specs], args=self._args(specs, member, lease)
            )
        except STORAGE_FAILURES as exc:
            raise RateLimitStorageError(f"Redis concurrency slots: {exc}") from exc
        return cast(int, lost)

    async def release(self, keys: Sequence[str], member: str) -> None:
        try:
            await self._release.execute(keys=list(keys), args=(member,))
        except STORAGE_FAILURES as exc:
            raise RateLimitStorageError(f"Redis concurrency slots: {exc}") from exc

    async def count(self, key: str) -> int:
        try:
            return cast(int, await self._count.execute(keys=[key], args=()))
        except STORAGE_FAILURES as exc:
            raise RateLimitStorageError(f"Redis concurrency slots: {exc}") from exc

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except STORAGE_FAILURES as exc:
            raise RateLimitStorageError(f"Redis ping: {exc}") from exc

    async def aclose(self) -> None:
        """The connection pool is shared with the window storage and closed by its owner."""
