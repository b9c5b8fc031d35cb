"""The gateway in front of real upstream processes: fallbacks, timeouts, mid-stream failures
and cancellation, through the app as clients use it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import openai
import pytest

from onebox.core.settings import Settings
from onebox.llm.fake import FakeProvider
from onebox.testing.fake_upstream import FakeUpstream, expected_reply, start_fake_upstream
from tests.conftest import LiveServer, free_port, run_live_server
from tests.sse import parse_events


class Upstreams:
    def __init__(self, healthy: FakeUpstream, stalling: FakeUpstream, dropping: FakeUpstream):
        self.healthy = healthy
        self.stalling = stalling
        self.dropping = dropping


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    with ExitStack() as stack:
        yield Upstreams(
            healthy=stack.enter_context(start_fake_upstream(tokens_per_second=100, tokens=40)),
            stalling=stack.enter_context(
                start_fake_upstream(fail_mode="stall", fail_count=3, tokens=40)
            ),
            dropping=stack.enter_context(
                start_fake_upstream(fail_mode="midstream", fail_count=3, tokens=40)
            ),
        )


@pytest.fixture(scope="module")
def server(upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp("gateway")
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    models = directory / "models.yaml"
    models.write_text(
        f"""
default_model: up
models:
  - name: up
    provider: openai
    upstream_url: {upstreams.healthy.url}
    upstream_model: fake
  - name: down
    provider: openai
    upstream_url: {dead}
    max_retries: 1
    retry_backoff: 0.01
    fallbacks: [up]
  - name: down-alone
    provider: openai
    upstream_url: {dead}
    max_retries: 1
    retry_backoff: 0.01
  - name: stall
    provider: openai
    upstream_url: {upstreams.stalling.url}
    timeouts: {{connect: 2, read: 0.5, total: 30}}
  - name: drop
    provider: openai
    upstream_url: {upstreams.dropping.url}
"""
    )
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=directory / "data",
        models_file=models,
        api_token=TOKEN,
    )
    from onebox.app import create_app

    yield from run_live_server(
        settings,
        FakeProvider(model_name="unused", context_size=512),
        app_factory=lambda s: create_app(s),
    )


@pytest.fixture
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=TOKEN, max_retries=0)


USER = [{"role": "user", "content": "relay this"}]
TOKEN = "gateway-test-token-" + "y" * 24


def test_relays_the_upstream_stream(client: openai.OpenAI) -> None:
    text, finish = expected_reply("relay this", tokens=40)
    chunks = list(client.chat.completions.create(model="up", messages=USER, stream=True))  # type: ignore[arg-type]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == finish


def test_refused_connections_fall_back(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(model="down", messages=USER)  # type: ignore[arg-type]
    assert response.model == "up"
    assert response.choices[0].message.content == expected_reply("relay this", tokens=40)[0]


def test_refused_connections_without_fallback_are_503(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="down-alone", messages=USER)  # type: ignore[arg-type]
    assert caught.value.status_code == 503
    assert "127.0.0.1" in caught.value.message


def test_stalled_upstream_ends_with_a_timeout_event(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="stall", messages=USER, stream=True)  # type: ignore[arg-type]
    received: list[str] = []

    def consume() -> None:
        received.extend(c.choices[0].delta.content or "" for c in stream if c.choices)

    started = time.monotonic()
    with pytest.raises(openai.APIError) as caught:
        consume()
    assert time.monotonic() - started < 10
    assert "".join(received) == "Echo: relay this"
    assert caught.value.code == "upstream_timeout"


def test_mid_stream_failure_in_a_conversation_keeps_partial_text(server: LiveServer) -> None:
    url = server.url
    conversation = httpx.post(f"{url}/api/conversations", json={"model": "drop"}).json()
    response = httpx.post(
        f"{url}/api/conversations/{conversation['id']}/messages",
        json={"content": "relay this"},
        timeout=30,
    )
    events = parse_events(response.text)
    assert events[-1].name == "error"
    partial = events[-1].data["message"]
    assert partial["status"] == "partial"
    streamed = "".join(e.data["text"] for e in events if e.name == "delta")
    assert streamed
    assert partial["content"] == streamed
    stored = httpx.get(f"{url}/api/conversations/{conversation['id']}").json()["messages"]
    assert stored[-1]["status"] == "partial"
    assert stored[-1]["content"] == streamed


def test_client_disconnect_cancels_the_upstream_request(
    server: LiveServer, upstreams: Upstreams
) -> None:
    upstreams.healthy.reset()
    with httpx.stream(
        "POST",
        f"{server.url}/v1/chat/completions",
        json={"model": "up", "messages": USER, "stream": True},
        headers={"authorization": f"Bearer {TOKEN}"},
        timeout=10,
    ) as response:
        for line in response.iter_lines():
            if '"content":"Echo:"' in line:
                break  # leave after the first token of a 0.4 s stream
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        stats = upstreams.healthy.stats()
        if stats["disconnects"] >= 1:
            break
        time.sleep(0.05)
    assert stats["disconnects"] == 1
    assert stats["completed"] == 0
