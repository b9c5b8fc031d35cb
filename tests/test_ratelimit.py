"""Rate limits, token limits and quotas, concurrency slots and client IPs -- on the real
in-process memory storage and on the real Redis (shared by separate OS processes)."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import sys
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import coredis
import pytest

from onebox.ratelimit import (
    CONCURRENT_STREAMS,
    REQUESTS_PER_MINUTE,
    TOKENS_PER_DAY,
    TOKENS_PER_MINUTE,
    TOKENS_PER_MONTH,
    Limits,
    LimitsConfig,
    RateLimiter,
    RateLimitExceeded,
    RateLimitStorageError,
    Subject,
    client_ip,
    parse_storage_url,
)

REDIS_URL = os.environ.get("ONEBOX_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SRC = str(Path(__file__).resolve().parents[1] / "src")

MakeLimiter = Callable[..., Awaitable[RateLimiter]]


def _redis_problem() -> str | None:
    parts = urlsplit(REDIS_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 2) as s:
            s.sendall(b"PING\r\n")
            reply = s.recv(64)
    except OSError as exc:
        return str(exc)
    return None if reply.startswith((b"+PONG", b"-NOAUTH")) else f"unexpected reply {reply!r}"


def require_redis() -> None:
    problem = _redis_problem()
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"Redis not reachable at {REDIS_URL} (required when CI is set): {problem}")
    pytest.skip(f"Redis not reachable at {REDIS_URL}: {problem} (set ONEBOX_TEST_REDIS_URL)")


async def _delete_prefix(prefix: str) -> None:
    client = coredis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(keys)
    finally:
        client.connection_pool.disconnect()


@pytest.fixture(params=["memory", "redis"])
def storage_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    require_redis()
    return REDIS_URL


@pytest.fixture
def prefix() -> str:
    return f"onebox-test:{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def make_limiter(storage_url: str, prefix: str) -> AsyncIterator[MakeLimiter]:
    """Limiters on the parametrized storage under a key prefix unique to this test; the
    limiters are closed and (for Redis) every key under the prefix deleted afterwards."""
    made: list[RateLimiter] = []

    async def make(**options: float) -> RateLimiter:
        limiter = await RateLimiter.from_url(storage_url, key_prefix=prefix, **options)
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.aclose()
    if storage_url != "memory://":
        await _delete_prefix(prefix)


@pytest.fixture
async def redis_prefix(prefix: str) -> AsyncIterator[str]:
    require_redis()
    yield prefix
    await _delete_prefix(prefix)


def key(name: str = "k1") -> Subject:
    return Subject("key", name)


async def refused(limiter: RateLimiter, checks: list[tuple[Subject, Limits]], **kw: int) -> str:
    """The limit that refuses ``checks`` (the test fails if they are admitted)."""
    with pytest.raises(RateLimitExceeded) as info:
        await limiter.admit(checks, **kw)
    assert info.value.retry_after > 0
    return info.value.limit_name


# -- requests per minute -------------------------------------------------------------------


@pytest.mark.anyio
async def test_requests_per_minute_burst(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter()
    checks = [(key(), Limits(requests_per_minute=5))]
    for _ in range(5):
        await (await limiter.admit(checks)).release()
    with pytest.raises(RateLimitExceeded) as info:
        await limiter.admit(checks)
    exc = info.value
    assert exc.limit_name == REQUESTS_PER_MINUTE
    assert exc.subject == key()
    assert 0 < exc.retry_after <= 60
    assert exc.retry_after > 55  # the oldest request is only milliseconds old
    assert exc.message.startswith("API key rate limit of 5 requests/min exceeded; retry in ")
    assert str(exc) == exc.message
    assert exc.retry_after_header == "60"
    assert (await limiter.usage(key())).requests_this_minute == 5
    # Another subject is counted separately.
    await (await limiter.admit([(key("k2"), Limits(requests_per_minute=5))])).release()


@pytest.mark.anyio
async def test_hundred_concurrent_clients_one_key(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter()
    checks = [(key(), Limits(requests_per_minute=20))]

    async def client() -> int:
        try:
            admission = await limiter.admit(checks)
        except RateLimitExceeded:
            return 0
        await admission.release()
        return 1

    admitted = sum(await asyncio.gather(*(client() for _ in range(100))))
    assert abs(admitted - 20) <= 1
    assert (await limiter.usage(key())).requests_this_minute == admitted


BURST_CHILD = r"""
import asyncio, sys
from onebox.ratelimit import Limits, RateLimiter, RateLimitExceeded, Subject

