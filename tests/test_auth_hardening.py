"""Sign-in and API-key hardening: lockouts that reveal nothing and that strangers cannot
trigger, a bounded key cache that never serves an expired key, CSRF on logout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from onebox.core.db import utcnow
from onebox.core.ttl_cache import TTLCache
from onebox.users.auth import Authenticator
from onebox.users.models import ApiKey
from tests.accounts import PASSWORD, make_account, sign_in
from tests.conftest import AppUnderTest

pytestmark = pytest.mark.anyio


def state(api: AppUnderTest):  # type: ignore[no-untyped-def]
    return api.app.state.onebox


@pytest.fixture
async def clients(api: AppUnderTest) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """Clients from distinct addresses: ``owner``, ``stranger``, ``prober``."""
    made: dict[str, httpx.AsyncClient] = {}
    for name, address in (
        ("owner", "192.0.2.10"),
        ("stranger", "198.51.100.7"),
        ("prober", "203.0.113.20"),
    ):
        transport = httpx.ASGITransport(app=api.app, client=(address, 40000))
        made[name] = httpx.AsyncClient(transport=transport, base_url="http://onebox.test")
    try:
        yield made
    finally:
        for client in made.values():
            await client.aclose()


async def _login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/api/auth/login", json={"email": email, "password": password})


async def test_lockout_looks_the_same_for_real_and_unknown_emails(
    api: AppUnderTest, clients: dict[str, httpx.AsyncClient]
) -> None:
    await make_account(state(api), "real@example.com")
    answers = {}
    for email, client in (
        ("real@example.com", clients["stranger"]),
        ("ghost@example.com", clients["prober"]),
    ):
        failures = [await _login(client, email, "wrong password!") for _ in range(5)]
        assert [r.status_code for r in failures] == [401] * 5
        assert {r.json()["error"]["message"] for r in failures} == {"Incorrect email or password"}
        answers[email] = await _login(client, email, "wrong password!")
    real, ghost = answers["real@example.com"], answers["ghost@example.com"]
    assert real.status_code == ghost.status_code == 401
    assert real.json() == ghost.json()
    assert real.json()["error"]["code"] == "account_locked"
    assert set(real.headers) == set(ghost.headers)


async def test_a_stranger_cannot_lock_the_owner_out(
    api: AppUnderTest, clients: dict[str, httpx.AsyncClient]
) -> None:
    await make_account(state(api), "owner@example.com")
    for _ in range(6):
        await _login(clients["stranger"], "owner@example.com", "wrong password!")
    # The stranger's source is locked, even with the right password...
    locked = await _login(clients["stranger"], "owner@example.com", PASSWORD)
    assert locked.json()["error"]["code"] == "account_locked"
    # ...while the owner, from elsewhere, signs in as usual.
    assert (await _login(clients["owner"], "owner@example.com", PASSWORD)).status_code == 200
    # And the owner's own failures are counted apart from the stranger's.
    for _ in range(4):
        await _login(clients["owner"], "owner@example.com", "wrong password!")
    assert (await _login(clients["owner"], "owner@example.com", PASSWORD)).status_code == 200


async def test_logout_needs_the_csrf_token(api: AppUnderTest) -> None:
    await make_account(state(api), "csrf@example.com")
    signed = await sign_in(api.client, "csrf@example.com")
    forged = await api.client.post("/api/auth/logout")
    assert forged.status_code == 403
    assert forged.json()["error"]["code"] == "csrf_failed"
    assert "set-cookie" not in forged.headers
    assert (await api.client.get("/api/auth/me")).json()["mode"] == "session"
    wrong = await api.client.post("/api/auth/logout", headers={"x-csrf-token": "guess"})
    assert wrong.status_code == 403
    assert (await api.client.post("/api/auth/logout", headers=signed.headers())).status_code == 204
    assert (await api.client.get("/api/auth/me")).status_code == 401


async def _new_key(api: AppUnderTest, email: str) -> tuple[str, str]:
    await make_account(state(api), email)
    signed = await sign_in(api.client, email)
    created = await api.client.post("/api/keys", json={}, headers=signed.headers())
    assert created.status_code == 201, created.text
    return created.json()["key"]["id"], created.json()["secret"]


async def _models_status(api: AppUnderTest, secret: str) -> int:
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://onebox.test") as bare:
        response = await bare.get("/v1/models", headers={"authorization": f"Bearer {secret}"})
    return response.status_code


async def test_a_cached_key_stops_working_when_it_expires(api: AppUnderTest) -> None:
    app_state = state(api)
    # A long cache lifetime: only the per-request expiry check can refuse the key.
    app_state.auth = Authenticator(
        app_state.settings, app_state.sessionmaker, key_cache_seconds=300
    )
    await make_account(app_state, "exp@example.com")
    signed = await sign_in(api.client, "exp@example.com")
    expires = utcnow() + timedelta(seconds=3)
    created = await api.client.post(
        "/api/keys", json={"expires_at": expires.isoformat()}, headers=signed.headers()
    )
    secret = created.json()["secret"]
    assert await _models_status(api, secret) == 200  # now cached
    await asyncio.sleep(max((expires - utcnow()).total_seconds(), 0) + 0.1)
    assert await _models_status(api, secret) == 401


async def test_revocation_by_another_replica_applies_within_the_cache_lifetime(
    api: AppUnderTest,
) -> None:
    app_state = state(api)
    app_state.auth = Authenticator(
        app_state.settings, app_state.sessionmaker, key_cache_seconds=0.5
    )
    key_id, secret = await _new_key(api, "rev@example.com")
    assert await _models_status(api, secret) == 200
    async with app_state.sessionmaker() as session:  # another process revokes it
        await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(revoked_at=utcnow()))
        await session.commit()
    await asyncio.sleep(0.6)
    assert await _models_status(api, secret) == 401


async def test_unknown_keys_cannot_grow_the_cache(api: AppUnderTest) -> None:
    app_state = state(api)
    auth = Authenticator(
        app_state.settings, app_state.sessionmaker,
        key_cache_seconds=300, key_cache_entries=8, miss_cache_entries=8,
    )  # fmt: skip
    app_state.auth = auth
    key_id, secret = await _new_key(api, "flood@example.com")
    assert await _models_status(api, secret) == 200
    for n in range(60):
        assert await _models_status(api, f"obx_unknown{n:04d}") == 401
    assert auth.cached_key_count() <= 16
    # The flood did not push the real key out: revoked behind the cache's back (and within
    # its lifetime) it is still served from the cache, without a lookup.
    async with app_state.sessionmaker() as session:
        await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(revoked_at=utcnow()))
        await session.commit()
    assert await _models_status(api, secret) == 200


def test_ttl_cache_is_bounded_least_recently_used_first_and_expires() -> None:
    now = [0.0]
    cache: TTLCache[str, int] = TTLCache(3, ttl=10, clock=lambda: now[0])
    for n, key in enumerate("abc"):
        cache.put(key, n)
    assert cache.get("a") == 0  # a is now the most recently used
    cache.put("d", 3)
    assert len(cache) == 3
    assert cache.get("b") is None  # the least recently used went
    assert [cache.get(k) for k in "acd"] == [0, 2, 3]
    now[0] = 10.0
    assert cache.get("a") is None
    assert len(cache) == 2
    cache.pop("c")
    cache.pop("missing")
    assert [key for key, _ in cache.items()] == ["d"]
    with pytest.raises(ValueError, match="max_entries"):
        TTLCache(0, ttl=1)
