"""Storage URLs: ``memory://`` for one process, ``redis://`` so every replica shares counts."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import coredis
from limits.aio.storage import Storage
from limits.storage import storage_from_string

from onebox.ratelimit.models import RateLimitStorageError
from onebox.ratelimit.slots import MemorySlotStore, RedisSlotStore, SlotStore

_REDIS_SCHEMES = {"redis", "rediss", "redis+unix"}
DEFAULT_TIMEOUT = 2.0  # seconds to connect, and to wait for a reply, before Redis counts as down


@dataclass(frozen=True)
class StorageURL:
    """A parsed storage URL: ``kind`` is "memory" or "redis"; ``limits_url`` is the async form
    for :func:`limits.storage.storage_from_string`; ``redis_url`` the one for coredis."""

    kind: str
    limits_url: str
    redis_url: str = ""


def parse_storage_url(url: str) -> StorageURL:
    """Map ``memory://``, ``redis://host:port/db``, ``rediss://...``, ``redis+unix:///sock?db=0``
    (an ``async+`` prefix is accepted too) to the async schemes of :mod:`limits`."""
    scheme = urlsplit(url).scheme.lower()
    base = scheme.removeprefix("async+")
    rest = url[len(scheme) :]
    if base == "memory":
        return StorageURL("memory", "async+memory://")
    if base in _REDIS_SCHEMES:
        redis_url = ("unix" if base == "redis+unix" else base) + rest
        return StorageURL("redis", f"async+{base}{rest}", redis_url)
    raise ValueError(
        f"unsupported rate limit storage URL {url!r}: use memory:// or redis://host:port/db"
    )


@dataclass
class Backend:
    storage: Storage
    slots: SlotStore
    pool: coredis.ConnectionPool | None = None

    async def aclose(self) -> None:
        await self.slots.aclose()
        if self.pool is not None:
            self.pool.disconnect()


async def open_backend(url: str, key_prefix: str) -> Backend:
    """The :mod:`limits` storage and the slot store for ``url``; Redis is pinged first so a
    misconfigured URL fails at startup rather than on the first request."""
    parsed = parse_storage_url(url)
    if parsed.kind == "memory":
        storage = storage_from_string(parsed.limits_url)
        assert isinstance(storage, Storage)
        return Backend(storage, MemorySlotStore())
    # One connection pool for the limits storage and the slot scripts, owned (and closed) here.
    # Without timeouts, a Redis that stops answering (rather than refusing) would hold every
    # request forever; ``?connect_timeout=&stream_timeout=`` in the URL override these.
    pool = coredis.BlockingConnectionPool.from_url(
        parsed.redis_url,
        connect_timeout=DEFAULT_TIMEOUT,
        stream_timeout=DEFAULT_TIMEOUT,
    )
    storage = storage_from_string(
        parsed.limits_url,
        connection_pool=pool,  # type: ignore[arg-type]  # passed through to coredis.Redis
        key_prefix=key_prefix,
        wrap_exceptions=True,
    )
    assert isinstance(storage, Storage)
    backend = Backend(storage, RedisSlotStore(pool), pool)
    if not await storage.check():
        await backend.aclose()
        raise RateLimitStorageError(f"rate limit storage not reachable at {_redacted(url)}")
    return backend


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url
