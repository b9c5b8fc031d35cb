"""The limiter when its Redis goes away: every path fails as RateLimitStorageError (never a
raw redis/socket error), the outage is logged once and its end once, and limits apply again
after a restart. A private redis-server is killed, paused and restarted."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

import pytest

from onebox.ratelimit import (
    REQUESTS_PER_MINUTE,
    Limits,
    RateLimiter,
    RateLimitExceeded,
    RateLimitStorageError,
    Subject,
)
from onebox.ratelimit.storage_health import StorageHealth
from tests.redis_server import RedisServer, redis_server

__all__ = ["redis_server"]  # the fixture

pytestmark = pytest.mark.anyio

EVERY_LIMIT = Limits(
    requests_per_minute=3,
    tokens_per_minute=10_000,
    concurrent_streams=2,
    tokens_per_day=100_000,
    tokens_per_month=1_000_000,
)
HEALTH_LOGGER = "onebox.ratelimit.storage_health"


def storage_records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == HEALTH_LOGGER and r.levelno == level
    ]


async def test_every_path_fails_as_a_storage_error_and_recovers(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="onebox.ratelimit")
    subject = Subject("key", "k1")
    async with await RateLimiter.from_url(redis_server.url, lease_seconds=5) as limiter:
        held = await limiter.admit([(subject, EVERY_LIMIT)], estimated_tokens=10)
        assert limiter.storage_healthy
        assert await limiter.check_storage()

        redis_server.kill()
        for checks in (
            [(subject, EVERY_LIMIT)],
            [(Subject("key", "windows"), Limits(requests_per_minute=5, tokens_per_day=10))],
            [(Subject("key", "slots"), Limits(concurrent_streams=1))],
        ):
            with pytest.raises(RateLimitStorageError):
                await limiter.admit(checks, estimated_tokens=10)
        with pytest.raises(RateLimitStorageError):
            await held.refresh()
        with pytest.raises(RateLimitStorageError):
            await limiter.record_tokens([subject], 5)
        with pytest.raises(RateLimitStorageError):
            await limiter.usage(subject)
        await held.release(7)  # renewal and release fail quietly: the lease lapses anyway
        assert held.released
        assert not await limiter.check_storage()

        assert not limiter.storage_healthy
        state = limiter.storage_state()
        assert state.outages == limiter.storage_outages == 1
        assert state.failures >= 8
        assert state.down_since is not None
        assert state.down_since <= time.time()
        assert storage_records(caplog, logging.WARNING) == [
            f"Rate limit storage unavailable ({state.last_error}); until it recovers, "
            "limits follow the failure policy"
        ]
        assert state.last_error
        # Nothing else logged a traceback per failed call.
        assert not [r for r in caplog.records if r.exc_info]

        redis_server.start()  # empty: Redis kept nothing
        assert await limiter.check_storage()
        assert limiter.storage_healthy
        assert limiter.storage_state().down_since is None
        assert len(storage_records(caplog, logging.INFO)) == 1
        assert "recovered" in storage_records(caplog, logging.INFO)[0]
        for _ in range(3):
            await (await limiter.admit([(subject, EVERY_LIMIT)])).release()
        with pytest.raises(RateLimitExceeded) as refused:
            await limiter.admit([(subject, EVERY_LIMIT)])
        assert refused.value.limit_name == REQUESTS_PER_MINUTE
        assert limiter.storage_outages == 1
        assert len(storage_records(caplog, logging.WARNING)) == 1


async def test_connections_reset_mid_command_are_storage_errors(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis killed under load: commands in flight see resets and broken pipes (OSErrors the
    `limits` library does not wrap); every one must still surface as RateLimitStorageError,
    and the many concurrent failures make one outage."""
    caplog.set_level(logging.INFO, logger="onebox.ratelimit")
    unlimited = Limits(
        requests_per_minute=10**6, tokens_per_minute=10**9, concurrent_streams=10**5,
        tokens_per_day=10**12, tokens_per_month=10**13,
    )  # fmt: skip
    outcomes: Counter[str] = Counter()
    served, failing, stop = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def client(limiter: RateLimiter, index: int) -> None:
        subject = Subject("key", str(index % 7))
        while not stop.is_set():
            try:
                admission = await limiter.admit([(subject, unlimited)], estimated_tokens=5)
                await admission.refresh()
                await limiter.usage(subject)
                await admission.release(5)
                outcomes["ok"] += 1
                if outcomes["ok"] >= 60:
                    served.set()
            except RateLimitStorageError:
                outcomes["storage error"] += 1
                if outcomes["storage error"] >= 60:
                    failing.set()
                await asyncio.sleep(0.01)
            except Exception as exc:  # the bug: a raw error reaching the caller
                outcomes[f"raw {type(exc).__name__}"] += 1

    async with await RateLimiter.from_url(redis_server.url, lease_seconds=5) as limiter:
        clients = [asyncio.create_task(client(limiter, i)) for i in range(60)]
        try:
            await served.wait()
            redis_server.kill()
            await failing.wait()
        finally:
            stop.set()
            await asyncio.gather(*clients)
    assert set(outcomes) == {"ok", "storage error"}, outcomes
    assert limiter.storage_outages == 1
    assert len(storage_records(caplog, logging.WARNING)) == 1


async def test_a_redis_that_stops_answering_times_out(redis_server: RedisServer) -> None:
    """A hung Redis (accepting, never replying) must not hold requests forever."""
    url = redis_server.url + "?stream_timeout=0.5&connect_timeout=0.5"
    async with await RateLimiter.from_url(url) as limiter:
        checks = [(Subject("key", "k1"), Limits(requests_per_minute=5, concurrent_streams=1))]
        await (await limiter.admit(checks)).release()
        redis_server.pause()
        try:
            started = time.monotonic()
            with pytest.raises(RateLimitStorageError):
                await limiter.admit(checks)
            assert time.monotonic() - started < 10  # generous; without a timeout: forever
            assert not limiter.storage_healthy
        finally:
            redis_server.resume()
        assert await limiter.check_storage()
        await (await limiter.admit(checks)).release()


def test_calls_in_flight_across_a_change_do_not_flip_the_state(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A reply that was on its way when Redis died does not end the outage, and a failure
    of a call begun during the outage does not start another one after the recovery."""
    caplog.set_level(logging.INFO, logger="onebox.ratelimit")
    health = StorageHealth()
    before_outage = time.monotonic() - 1
    health.failed(ConnectionResetError("reset by peer"), time.monotonic())
    health.succeeded(before_outage)
    assert not health.healthy
    during_outage = time.monotonic()
    time.sleep(0.01)  # the recovery must come strictly later, even on a coarse clock
    health.succeeded(time.monotonic())
    assert health.healthy
    health.failed(ConnectionRefusedError("refused"), during_outage)
    assert health.healthy
    assert (health.outages, health.failures) == (1, 2)
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]