async def main(url, prefix, name, clients, limit):
    limiter = await RateLimiter.from_url(url, key_prefix=prefix)
    checks = [(Subject("key", name), Limits(requests_per_minute=limit))]
    await limiter.usage(checks[0][0])  # connect before the starting gun
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    async def client():
        try:
            admission = await limiter.admit(checks)
        except RateLimitExceeded:
            return 0
        await admission.release()
        return 1

    admitted = sum(await asyncio.gather(*(client() for _ in range(clients))))
    print(f"admitted {admitted}", flush=True)
    await limiter.aclose()

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
"""


async def _spawn(code: str, *args: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )


async def _line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    return (await asyncio.wait_for(process.stdout.readline(), 60)).decode().strip()


@pytest.mark.anyio
async def test_hundred_clients_in_two_processes_share_redis(redis_prefix: str) -> None:
    """Two OS processes, 50 concurrent clients each, one key with 20 requests/min in Redis."""
    children = [
        await _spawn(BURST_CHILD, REDIS_URL, redis_prefix, "shared", "50", "20") for _ in range(2)
    ]
    try:
        for child in children:
            assert await _line(child) == "ready"
        for child in children:  # fire both bursts at once
            assert child.stdin is not None
            child.stdin.write(b"go\n")
            await child.stdin.drain()
        results = [await _line(child) for child in children]
        for child in children:
            assert await asyncio.wait_for(child.wait(), 60) == 0
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
    counts = [int(line.removeprefix("admitted ")) for line in results]
    assert abs(sum(counts) - 20) <= 1, counts
    async with await RateLimiter.from_url(REDIS_URL, key_prefix=redis_prefix) as limiter:
        assert (await limiter.usage(key("shared"))).requests_this_minute == sum(counts)


# -- tokens per minute, day and month ------------------------------------------------------


@pytest.mark.anyio
async def test_tokens_per_minute(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter()
    checks = [(key(), Limits(tokens_per_minute=100))]
    await (await limiter.admit(checks, estimated_tokens=10)).release(60)
    # The estimate counts: 60 used + 50 expected > 100.
    with pytest.raises(RateLimitExceeded) as info:
        await limiter.admit(checks, estimated_tokens=50)
    assert info.value.limit_name == TOKENS_PER_MINUTE
    assert 0 < info.value.retry_after <= 120
    assert "token rate limit of 100 tokens/min" in info.value.message
    async with await limiter.admit(checks, estimated_tokens=40) as admission:
        admission.tokens_used = 40
    # The window is used up: even a request without an estimate waits.
    assert await refused(limiter, checks) == TOKENS_PER_MINUTE
    assert 99 <= (await limiter.usage(key())).tokens_this_minute <= 100


@pytest.mark.anyio
async def test_request_larger_than_token_limit_waits_for_an_empty_window(
    make_limiter: MakeLimiter,
) -> None:
    limiter = await make_limiter()
    checks = [(key(), Limits(tokens_per_minute=100))]
    await (await limiter.admit(checks, estimated_tokens=500)).release(150)
    assert await refused(limiter, checks, estimated_tokens=500) == TOKENS_PER_MINUTE


def _seconds_until(moment: datetime) -> float:
    return (moment - datetime.now(UTC)).total_seconds()


@pytest.mark.anyio
async def test_daily_quota(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter()
    checks = [(key(), Limits(tokens_per_day=1000, tokens_per_minute=10_000))]
    await (await limiter.admit(checks)).release(900)
    with pytest.raises(RateLimitExceeded) as info:
        await limiter.admit(checks, estimated_tokens=200)
    assert info.value.limit_name == TOKENS_PER_DAY
    now = datetime.now(UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    assert abs(info.value.retry_after - _seconds_until(midnight)) < 5
    assert "daily token quota of 1000 tokens" in info.value.message
    await (await limiter.admit(checks, estimated_tokens=100)).release(100)
    assert await refused(limiter, checks) == TOKENS_PER_DAY
    usage = await limiter.usage(key())
    assert usage.tokens_today == 1000
    assert usage.tokens_this_month == 1000


@pytest.mark.anyio
async def test_monthly_quota(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter()
    checks = [(key(), Limits(tokens_per_month=5000, tokens_per_day=100_000))]
    async with await limiter.admit(checks, estimated_tokens=4000) as admission:
        admission.tokens_used = 4500
    with pytest.raises(RateLimitExceeded) as info:
        await limiter.admit(checks, estimated_tokens=600)
    assert info.value.limit_name == TOKENS_PER_MONTH
    now = datetime.now(UTC)
    first = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    assert abs(info.value.retry_after - _seconds_until(first)) < 5
    await (await limiter.admit(checks, estimated_tokens=500)).release(600)
    assert await refused(limiter, checks) == TOKENS_PER_MONTH
    assert (await limiter.usage(key())).tokens_this_month == 5100


# -- concurrency ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_concurrent_streams(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter()
    checks = [(key(), Limits(concurrent_streams=2))]
    first = await limiter.admit(checks)
    second = await limiter.admit(checks)
    with pytest.raises(RateLimitExceeded) as info:
        await limiter.admit(checks)
    assert info.value.limit_name == CONCURRENT_STREAMS
    assert info.value.retry_after > 0
    assert (await limiter.usage(key())).concurrent_streams == 2
    await first.release()
    await first.release()  # idempotent: frees one slot, not two
    assert first.released
    third = await limiter.admit(checks)
    assert await refused(limiter, checks) == CONCURRENT_STREAMS
    for admission in (second, third):
        await admission.release()
    assert (await limiter.usage(key())).concurrent_streams == 0
    async with await limiter.admit(checks), await limiter.admit(checks):
        assert await refused(limiter, checks) == CONCURRENT_STREAMS
    await (await limiter.admit(checks)).release()


@pytest.mark.anyio
async def test_lease_is_renewed_while_streaming(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter(lease_seconds=1.0)
    checks = [(key(), Limits(concurrent_streams=1))]
    async with await limiter.admit(checks):
        for _ in range(10):  # two and a half leases long
            await asyncio.sleep(0.25)
            assert await refused(limiter, checks) == CONCURRENT_STREAMS
    await (await limiter.admit(checks)).release()


@pytest.mark.anyio
async def test_explicit_refresh(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter(lease_seconds=1.0, refresh_interval=3600)
    checks = [(key(), Limits(concurrent_streams=1))]
    holder = await limiter.admit(checks)
    for _ in range(5):
        await asyncio.sleep(0.3)
        assert await holder.refresh()
    assert await refused(limiter, checks) == CONCURRENT_STREAMS
    await asyncio.sleep(1.3)  # no refresh: the lease lapses and the slot is taken
    taker = await limiter.admit(checks)
    assert not await holder.refresh()
    await holder.release()  # does not free the taker's slot
    assert await refused(limiter, checks) == CONCURRENT_STREAMS
    await taker.release()


@pytest.mark.anyio
async def test_release_racing_a_lease_renewal_frees_the_slot(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter()
    checks = [(key(), Limits(concurrent_streams=1))]
    for _ in range(20):
        admission = await limiter.admit(checks)
        await asyncio.gather(admission.refresh(), admission.release(), admission.refresh())
        assert (await limiter.usage(key())).concurrent_streams == 0


@pytest.mark.anyio
async def test_abandoned_admission_is_reclaimed(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter(lease_seconds=1.0)
    checks = [(key(), Limits(concurrent_streams=1))]
    gc.collect()
    admission = await limiter.admit(checks)
    alive = weakref.ref(admission)
    del admission  # never released; its lease refresher holds only a weak reference
    assert alive() is None
    assert await refused(limiter, checks) == CONCURRENT_STREAMS
    await asyncio.sleep(1.3)
    await (await limiter.admit(checks)).release()


CRASH_CHILD = r"""
import asyncio, os, signal, sys
from onebox.ratelimit import Limits, RateLimiter, Subject

