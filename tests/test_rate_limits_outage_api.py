"""A Redis outage as clients meet it: chat follows ONEBOX_RATE_LIMIT_FAILURE_POLICY and sign-in
ONEBOX_LOGIN_THROTTLE_FAILURE_POLICY (503 + Retry-After when closed, unthrottled when open),
never a 500; a stream in flight when Redis dies finishes; the outage is logged once and shown
by /readyz; after Redis restarts, limits apply again. The app's own redis-server is killed."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from onebox.app import create_app
from onebox.llm.base import ChatRequest, StreamChunk
from onebox.llm.fake import FakeProvider
from onebox.state import AppState
from tests.accounts import make_account, sign_in
from tests.conftest import api_settings
from tests.redis_server import RedisServer, redis_server

__all__ = ["redis_server"]  # the fixture

pytestmark = pytest.mark.anyio

HEALTH_LOGGER = "onebox.ratelimit.storage_health"
HELD = "hold this stream open"


@dataclass
class HeldStream(FakeProvider):
    """Echoes; a request saying HELD stops after its first word until ``release`` is set."""

    started: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def stream_chat(self, request: ChatRequest) -> AsyncGenerator[StreamChunk]:
        held = request.messages[-1].content == HELD
        async for chunk in super().stream_chat(request):
            yield chunk
            if held and not self.started.is_set():
                self.started.set()
                await self.release.wait()


@asynccontextmanager
async def serving(
    tmp_path: Path, provider: FakeProvider
) -> AsyncIterator[tuple[httpx.AsyncClient, AppState]]:
    settings = api_settings(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'onebox.db'}",
        user_requests_per_minute=3, user_concurrent_streams=2, login_attempts_per_minute=3,
    )  # fmt: skip
    app = create_app(settings, provider=provider)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://onebox.test") as client:
            yield client, app.state.onebox


async def eventually(condition: Callable[[], bool]) -> None:
    for _ in range(400):  # 20 s
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


def chat(content: str, *, stream: bool = False) -> dict[str, object]:
    return {"model": "fake-echo", "messages": [{"role": "user", "content": content}],
            "stream": stream}  # fmt: skip


async def logins(client: httpx.AsyncClient, tries: int) -> list[httpx.Response]:
    """Failed sign-ins, each for a different unknown address (no account lockout involved)."""
    return [
        await client.post(
            "/api/auth/login", json={"email": f"nobody{i}@example.com", "password": "x" * 12}
        )
        for i in range(tries)
    ]


def warnings(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [
        (r.name, r.levelname)
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith("onebox")
    ]


def storage_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    error = response.json()["error"]
    assert (error["type"], error["code"]) == (
        "service_unavailable",
        "rate_limit_storage_unavailable",
    )


@pytest.mark.parametrize(
    ("env", "chat_policy", "login_policy"),
    [
        pytest.param({}, "fail_open", "fail_closed", id="defaults"),
        pytest.param(
            {
                "ONEBOX_RATE_LIMIT_FAILURE_POLICY": "fail_closed",
                "ONEBOX_LOGIN_THROTTLE_FAILURE_POLICY": "fail_open",
            },
            "fail_closed",
            "fail_open",
            id="inverted",
        ),
    ],
)
async def test_redis_outage_and_recovery(
    env: dict[str, str],
    chat_policy: str,
    login_policy: str,
    redis_server: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("ONEBOX_RATE_LIMIT_STORAGE", redis_server.url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.INFO, logger="onebox")
    provider = HeldStream(model_name="fake-echo", context_size=4096)
    async with serving(tmp_path, provider) as (client, state):
        assert (state.limits.request_policy, state.limits.login_policy) == (
            chat_policy,
            login_policy,
        )
        limiter = state.limits.limiter
        limiter.refresh_interval = 0.1  # renew the in-flight stream's lease during the outage
        await make_account(state, "user@example.com")
        signed = await sign_in(client, "user@example.com")
        secret = (await client.post("/api/keys", json={}, headers=signed.headers())).json()
        key = {"authorization": f"Bearer {secret['secret']}"}

        in_flight = asyncio.create_task(
            client.post("/v1/chat/completions", json=chat(HELD, stream=True), headers=key)
        )
        await asyncio.wait_for(provider.started.wait(), 30)
        redis_server.kill()
        await eventually(lambda: limiter.storage_state().failures >= 2)  # renewals failed

        outage = [
            await client.post("/v1/chat/completions", json=chat(f"n{i}"), headers=key)
            for i in range(4)  # one more than the 2 the minute has left
        ]
        if chat_policy == "fail_open":
            assert [r.status_code for r in outage] == [200] * 4
        else:
            for response in outage:
                storage_unavailable(response)
        attempts = await logins(client, 4)  # the sign-in above took 1 of 3
        if login_policy == "fail_closed":
            for response in attempts:
                storage_unavailable(response)
        else:
            assert [r.status_code for r in attempts] == [401] * 4

        ready = await client.get("/readyz")
        assert ready.status_code == 200  # degraded, still serving: see health/routes.py
        assert ready.json()["status"] == "ready"
        detail = ready.json()["rate_limit_storage"]
        assert (detail["status"], detail["outages"]) == ("degraded", 1)
        assert detail["down_since"]
        assert detail["failed_operations"] >= 4

        provider.release.set()
        streamed = await asyncio.wait_for(in_flight, 30)
        assert streamed.status_code == 200
        lines = [line[6:] for line in streamed.text.splitlines() if line.startswith("data: ")]
        assert lines[-1] == "[DONE]"
        chunks = [json.loads(line) for line in lines[:-1]]
        assert not [c for c in chunks if "error" in c]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        assert text == f"Echo: {HELD}"

        assert warnings(caplog) == [(HEALTH_LOGGER, "WARNING")], caplog.text
        assert not [r for r in caplog.records if r.exc_info]

        redis_server.start()  # empty: every count starts again
        ready = (await client.get("/readyz")).json()
        assert ready["rate_limit_storage"]["status"] == "ok"
        assert ready["rate_limit_storage"]["down_since"] is None
        recovered = [r for r in caplog.records if r.name == HEALTH_LOGGER and r.levelname == "INFO"]
        assert len(recovered) == 1
        assert "recovered" in recovered[0].getMessage()

        statuses = [
            (await client.post("/v1/chat/completions", json=chat(f"m{i}"), headers=key)).status_code
            for i in range(4)
        ]
        assert statuses == [200, 200, 200, 429]
        assert [r.status_code for r in await logins(client, 4)] == [401, 401, 401, 429]
        assert limiter.storage_outages == 1
        assert warnings(caplog) == [(HEALTH_LOGGER, "WARNING")], caplog.text
