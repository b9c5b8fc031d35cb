"""Two app processes (real ``onebox serve``) sharing one SQLite file and a Redis event log:
a reply started on A is seen running on B (409 there too), reattached on B with
``Last-Event-ID`` and stopped from B; A obeys and stores what it had."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from onebox.testing.fake_upstream import FakeUpstream, start_fake_upstream
from onebox.testing.ready import wait_until_ready
from tests.conftest import free_port
from tests.sse import parse_events
from tests.test_rate_limits_api import REDIS_URL, _redis_ping

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def redis_url() -> str:
    try:
        _redis_ping(REDIS_URL)
    except OSError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    return REDIS_URL


@pytest.fixture
def slow_upstream() -> Iterator[FakeUpstream]:
    with start_fake_upstream(tokens=600, tokens_per_second=30) as server:
        yield server


class App:
    """``onebox serve`` in its own data dir; the database and secret key are shared."""

    def __init__(self, name: str, tmp_path: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "onebox", "serve", "--port", str(self.port),
                 "--data-dir", str(tmp_path / name)],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        ready = wait_until_ready(self.url, timeout=180, alive=lambda: self.process.poll() is None)
        assert ready, self.log_path.read_text()[-3000:]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def two_apps(
    tmp_path: Path, redis_url: str, slow_upstream: FakeUpstream
) -> Iterator[tuple[App, App]]:
    models = tmp_path / "models.yaml"
    models.write_text(
        f"default_model: up\nmodels:\n  - name: up\n    provider: openai\n"
        f"    upstream_url: {slow_upstream.url}\n    upstream_model: fake\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ONEBOX_")},
        "ONEBOX_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}",
        "ONEBOX_SECRET_KEY": secrets.token_urlsafe(48),
        "ONEBOX_EVENTS_URL": redis_url,
        "ONEBOX_MODELS_FILE": str(models),
        "ONEBOX_EMBEDDING_PROVIDER": "openai",
        "ONEBOX_EMBEDDING_BASE_URL": slow_upstream.url,
        "ONEBOX_LOG_LEVEL": "WARNING",
    }
    first = App("a", tmp_path, env)  # migrates and creates the local user first
    try:
        second = App("b", tmp_path, env)
        try:
            yield first, second
        finally:
            second.close()
    finally:
        first.close()


def test_start_on_one_replica_reattach_and_stop_on_the_other(two_apps: tuple[App, App]) -> None:
    a, b = two_apps
    conversation_id = httpx.post(f"{a.url}/api/conversations", json={}).json()["id"]
    messages = f"api/conversations/{conversation_id}/messages"

    # Start on A, read a little, leave: the reply goes on.
    received = ""
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", f"{a.url}/{messages}", json={"content": "a long story"}) as r,
    ):
        assert r.status_code == 200
        for chunk in r.iter_text():
            received += chunk
            if received.count("event: delta") >= 5 and received.endswith("\n\n"):
                break
    seen = parse_events(received)
    reply_id = seen[0].data["assistant_message_id"]
    last = int(seen[-1].id or 0)

    # B sees it running and refuses a second reply.
    detail = httpx.get(f"{b.url}/api/conversations/{conversation_id}").json()
    assert detail["generating"]["message_id"] == reply_id
    clash = httpx.post(f"{b.url}/{messages}", json={"content": "impatient"})
    assert clash.status_code == 409, clash.text

    # B replays what A's client missed, follows live, and stops it.
    body = ""
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "GET", f"{b.url}/{messages}/{reply_id}/events", headers={"Last-Event-ID": str(last)}
        ) as r,
    ):
        assert r.status_code == 200
        chunks = r.iter_text()
        for chunk in chunks:
            body += chunk
            if body.count("event: delta") >= 10:
                stop = httpx.post(f"{b.url}/api/conversations/{conversation_id}/stop")
                assert stop.json() == {"stopped": True}
                break
        body += "".join(chunks)
    rest = parse_events(body)
    ids = [int(event.id or 0) for event in rest]
    assert ids == list(range(last + 1, last + 1 + len(rest)))
    assert rest[-1].name == "error"
    stored = rest[-1].data["message"]
    assert stored["status"] == "partial"
    text = "".join(e.data["text"] for e in seen + rest if e.name == "delta")
    assert stored["content"] == text
    assert len(text.split()) < 400  # stopped well before the 600-token reply's end

    after = httpx.get(f"{a.url}/api/conversations/{conversation_id}").json()
    assert after["generating"] is None
    assert after["messages"][-1]["status"] == "partial"
    # The conversation is free again, on either replica.
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", f"{b.url}/{messages}", json={"content": "go on"}) as r,
    ):
        assert r.status_code == 200
    assert httpx.post(f"{a.url}/api/conversations/{conversation_id}/stop").json() == {
        "stopped": True
    }


def test_a_replica_that_dies_mid_reply_frees_the_conversation(two_apps: tuple[App, App]) -> None:
    a, b = two_apps
    conversation_id = httpx.post(f"{b.url}/api/conversations", json={}).json()["id"]
    messages = f"api/conversations/{conversation_id}/messages"
    received = ""
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", f"{a.url}/{messages}", json={"content": "a long story"}) as r,
    ):
        for chunk in r.iter_text():
            received += chunk
            if received.count("event: delta") >= 40 and received.endswith("\n\n"):
                break
    reply_id = parse_events(received)[0].data["assistant_message_id"]
    a.process.send_signal(signal.SIGKILL)  # no goodbye: its marker simply stops being renewed
    a.process.wait(timeout=10)

    # B replays everything A logged, then, once A's marker has expired, ends the stream
    # with what A had saved (its last checkpoint).
    events = parse_events(httpx.get(f"{b.url}/{messages}/{reply_id}/events", timeout=60).text)
    assert events[0].name == "message"
    assert events[-1].name == "error"
    saved = events[-1].data["message"]
    assert saved["status"] == "partial"
    assert saved["content"]
    streamed = "".join(e.data["text"] for e in events if e.name == "delta")
    assert streamed.startswith(saved["content"])
    assert httpx.get(f"{b.url}/api/conversations/{conversation_id}").json()["generating"] is None
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", f"{b.url}/{messages}", json={"content": "again"}) as r,
    ):
        assert r.status_code == 200
    assert httpx.post(f"{b.url}/api/conversations/{conversation_id}/stop").json()["stopped"]
