"""Who the client is comes from the socket and ONEBOX_TRUSTED_PROXIES, never from the server's
settings: per-IP login throttling and the audit log under a bare uvicorn (proxy headers on, as
by default), `onebox serve`, and single-user mode only for loopback peers."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import sqlite3
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from onebox.core.db import create_engine
from onebox.llm.fake import FakeProvider
from onebox.ratelimit import UNVERIFIED_CLIENT, server_rewritten_client
from onebox.testing.ready import wait_until_ready
from onebox.users.models import AuditEvent
from tests.conftest import AppUnderTest, api_settings, free_port, run_live_server

live_server_on = contextmanager(run_live_server)
GUESS = {"email": "nobody@example.com", "password": "guess guess guess"}


def _provider() -> FakeProvider:
    return FakeProvider(model_name="fake-echo", context_size=4096)


def _audited_login_ips(database_url: str) -> list[str]:
    async def read() -> list[str]:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as connection:
                rows = await connection.execute(
                    select(AuditEvent.ip).where(AuditEvent.action == "login")
                )
                return [ip for (ip,) in rows]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def _lan_address() -> str:
    """This machine's address on a non-loopback interface (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError as exc:
            pytest.skip(f"no non-loopback interface: {exc}")
        address = str(probe.getsockname()[0])
    if ipaddress.ip_address(address).is_loopback:
        pytest.skip("no non-loopback interface")
    return address


def test_forwarded_for_cannot_dodge_the_login_throttle_under_bare_uvicorn(
    tmp_path: Path, database_url: str
) -> None:
    """uvicorn's defaults believe X-Forwarded-For from 127.0.0.1; Onebox (no trusted proxies)
    must not: every attempt counts against, and is audited as, the real loopback peer."""
    settings = api_settings(tmp_path, database_url)
    with (
        live_server_on(settings, _provider()) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):

        def attempt(forged: str | None) -> int:
            headers = {"x-forwarded-for": forged} if forged else {}
            return client.post("/api/auth/login", json=GUESS, headers=headers).status_code

        before = [attempt(f"203.0.113.{n}") for n in range(1, 4)]
        before += [attempt(None) for _ in range(7)]
        assert before == [401] * 10  # one bucket of 10 attempts a minute
        after = [attempt(f"203.0.113.{n}") for n in range(10, 22)]
        after += [attempt(f"203.0.113.5:{port}") for port in (1000, 2000)]
        after += [attempt("127.0.0.9"), attempt("evil, 198.51.100.1")]
        assert after == [429] * 16
    assert _audited_login_ips(database_url) == ["127.0.0.1"] * 10


def test_onebox_serve_takes_no_client_address_from_headers(tmp_path: Path) -> None:
    """With uvicorn told to trust everyone (FORWARDED_ALLOW_IPS=*), `onebox serve` still
    records the real peer: it runs uvicorn without proxy headers."""
    lan = _lan_address()
    port = free_port()
    env = {**os.environ, "ONEBOX_LLM_PROVIDER": "fake", "ONEBOX_LOG_LEVEL": "WARNING",
           "FORWARDED_ALLOW_IPS": "*"}  # fmt: skip
    command = [sys.executable, "-m", "onebox", "serve", "--host", "0.0.0.0",
               "--port", str(port), "--data-dir", str(tmp_path)]  # fmt: skip
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        url = f"http://{lan}:{port}"
        assert wait_until_ready(url, timeout=120, alive=lambda: process.poll() is None)
        with httpx.Client(base_url=url, timeout=30) as client:
            denied = client.post(
                "/api/auth/login", json=GUESS, headers={"x-forwarded-for": "203.0.113.9"}
            )
            assert denied.status_code == 401
            assert client.get("/api/auth/config").json()["anonymous"] is False
    finally:
        process.terminate()
        process.wait(timeout=30)
    with sqlite3.connect(tmp_path / "onebox.db") as connection:
        rows = connection.execute("SELECT ip FROM audit_events WHERE action = 'login'")
        assert [ip for (ip,) in rows] == [lan]


