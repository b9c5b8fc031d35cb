"""Rate limits as clients meet them: 429 + Retry-After in OpenAI's shape, per key, per
login IP, and shared by two app processes through Redis."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import openai
import pytest

from onebox.testing.ready import wait_until_ready
from tests.accounts import PASSWORD, make_account, sign_in
from tests.conftest import AppUnderTest, free_port

REDIS_URL = os.environ.get("ONEBOX_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.mark.anyio
async def test_key_requests_per_minute(api: AppUnderTest) -> None:
    state = api.app.state.onebox
    await make_account(state, "limited@example.com")
    signed = await sign_in(api.client, "limited@example.com")
    secret = (
        await api.client.post(
            "/api/keys", json={"requests_per_minute": 3}, headers=signed.headers()
        )
    ).json()["secret"]
    transport = httpx.ASGITransport(app=api.app)
    body = {"model": "fake-echo", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(transport=transport, base_url="http://onebox.test") as bare:
        headers = {"authorization": f"Bearer {secret}"}
        statuses = [
            (await bare.post("/v1/chat/completions", json=body, headers=headers)).status_code
            for _ in range(3)
        ]
        assert statuses == [200, 200, 200]
        refused = await bare.post("/v1/chat/completions", json=body, headers=headers)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error"
    assert "3 requests/min" in error["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60


@pytest.mark.anyio
async def test_login_attempts_are_throttled_per_ip(api: AppUnderTest) -> None:
    await make_account(api.app.state.onebox, "victim@example.com")
    statuses = [
        (
            await api.client.post(
                "/api/auth/login", json={"email": "victim@example.com", "password": "guess " * 3}
            )
        ).status_code
        for _ in range(12)
    ]
    assert statuses[:10] == [401] * 10
    assert statuses[10:] == [429, 429]
    assert (
        await api.client.post(
            "/api/auth/login", json={"email": "victim@example.com", "password": PASSWORD}
        )
    ).status_code == 429


def _onebox(data_dir: Path, *args: str, stdin: str = "", **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "onebox", *args, "--data-dir", str(data_dir)],
        input=stdin, capture_output=True, text=True, timeout=120, check=True,
        env={**os.environ, "ONEBOX_LLM_PROVIDER": "fake", **env},
    )  # fmt: skip
    return result.stdout


def _redis_ping(url: str) -> None:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 2) as s:
        s.sendall(b"PING\r\n")
        if not s.recv(16).startswith(b"+PONG"):
            raise OSError("no PONG from Redis")


@pytest.fixture
def two_replicas(tmp_path: Path) -> Iterator[tuple[list[str], str]]:
    """Two `onebox serve` processes on one database, sharing counts through Redis."""
    try:
        _redis_ping(REDIS_URL)
    except OSError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    _onebox(tmp_path, "users", "create", "burst@example.com", "--admin", stdin=PASSWORD + "\n")
    secret = _onebox(tmp_path, "keys", "create", "--user", "burst@example.com", "--rpm", "20")
    # Qdrant Edge is single-process; replicas use a server (here: an in-memory local index).
    env = {**os.environ, "ONEBOX_LLM_PROVIDER": "fake", "ONEBOX_RATE_LIMIT_STORAGE": REDIS_URL,
           "ONEBOX_LOG_LEVEL": "WARNING", "ONEBOX_VECTOR_BACKEND": "qdrant",
           "ONEBOX_QDRANT_URL": ":memory:"}  # fmt: skip
    processes, urls = [], []
    for _ in range(2):
        port = free_port()
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "onebox",
                    "serve",
                    "--port",
                    str(port),
                    "--data-dir",
                    str(tmp_path),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url, process in zip(urls, processes, strict=True):
            assert wait_until_ready(url, timeout=180, alive=lambda p=process: p.poll() is None), (
                "no replica"
            )
        yield urls, secret.strip()
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=15)


def test_burst_on_one_key_is_shared_by_two_replicas(two_replicas: tuple[list[str], str]) -> None:
    urls, secret = two_replicas

    async def burst() -> list[int]:
        clients = [
            openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=secret, max_retries=0) for url in urls
        ]

        async def one(index: int) -> int:
            try:
                await clients[index % 2].chat.completions.create(
                    model="default", messages=[{"role": "user", "content": f"n{index}"}]
                )
                return 200
            except openai.RateLimitError:
                return 429

        try:
            return await asyncio.gather(*(one(i) for i in range(100)))
        finally:
            for client in clients:
                await client.close()

    statuses = asyncio.run(burst())
    assert set(statuses) <= {200, 429}
    assert abs(statuses.count(200) - 20) <= 1
