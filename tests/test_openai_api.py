"""The /v1 API through the official openai SDK, against a real server on loopback."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from onebox.core.settings import Settings
from onebox.llm.base import ProviderOverloadedError, ProviderUnavailableError
from onebox.llm.catalog import ModelSpec, Price
from onebox.llm.fake import FakeProvider
from onebox.llm.registry import ModelEntry, ModelRegistry
from tests.conftest import LiveServer, run_live_server

TOKEN = "test-token-" + "x" * 24


def _entry(name: str, provider: FakeProvider, **spec: object) -> ModelEntry:
    return ModelEntry(ModelSpec(name=name, provider="fake", **spec), provider)  # type: ignore[arg-type]


def _fake(name: str, **options: object) -> FakeProvider:
    return FakeProvider(model_name=name, context_size=4096, **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    models = ModelRegistry(
        [
            _entry("echo", _fake("echo"), aliases=["default"],
                   price=Price(input_per_1m=1.0, output_per_1m=2.0)),
            _entry("broken", _fake("broken", fail_before_start=ProviderUnavailableError("down")),
                   fallbacks=["echo"]),
            _entry("dead", _fake("dead", fail_before_start=ProviderUnavailableError("gone"))),
            _entry("busy", _fake("busy", fail_before_start=ProviderOverloadedError(
                "The engine queue is full", retry_after=2.0))),
            _entry("flaky", _fake("flaky", fail_after=2)),
            _entry("slow", _fake("slow", token_delay=0.02, repeat=50)),
        ],
        default="echo",
    )  # fmt: skip
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path_factory.mktemp("openai"),
        api_token=TOKEN,
    )
    from onebox.app import create_app

    yield from run_live_server(
        settings,
        FakeProvider(model_name="unused", context_size=512),
        app_factory=lambda s: create_app(s, models=models),
    )


@pytest.fixture
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=TOKEN, max_retries=0)


USER = [{"role": "user", "content": "hello gateway"}]


def test_non_streaming(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(model="echo", messages=USER)  # type: ignore[arg-type]
    assert response.object == "chat.completion"
    assert response.model == "echo"
    choice = response.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Echo: hello gateway"
    assert choice.finish_reason == "stop"
    assert response.usage is not None
    assert response.usage.completion_tokens == 3
    assert response.usage.total_tokens == response.usage.prompt_tokens + 3


def test_streaming_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="default", messages=USER, stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: hello gateway"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3
    assert {c.model for c in chunks} == {"echo"}
    assert len({c.id for c in chunks}) == 1


def test_streaming_without_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(model="echo", messages=USER, stream=True)  # type: ignore[arg-type]
    )
    assert all(chunk.usage is None for chunk in chunks)
    assert all(chunk.choices for chunk in chunks)


@pytest.mark.anyio
async def test_async_client(server: LiveServer) -> None:
    client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=TOKEN, max_retries=0)
    try:
        response = await client.chat.completions.create(model="echo", messages=USER)  # type: ignore[arg-type]
        assert response.choices[0].message.content == "Echo: hello gateway"
        stream = await client.chat.completions.create(model="echo", messages=USER, stream=True)  # type: ignore[arg-type]
        parts = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
        assert "".join(parts) == "Echo: hello gateway"
    finally:
        await client.close()


def test_max_tokens_and_its_new_name(client: openai.OpenAI) -> None:
    for limit in ({"max_tokens": 2}, {"max_completion_tokens": 2}):
        response = client.chat.completions.create(model="echo", messages=USER, **limit)  # type: ignore[arg-type]
        assert response.choices[0].finish_reason == "length"
        assert response.choices[0].message.content == "Echo: hello"
        assert response.usage is not None
        assert response.usage.completion_tokens == 2


def test_system_and_content_parts(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model="echo",
        messages=[
            {"role": "developer", "content": "be terse"},
            {"role": "user", "content": [{"type": "text", "text": "part one, "},
                                         {"type": "text", "text": "part two"}]},
        ],  # type: ignore[list-item]
        temperature=0, top_p=0.5, seed=7, stop=["never"], user="someone",
    )  # fmt: skip
    assert response.choices[0].message.content == "Echo: part one, part two"


def test_models_list(client: openai.OpenAI) -> None:
    ids = [model.id for model in client.models.list()]
    assert {"echo", "default", "broken", "slow"} <= set(ids)
    assert client.models.retrieve("default").id == "default"


def test_unknown_model(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-99", messages=USER)  # type: ignore[arg-type]
    assert caught.value.code == "model_not_found"
    assert "gpt-99" in caught.value.message
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-99")


@pytest.mark.parametrize(
    ("arguments", "param"),
    [
        ({"temperature": 5}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"n": 2}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
    ],
)
def test_invalid_parameters(
    client: openai.OpenAI, arguments: dict[str, object], param: str
) -> None:
    call = {"model": "echo", "messages": USER, **arguments}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**call)  # type: ignore[call-overload]
    assert caught.value.param == param
    assert param.split(".")[0] in caught.value.message


def test_malformed_json_is_400(server: LiveServer) -> None:
    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        content=b"{nope",
        headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("key", ["wrong", "", TOKEN + "x"])
def test_authentication(server: LiveServer, key: str) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key or "none", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="echo", messages=USER)  # type: ignore[arg-type]
    assert caught.value.code == "invalid_api_key"
    assert httpx.get(f"{server.url}/v1/models").status_code == 401


def test_overloaded_engine_is_429_with_retry_after(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="busy", messages=USER)  # type: ignore[arg-type]
    assert caught.value.response.headers["retry-after"] == "2"


def test_fallback_serves_when_the_primary_is_down(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(model="broken", messages=USER)  # type: ignore[arg-type]
    assert response.model == "echo"
    assert response.choices[0].message.content == "Echo: hello gateway"


def test_unavailable_without_fallback_is_503(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="dead", messages=USER)  # type: ignore[arg-type]
    assert caught.value.status_code == 503
    assert "gone" in caught.value.message


def test_failure_mid_stream_is_an_error_event(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="flaky", messages=USER, stream=True)  # type: ignore[arg-type]
    received: list[str] = []

    def consume() -> None:
        received.extend(chunk.choices[0].delta.content or "" for chunk in stream)

    with pytest.raises(openai.APIError, match="failed as configured"):
        consume()
    assert "".join(received) == "Echo: hello"


def test_embeddings_say_which_model_is_missing(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="text-embedding-3-small"):
        client.embeddings.create(model="text-embedding-3-small", input="hi")


def _usage_rows(server: LiveServer, where: str) -> list[tuple[object, ...]]:
    database = Path(server.settings.data_dir) / "onebox.db"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with sqlite3.connect(database) as connection:
            rows = connection.execute(
                "SELECT model, requested_model, status, prompt_tokens, completion_tokens, cost,"
                f" ttft_ms, source FROM usage_records WHERE {where}"
            ).fetchall()
        if rows:
            return rows
        time.sleep(0.1)
    return []


def test_usage_is_recorded_with_cost(client: openai.OpenAI, server: LiveServer) -> None:
    client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "count me"}], user="u1"
    )
    rows = _usage_rows(server, "requested_model = 'echo' AND completion_tokens = 3")
    assert rows
    model, requested, status, prompt, completion, cost, ttft, source = rows[0]
    assert (model, requested, status, source) == ("echo", "echo", "complete", "api")
    assert cost == pytest.approx((prompt * 1.0 + completion * 2.0) / 1e6)  # type: ignore[operator]
    assert ttft is not None

    client.chat.completions.create(model="broken", messages=USER)  # type: ignore[arg-type]
    assert _usage_rows(server, "requested_model = 'broken' AND model = 'echo'")


def test_client_disconnect_is_recorded_as_cancelled(server: LiveServer) -> None:
    with httpx.stream(
        "POST",
        f"{server.url}/v1/chat/completions",
        json={"model": "slow", "messages": USER, "stream": True},
        headers={"authorization": f"Bearer {TOKEN}"},
        timeout=10,
    ) as response:
        lines = response.iter_lines()
        for line in lines:
            if '"content":"Echo:"' in line:
                break
    rows = _usage_rows(server, "model = 'slow'")
    assert rows
    assert rows[0][2] == "cancelled"
    assert rows[0][4] < 100  # type: ignore[operator]


def test_langchain_chat_openai(server: LiveServer) -> None:
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(
        model="echo", base_url=f"{server.url}/v1", api_key=TOKEN, max_retries=0,  # type: ignore[arg-type]
        temperature=0,
    )  # fmt: skip
    assert chat.invoke("hello langchain").content == "Echo: hello langchain"
    streamed = "".join(str(chunk.content) for chunk in chat.stream("stream please"))
    assert streamed == "Echo: stream please"