def test_single_user_mode_needs_a_loopback_peer_whatever_the_bind(
    tmp_path: Path, database_url: str
) -> None:
    """`uvicorn --host 0.0.0.0` with no accounts: callers on the network get no anonymous
    admin, local ones keep single-user mode."""
    lan = _lan_address()
    settings = api_settings(tmp_path, database_url)
    with live_server_on(settings, _provider(), bind="0.0.0.0") as server:
        port = server.url.rsplit(":", 1)[1]
        with httpx.Client(base_url=f"http://{lan}:{port}", timeout=30) as remote:
            assert remote.get("/api/auth/config").json()["anonymous"] is False
            created = remote.post("/api/conversations", json={"title": "x"})
            assert created.status_code == 401
            assert created.json()["error"]["type"] == "authentication_error"
            assert remote.get("/v1/models").status_code == 401
            chat = {"model": "fake-echo", "messages": [{"role": "user", "content": "hi"}]}
            assert remote.post("/v1/chat/completions", json=chat).status_code == 401
        with httpx.Client(base_url=server.url, timeout=30) as local:
            assert local.get("/api/auth/config").json()["anonymous"] is True
            assert local.post("/api/conversations", json={"title": "x"}).status_code == 201
            relayed = {"x-forwarded-for": "127.0.0.1"}  # a local proxy relaying someone
            assert local.get("/api/conversations", headers=relayed).status_code == 401


@pytest.mark.anyio
async def test_anonymous_access_is_decided_per_peer(api: AppUnderTest) -> None:
    async def client_from(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=api.app, client=(address, 41000))
        return httpx.AsyncClient(transport=transport, base_url="http://onebox.test")

    for address in ("192.0.2.10", "2001:db8::7", "::ffff:192.0.2.10"):
        async with await client_from(address) as remote:
            assert (await remote.get("/api/auth/config")).json()["anonymous"] is False
            assert (await remote.post("/api/conversations", json={})).status_code == 401
            assert (await remote.get("/api/auth/me")).status_code == 401
            assert (await remote.get("/v1/models")).status_code == 401
    for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        async with await client_from(address) as local:
            assert (await local.get("/api/auth/config")).json()["anonymous"] is True
            assert (await local.post("/api/conversations", json={})).status_code == 201
            assert (await local.get("/v1/models")).status_code == 200


@pytest.mark.parametrize(
    ("client", "server", "forwarded", "expected"),
    [
        # No forwarding header: nothing the server could have rewritten from.
        (("203.0.113.5", 0), ("127.0.0.1", 8000), None, None),
        # Loopback socket: the peer is this machine, whatever the server reported.
        (("203.0.113.5", 0), ("127.0.0.1", 8000), "203.0.113.5", "127.0.0.1"),
        (("203.0.113.5", 4444), ("127.0.0.1", 8000), "203.0.113.5:4444", "127.0.0.1"),
        (("2001:db8::1", 0), ("::1", 8000), "[2001:db8::1]:80", "::1"),
        (("127.0.0.9", 0), ("127.0.0.1", 8000), "127.0.0.9", "127.0.0.1"),
        (("evil", 0), ("127.0.0.1", 8000), "evil:1", "127.0.0.1"),
        (("127.0.0.2", 50000), ("127.0.0.1", 8000), "203.0.113.5", None),  # a real local peer
        # Elsewhere: a peer the request's own header names cannot be told from a forgery.
        (("203.0.113.5", 0), ("192.0.2.2", 8000), "203.0.113.5", UNVERIFIED_CLIENT),
        (("192.0.2.50", 50000), ("192.0.2.2", 8000), "203.0.113.5", None),
    ],
)
def test_server_rewritten_clients_are_not_believed(
    client: tuple[str, int], server: tuple[str, int], forwarded: str | None, expected: str | None
) -> None:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    assert server_rewritten_client(client, server, headers) == expected
    if forwarded and ":" not in forwarded:
        standard = [(b"forwarded", f'for="{forwarded}"'.encode())]
        assert server_rewritten_client(client, server, standard) == expected