async def main(url, prefix, name):
    limiter = await RateLimiter.from_url(url, key_prefix=prefix, lease_seconds=2.0)
    await limiter.admit([(Subject("key", name), Limits(concurrent_streams=1))])
    print("holding", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main(*sys.argv[1:4]))
"""


@pytest.mark.anyio
async def test_crashed_process_slot_is_reclaimed(redis_prefix: str) -> None:
    child = await _spawn(CRASH_CHILD, REDIS_URL, redis_prefix, "crash")
    assert await _line(child) == "holding"
    assert await asyncio.wait_for(child.wait(), 30) == -signal.SIGKILL
    checks = [(key("crash"), Limits(concurrent_streams=1))]
    async with await RateLimiter.from_url(REDIS_URL, key_prefix=redis_prefix) as limiter:
        assert await refused(limiter, checks) == CONCURRENT_STREAMS
        deadline = time.monotonic() + 5
        while True:
            try:
                admission = await limiter.admit(checks)
                break
            except RateLimitExceeded:
                assert time.monotonic() < deadline, "crashed holder's slot never reclaimed"
                await asyncio.sleep(0.1)
        await admission.release()


# -- several subjects ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_key_user_and_ip_together(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter()
    user, ip = Subject("user", "u1"), Subject("ip", "203.0.113.9")
    checks = [
        (key(), Limits(requests_per_minute=100, concurrent_streams=1)),
        (user, Limits(concurrent_streams=5, tokens_per_day=10_000)),
        (ip, Limits(requests_per_minute=1)),
    ]
    await (await limiter.admit(checks)).release(30)
    # The IP is out of requests: nothing else is taken.
    with pytest.raises(RateLimitExceeded) as info:
        await limiter.admit(checks)
    assert info.value.subject == ip
    assert info.value.message.startswith("IP address rate limit of 1 requests/min")
    for subject in (key(), user):
        usage = await limiter.usage(subject)
        assert usage.concurrent_streams == 0
        assert usage.tokens_today == 30
    assert (await limiter.usage(key())).requests_this_minute == 1

    # The key's single stream is busy: the user's slot is given back.
    busy = await limiter.admit(checks[:1])
    with pytest.raises(RateLimitExceeded) as info:
        await limiter.admit(checks[:2])
    assert (info.value.subject, info.value.limit_name) == (key(), CONCURRENT_STREAMS)
    assert (await limiter.usage(user)).concurrent_streams == 0
    await busy.release()

    # Racing admissions that pass the checks together: the loser gives its slots back.
    racing = [(key("k2"), Limits(concurrent_streams=5)), (ip, Limits(requests_per_minute=2))]
    results = await asyncio.gather(
        *(limiter.admit(racing) for _ in range(4)), return_exceptions=True
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1  # the IP had one request left this minute
    assert all(isinstance(r, RateLimitExceeded) for r in results if r not in winners)
    assert (await limiter.usage(key("k2"))).concurrent_streams == 1
    for winner in winners:
        await winner.release()


@pytest.mark.anyio
async def test_binding_limit_is_the_longest_wait(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter()
    checks = [
        (key(), Limits(requests_per_minute=1)),
        (Subject("user", "u1"), Limits(tokens_per_day=10)),
    ]
    await (await limiter.admit(checks)).release(10)
    with pytest.raises(RateLimitExceeded) as info:
        await limiter.admit(checks)
    assert info.value.limit_name == TOKENS_PER_DAY  # hours, not seconds


@pytest.mark.anyio
async def test_bad_admissions(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter()
    with pytest.raises(ValueError, match="negative"):
        await limiter.admit([], estimated_tokens=-1)
    with pytest.raises(ValueError, match="twice"):
        await limiter.admit([(key(), Limits()), (key(), Limits(requests_per_minute=1))])
    async with await limiter.admit([]) as nothing:  # no limits: always admitted
        assert await nothing.refresh()


# -- configuration -------------------------------------------------------------------------


def test_storage_urls() -> None:
    assert parse_storage_url("memory://").limits_url == "async+memory://"
    redis = parse_storage_url("redis://:pw@db.internal:6380/2")
    assert (redis.kind, redis.limits_url) == ("redis", "async+redis://:pw@db.internal:6380/2")
    assert redis.redis_url == "redis://:pw@db.internal:6380/2"
    assert parse_storage_url("rediss://h:6379/0").limits_url == "async+rediss://h:6379/0"
    unix = parse_storage_url("redis+unix:///run/redis.sock?db=1")
    assert unix.redis_url == "unix:///run/redis.sock?db=1"
    assert parse_storage_url("async+redis://h/0").limits_url == "async+redis://h/0"
    with pytest.raises(ValueError, match="unsupported"):
        parse_storage_url("memcached://h:11211")


@pytest.mark.anyio
async def test_unreachable_redis_fails_at_startup() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(RateLimitStorageError, match="not reachable"):
        await RateLimiter.from_url(f"redis://:secret@127.0.0.1:{port}/0")


def test_limits_and_config() -> None:
    with pytest.raises(ValueError, match="positive"):
        Limits(requests_per_minute=0)
    with pytest.raises(ValueError, match="non-empty"):
        Subject("key", "")
    assert Limits().is_unlimited
    config = LimitsConfig(per_key=Limits(requests_per_minute=60), per_ip=Limits(tokens_per_day=5))
    checks = config.checks(key_id="k", user_id="u", ip="198.51.100.1")
    assert [subject for subject, _ in checks] == [
        Subject("key", "k"),
        Subject("ip", "198.51.100.1"),
    ]
    custom = Limits(concurrent_streams=3)
    assert config.checks(key_id="k", key_limits=custom) == [(Subject("key", "k"), custom)]
    exc = RateLimitExceeded(Subject("user", "u"), TOKENS_PER_MONTH, 10, 3 * 86_400)
    assert exc.message == "User monthly token quota of 10 tokens exceeded; retry in 3 days"


# -- client IP -----------------------------------------------------------------------------

PROXIES = ["10.0.0.0/8", "192.168.1.1", "fd00::/8"]


def xff(value: str) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"onebox"), (b"x-forwarded-for", value.encode())]


def test_client_ip_untrusted_peer_ignores_forwarded_headers() -> None:
    spoofed = xff("1.1.1.1")
    assert client_ip("203.0.113.7", spoofed, PROXIES) == "203.0.113.7"
    assert client_ip("203.0.113.7", spoofed, []) == "203.0.113.7"
    forwarded = [(b"forwarded", b"for=1.1.1.1")]
    assert client_ip("203.0.113.7", forwarded, PROXIES, header="forwarded") == "203.0.113.7"


def test_client_ip_trusted_peer_and_cidr() -> None:
    assert client_ip("10.1.2.3", xff("198.51.100.4"), PROXIES) == "198.51.100.4"
    assert client_ip("192.168.1.1", xff("198.51.100.4"), PROXIES) == "198.51.100.4"
    assert client_ip("192.168.1.2", xff("198.51.100.4"), PROXIES) == "192.168.1.2"
    assert client_ip("fd00::5", xff("2001:db8::1"), PROXIES) == "2001:db8::1"
    assert client_ip("::ffff:10.0.0.1", xff("198.51.100.4"), PROXIES) == "198.51.100.4"
    assert client_ip("10.0.0.1", [], PROXIES) == "10.0.0.1"  # no header: the peer
    headers = {"X-Forwarded-For": "198.51.100.4"}  # a mapping works too, any case
    assert client_ip("10.0.0.1", headers, PROXIES) == "198.51.100.4"


def test_client_ip_spoofed_prefix_and_multi_hop() -> None:
    # The client sent "6.6.6.6" itself; the edge proxy appended the real address.
    assert client_ip("10.0.0.2", xff("6.6.6.6, 198.51.100.4"), PROXIES) == "198.51.100.4"
    # Two trusted hops (edge, then an internal balancer) are skipped from the right.
    chain = "6.6.6.6, 198.51.100.4, 10.9.9.9, 192.168.1.1"
    assert client_ip("10.0.0.2", xff(chain), PROXIES) == "198.51.100.4"
    # Repeated header lines are one list, in order.
    lines = [(b"x-forwarded-for", b"6.6.6.6"), (b"x-forwarded-for", b"198.51.100.4, 10.0.0.9")]
    assert client_ip("10.0.0.2", lines, PROXIES) == "198.51.100.4"
    # Every hop trusted: the one furthest out.
    assert client_ip("10.0.0.2", xff("10.0.0.7, 10.0.0.8"), PROXIES) == "10.0.0.7"
    # Ports and brackets are tolerated.
    assert client_ip("10.0.0.2", xff("198.51.100.4:5123"), PROXIES) == "198.51.100.4"
    assert client_ip("10.0.0.2", xff("[2001:db8::2]:443"), PROXIES) == "2001:db8::2"


def test_client_ip_forwarded_header() -> None:
    value = b'for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.3;by=10.0.0.1'
    headers = [(b"forwarded", value)]
    assert client_ip("10.0.0.1", headers, PROXIES, header="forwarded") == "2001:db8:cafe::17"
    # Only the configured header is honoured.
    assert client_ip("10.0.0.1", headers, PROXIES) == "10.0.0.1"


def test_client_ip_garbage() -> None:
    # A malformed hop next to the proxy: the proxy is as far as can be vouched for.
    assert client_ip("10.0.0.2", xff("198.51.100.4, garbage"), PROXIES) == "10.0.0.2"
    assert client_ip("10.0.0.2", xff("unknown"), PROXIES) == "10.0.0.2"
    assert client_ip("10.0.0.2", xff(" , ,"), PROXIES) == "10.0.0.2"
    assert client_ip("10.0.0.2", xff("999.1.1.1"), PROXIES) == "10.0.0.2"
    assert client_ip("10.0.0.2", xff("[::1"), PROXIES) == "10.0.0.2"
    # Client-written garbage left of the real address does not matter.
    assert client_ip("10.0.0.2", xff("<script>, 198.51.100.4"), PROXIES) == "198.51.100.4"
    forwarded = [(b"forwarded", b"proto=https;by=10.0.0.1")]  # no for=
    assert client_ip("10.0.0.2", forwarded, PROXIES, header="forwarded") == "10.0.0.2"
    assert client_ip("testclient", xff("1.1.1.1"), PROXIES) == "testclient"
    assert client_ip(None, xff("1.1.1.1"), PROXIES) == ""
    with pytest.raises(ValueError, match="invalid trusted proxy"):
        client_ip("10.0.0.2", [], ["10.0.0.0/33"])
