"""The OpenAI-compatible provider against a real fake upstream process, and that fake itself."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from onebox.llm.base import (
    ChatMessage,
    ChatRequest,
    GenerationParams,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    TextDelta,
    Usage,
)
from onebox.llm.openai_compat import (
    OpenAICompatProvider,
    UpstreamRequestError,
    UpstreamUnavailableError,
    _SseParser,
)
from onebox.llm.transport import FastTransport
from onebox.testing.fake_upstream import (
    FakeUpstream,
    embedding_for,
    expected_reply,
    reply_deltas,
    start_fake_upstream,
)
from tests.conftest import free_port

MODEL = "fake-model"
DEFAULTS: dict[str, Any] = {
    "ttft_ms": 0,
    "tokens_per_second": 0,
    "tokens": 16,
    "fail_mode": "none",
    "fail_count": None,
    "model": MODEL,
    "api_key": None,
}
HELLO = [ChatMessage("system", "Be brief."), ChatMessage("user", "hello world")]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with start_fake_upstream(model=MODEL) as fake:
        yield fake


@pytest.fixture
def fake(upstream: FakeUpstream) -> FakeUpstream:
    """The shared fake upstream, back to its defaults and zeroed counters."""
    upstream.configure(**DEFAULTS)
    upstream.reset()
    return upstream


@pytest.fixture(params=["httpx-default", "fast"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    """The provider's shared client, over httpx's own transport and over FastTransport."""
    if request.param == "fast":
        transport = FastTransport(max_connections=100)
        async with httpx.AsyncClient(transport=transport, follow_redirects=False) as shared:
            yield shared
        return
    async with httpx.AsyncClient() as shared:
        yield shared


ProviderFactory = Callable[..., OpenAICompatProvider]


@pytest.fixture
def make_provider(fake: FakeUpstream, client: httpx.AsyncClient) -> ProviderFactory:
    def make(**overrides: Any) -> OpenAICompatProvider:
        options: dict[str, Any] = {
            "model_name": "public-name",
            "context_size": 4096,
            "base_url": fake.url,
            "upstream_model": MODEL,
            "client": client,
            "connect_timeout": 2.0,
            "read_timeout": 5.0,
            "total_timeout": 20.0,
            "max_retries": 2,
            "retry_backoff": 0.01,
            "failure_threshold": 100,
            "cooldown_seconds": 30.0,
        }
        options.update(overrides)
        return OpenAICompatProvider(**options)

    return make


def chat(
    messages: list[ChatMessage] | None = None, max_tokens: int = 64, **params: Any
) -> ChatRequest:
    return ChatRequest(
        messages=messages or HELLO, params=GenerationParams(max_tokens=max_tokens, **params)
    )


async def collect(
    provider: OpenAICompatProvider, request: ChatRequest, deltas: list[str] | None = None
) -> tuple[list[str], Usage]:
    """All deltas and the final usage; ``deltas`` sees each delta as it arrives."""
    received = deltas if deltas is not None else []
    usage: Usage | None = None
    async with contextlib.aclosing(provider.stream_chat(request)) as stream:
        async for chunk in stream:
            if isinstance(chunk, TextDelta):
                assert usage is None, "text after the final usage"
                received.append(chunk.text)
            else:
                assert usage is None, "two usages"
                usage = chunk
    assert usage is not None, "no final usage"
    return received, usage


async def wait_for_stats(fake: FakeUpstream, **expected: int) -> None:
    """Poll the fake's counters until they match (3 s at most)."""
    deadline = time.monotonic() + 3
    while True:
        stats = await fake.astats()
        if all(stats[key] == value for key, value in expected.items()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {expected}, fake upstream reports {stats}")
        await asyncio.sleep(0.02)


# --------------------------------------------------------------------------------------
# Streaming


@pytest.mark.anyio
async def test_streams_the_predicted_text_and_usage(
    fake: FakeUpstream, make_provider: ProviderFactory
) -> None:
    deltas, usage = await collect(make_provider(), chat(max_tokens=64))

    assert "".join(deltas) == "".join(reply_deltas("hello world", tokens=16))
    assert "".join(deltas) == (
        "Echo: hello world tok3 tok4 tok5 tok6 tok7 tok8 tok9 tok10 tok11 tok12 tok13 tok14 tok15"
    )
    # The fake counts words + 3 per message: (2 + 3) + (2 + 3).
    assert usage == Usage(prompt_tokens=10, completion_tokens=16, finish_reason="stop")

    sent = fake.last_request()
    assert sent["model"] == MODEL  # the upstream name, not our public one
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello world"},
    ]
    await wait_for_stats(fake, chat_requests=1, completed=1, disconnects=0, active_streams=0)


@pytest.mark.anyio
async def test_params_are_forwarded_and_max_tokens_gives_length(
    fake: FakeUpstream, make_provider: ProviderFactory
) -> None:
    request = chat(max_tokens=4, temperature=0.2, top_p=0.5, seed=7)
    deltas, usage = await collect(make_provider(), request)

    text, finish = expected_reply("hello world", tokens=16, max_tokens=4)
    assert "".join(deltas) == text == "Echo: hello world tok3"
    assert usage.finish_reason == finish == "length"
    assert usage.completion_tokens == 4
    sent = fake.last_request()
    assert (sent["max_tokens"], sent["temperature"], sent["top_p"], sent["seed"]) == (
        4,
        0.2,
        0.5,
        7,
    )
    assert "stop" not in sent


@pytest.mark.anyio
async def test_stop_sequences_are_forwarded(
    fake: FakeUpstream, make_provider: ProviderFactory
) -> None:
    deltas, usage = await collect(make_provider(), chat(stop=(" tok5", "never")))

    assert "".join(deltas) == "Echo: hello world tok3 tok4"
    assert usage.finish_reason == "stop"
    assert fake.last_request()["stop"] == [" tok5", "never"]


@pytest.mark.anyio
async def test_usage_is_estimated_when_the_upstream_sends_none(
    fake: FakeUpstream, make_provider: ProviderFactory
) -> None:
    provider = make_provider(include_usage=False, max_tokens_field="max_completion_tokens")
    deltas, usage = await collect(provider, chat(max_tokens=5))

    sent = fake.last_request()
    assert "stream_options" not in sent
    assert sent["max_completion_tokens"] == 5
    assert "".join(deltas) == "".join(reply_deltas("hello world", tokens=16)[:5])
    assert usage == Usage(
        prompt_tokens=provider.count_tokens(HELLO), completion_tokens=5, finish_reason="length"
    )


@pytest.mark.anyio
async def test_extra_body_is_merged_into_the_request(
    fake: FakeUpstream, make_provider: ProviderFactory
) -> None:
    provider = make_provider(extra_body={"repetition_penalty": 1.1, "temperature": 0.0})
    await collect(provider, chat(temperature=0.9))
    sent = fake.last_request()
    assert sent["repetition_penalty"] == 1.1
    assert sent["temperature"] == 0.0


@pytest.mark.anyio
async def test_paced_stream_arrives_token_by_token(
    fake: FakeUpstream, make_provider: ProviderFactory
) -> None:
    fake.configure(ttft_ms=100, tokens_per_second=100, tokens=6)
    provider = make_provider()
    started = time.monotonic()
    arrivals: list[float] = []
    async with contextlib.aclosing(provider.stream_chat(chat())) as stream:
        async for chunk in stream:
            if isinstance(chunk, TextDelta):
                arrivals.append(time.monotonic() - started)
    assert len(arrivals) == 6
    assert arrivals[0] >= 0.09  # time to first token
    assert arrivals[-1] - arrivals[0] >= 0.04  # five more, 10 ms apart


@pytest.mark.anyio
async def test_many_concurrent_streams_share_one_client(
    fake: FakeUpstream, make_provider: ProviderFactory
) -> None:
    fake.configure(tokens_per_second=500, tokens=10)
    provider = make_provider()
    results = await asyncio.gather(
        *(
            collect(provider, chat([ChatMessage("user", f"n{index}")], max_tokens=64))
            for index in range(50)
        )
    )
    for index, (deltas, usage) in enumerate(results):
        assert "".join(deltas) == "".join(reply_deltas(f"n{index}", tokens=10))
        assert usage.completion_tokens == 10
    await wait_for_stats(fake, chat_requests=50, completed=50, disconnects=0, active_streams=0)


# --------------------------------------------------------------------------------------
# Leaving early closes the upstream request


@pytest.mark.anyio
async def test_aclose_mid_stream_disconnects_the_upstream(
    fake: FakeUpstream, make_provider: ProviderFactory
) -> None:
    fake.configure(tokens=500, tokens_per_second=50)
    stream = make_provider().stream_chat(chat(max_tokens=500))
    received = [await anext(stream) for _ in range(3)]
    assert all(isinstance(chunk, TextDelta) for chunk in received)
    await wait_for_stats(fake, active_streams=1, disconnects=0)

    await stream.aclose()

    await wait_for_stats(fake, disconnects=1, active_streams=0, completed=0)


@pytest.mark.anyio
async def test_cancelling_the_consumer_task_disconnects_the_upstream(
    fake: FakeUpstream, make_provider: ProviderFactory
) -> None:
    fake.configure(tokens=500, tokens_per_second=50)
    provider = make_provider()
    first = asyncio.Event()

    async def consume() -> None:
        async for _chunk in provider.stream_chat(chat(max_tokens=500)):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    await wait_for_stats(fake, disconnects=1, active_streams=0, completed=0)


# --------------------------------------------------------------------------------------
# Failures before the first token: retries, then ProviderUnavailableError


@pytest.mark.anyio
async def test_connection_refused_is_retried_then_unavailable(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()  # nothing listens there
    provider = OpenAICompatProvider(
        model_name="down",
        context_size=4096,
        base_url=f"http://user:hunter2@127.0.0.1:{port}/v1?token=abc",
        upstream_model="x",
        api_key="sk-refused-secret",
        client=client,
        max_retries=2,
        retry_backoff=0.1,
        failure_threshold=100,
    )
    started = time.monotonic()
    with pytest.raises(UpstreamUnavailableError) as caught:
        await collect(provider, chat())
    elapsed = time.monotonic() - started

    error = caught.value
    assert isinstance(error, ProviderUnavailableError)
    assert error.attempts == 3
    assert error.reason == "connect"
    assert str(error) == f"upstream http://127.0.0.1:{port}/v1: connection refused after 3 attempts"
    # Two backoffs of at least half of 0.1 s and 0.2 s (jitter), well under a second here.
    assert 0.14 <= elapsed < 3
    for secret in ("sk-refused-secret", "hunter2", "token=abc"):
        assert secret not in str(error)
        assert secret not in caplog.text
        assert secret not in repr(provider)


@pytest.mark.anyio
async def test_503_twice_then_healthy_succeeds_with_retries(client: httpx.AsyncClient) -> None:
    # Started from the command line options, as a benchmark would.
    with start_fake_upstream(model=MODEL, fail_mode="status-503", fail_count=2) as flaky:
        provider = OpenAICompatProvider(
            model_name="m",
            context_size=4096,
            base_url=flaky.url,
            upstream_model=MODEL,
            client=client,
            max_retries=2,
            retry_backoff=0.01,
        )
        deltas, usage = await collect(provider, chat())
        assert "".join(deltas) == expected_reply("hello world")[0]
        assert usage.finish_reason == "stop"
        stats = flaky.stats()
        assert stats["chat_requests"] == 3
        assert stats["injected_faults"] == 2
        assert stats["completed"] == 1
        assert provider.health.consecutive_failures == 0


@pytest.mark.anyio
async def test_429_waits_for_retry_after(
    fake: FakeUpstream, make_provider: ProviderFactory
) -> None:
    fake.configure(fail_mode="status-429", fail_count=1)
    started = time.monotonic()
    deltas, _ = await collect(make_provider(retry_backoff=0.01), chat())
    assert time.monotonic() - started >= 0.95  # Retry-After: 1, not the 10 ms backoff
    assert "".join(deltas) == "".join(reply_deltas("hello world", tokens=16))
    assert fake.stats()["chat_requests"] == 2


@pytest.mark.anyio
async def test_retry_after_is_capped(fake: FakeUpstream, make_provider: ProviderFactory) -> None:
    fake.configure(fail_mode="status-429", fail_count=1)
    started = time.monotonic()
    await collect(make_provider(retry_backoff=0.01, retry_after_max=0.1), chat())
    assert time.monotonic() - started < 0.8


@pytest.mark.anyio
async def test_429_for_every_attempt_reports_retry_after(
    fake: FakeUpstream, make_provider: ProviderFactory
) -> None:
    fake.configure(fail_mode="status-429")
    with pytest.raises(UpstreamUnavailableError) as caught:
        await collect(make_provider(max_retries=0), chat())
    assert caught.value.status_code == 429
    assert caught.value.retry_after == 1.0


@pytest.mark.anyio
async def test_500_for_every_attempt_is_unavailable(
    fake: FakeUpstream, make_provider: ProviderFactory
) -> None:
    fake.configure(fail_mode="status-500")
    with pytest.raises(UpstreamUnavailableError) as caught:
        await collect(make_provider(max_retries=2), chat())
    error = caught.value
    assert error.attempts == 3
    assert error.status_code == 500
    assert error.reason == "status"
    assert "HTTP 500" in str(error)
    assert "after 3 attempts" in str(error)
    assert fake.stats()["chat_requests"] == 3


@pytest.mark.anyio
async def test_slow_first_byte_is_retried_after_the_read_timeout(
    fake: FakeUpstream, make_provider: ProviderFactory
) -> None:
    fake.configure(fail_mode="slow-first-byte", fail_count=1)
    started = time.monotonic()
    deltas, _ = await collect(make_provider(read_timeout=0.3, max_retries=1), chat())
    assert time.monotonic() - started >= 0.3
    assert "".join(deltas) == "".join(reply_deltas("hello world", tokens=16))
    # The abandoned first request shows up as a disconnect, the retry as a completion.
    await wait_for_stats(fake, chat_requests=2, disconnects=1, completed=1, active_requests=0)


@pytest.mark.anyio
async def test_slow_first_byte_every_time_is_unavailable(
    fake: FakeUpstream, make_provider: ProviderFactory
) -> None:
    fake.configure(fail_mode="slow-first-byte")
    with pytest.raises(UpstreamUnavailableError) as caught:
        await collect(make_provider(read_timeout=0.2, max_retries=1), chat())
    assert caught.value.reason == "timeout"
    assert caught.value.attempts == 2


# --------------------------------------------------------------------------------------
# The circuit breaker


@pytest.mark.anyio
async def test_cooldown_fails_fast_then_lets_a_trial_through(
    fake: FakeUpstream, make_provider: ProviderFactory
) -> None:
    fake.configure(fail_mode="status-500")
    provider = make_provider(max_retries=0, failure_threshold=2, cooldown_seconds=0.5)
    for _ in range(2):
        with pytest.raises(UpstreamUnavailableError):
            await collect(provider, chat())
    assert fake.stats()["chat_requests"] == 2
    health = provider.health
    assert health.state == "open"
    assert health.consecutive_failures == 2
    assert health.cooling_down_until is not None
    assert 0 < health.cooldown_remaining <= 0.5
    assert health.last_error is not None
    assert "HTTP 500" in health.last_error

    started = time.monotonic()
    with pytest.raises(UpstreamUnavailableError) as caught:
        await collect(provider, chat())
    assert time.monotonic() - started < 0.05
    assert caught.value.reason == "cooldown"
    assert caught.value.attempts == 0
    assert "cooling down" in str(caught.value)
    assert fake.stats()["chat_requests"] == 2  # the upstream was not contacted

    fake.configure(fail_mode="none")
    await asyncio.sleep(0.55)
    assert provider.health.state == "half_open"
    deltas, _ = await collect(provider, chat())
    assert "".join(deltas) == "".join(reply_deltas("hello world", tokens=16))
    assert fake.stats()["chat_requests"] == 3
    assert provider.health.state == "closed"
    assert provider.health.consecutive_failures == 0


@pytest.mark.anyio
async def test_a_failed_trial_reopens_the_circuit(
    fake: FakeUpstream, make_provider: ProviderFactory
) -> None:
    fake.configure(fail_mode="status-503")
    provider = make_provider(max_retries=0, failure_threshold=1, cooldown_seconds=0.2)
    with pytest.raises(UpstreamUnavailableError):
        await collect(provider, chat())
    await asyncio.sleep(0.25)
    with pytest.raises(UpstreamUnavailableError) as trial:
        await collect(provider, chat())
    assert trial.value.reason == "status"  # it went through, and failed
    with pytest.raises(UpstreamUnavailableError) as fast:
        await collect(provider, chat())
    assert fast.value.reason == "cooldown"
    assert fake.stats()["chat_requests"] == 2


@pytest.mark.anyio
async def test_a_cancelled_trial_frees_the_slot(
    fake: FakeUpstream, make_provider: ProviderFactory
) -> None:
    provider = make_provider(max_retries=0, failure_threshold=1, cooldown_seconds=0.1)
    fake.configure(fail_mode="status-500")
    with pytest.raises(UpstreamUnavailableError):
        await collect(provider, chat())
    fake.configure(fail_mode="slow-first-byte")
    await asyncio.sleep(0.15)

    trial = asyncio.create_task(collect(provider, chat()))
    await wait_for_stats(fake, active_requests=1)
    assert provider.health.trial_in_flight
    with pytest.raises(UpstreamUnavailableError) as meanwhile:
        await collect(provider, chat())
    assert "trial request is in flight" in str(meanwhile.value)
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    assert not provider.health.trial_in_flight

    fake.configure(fail_mode="none")
    deltas, _ = await collect(provider, chat())
    assert "".join(deltas) == "".join(reply_deltas("hello world", tokens=16))
    assert provider.health.state == "closed"


# --------------------------------------------------------------------------------------
# Failures after the first token: no retry


@pytest.mark.anyio
async def test_stall_mid_stream_is_a_timeout_after_the_first_deltas(
    fake: FakeUpstream, make_provider: ProviderFactory
) -> None:
    fake.configure(fail_mode="stall", fail_count=3)
    deltas: list[str] = []
    started = time.monotonic()
    with pytest.raises(ProviderTimeoutError) as caught:
        await collect(make_provider(read_timeout=0.4), chat(), deltas)
    assert time.monotonic() - started >= 0.4
    assert "".join(deltas) == "".join(reply_deltas("hello world")[:3])
    assert "stalled" in str(caught.value)
    assert not isinstance(caught.value, ProviderUnavailableError)
    await wait_for_stats(fake, chat_requests=1, disconnects=1, active_streams=0)


@pytest.mark.anyio
async def test_connection_drop_mid_stream_is_a_provider_error(
    fake: FakeUpstream, make_provider: ProviderFactory
) -> None:
    fake.configure(fail_mode="midstream", fail_count=3, tokens_per_second=200)
    deltas: list[str] = []
    with pytest.raises(ProviderError) as caught:
        await collect(make_provider(), chat(), deltas)
    error = caught.value
    assert type(error) is ProviderError
    assert "failed mid-stream after 3 tokens" in str(error)
    assert "".join(deltas) == "".join(reply_deltas("hello world")[:3])
    assert fake.stats()["chat_requests"] == 1  # never retried once tokens were out


@pytest.mark.anyio
async def test_drop_before_the_first_token_is_retried(
    fake: FakeUpstream, make_provider: ProviderFactory
) -> None:
    fake.configure(fail_mode="midstream", fail_count=0)
    with pytest.raises(UpstreamUnavailableError) as caught:
        await collect(make_provider(max_retries=1), chat())
    assert caught.value.reason == "protocol"
    assert caught.value.attempts == 2


@pytest.mark.anyio
async def test_total_timeout_ends_a_slow_stream(
    fake: FakeUpstream, make_provider: ProviderFactory
) -> None:
    fake.configure(tokens=100, tokens_per_second=20)
    deltas: list[str] = []
    started = time.monotonic()
    with pytest.raises(ProviderTimeoutError):
        await collect(make_provider(total_timeout=0.5), chat(max_tokens=100), deltas)
    assert 0.45 <= time.monotonic() - started < 2
    assert 3 <= len(deltas) < 100
    await wait_for_stats(fake, disconnects=1, active_streams=0)


# --------------------------------------------------------------------------------------
# Rejected requests: passed on, never retried


@pytest.mark.anyio
async def test_unknown_model_is_a_404_request_error_without_retry(
    fake: FakeUpstream, make_provider: ProviderFactory
) -> None:
    with pytest.raises(UpstreamRequestError) as caught:
        await collect(make_provider(upstream_model="no-such-model"), chat())
    error = caught.value
    assert not isinstance(error, ProviderUnavailableError)
    assert error.status_code == 404
    assert error.code == "model_not_found"
    assert "no-such-model" in error.upstream_message
    assert fake.stats()["chat_requests"] == 1


@pytest.mark.anyio
async def test_invalid_parameter_is_a_400_with_the_upstream_message(
    fake: FakeUpstream, make_provider: ProviderFactory
) -> None:
    with pytest.raises(UpstreamRequestError) as caught:
        await collect(make_provider(), chat(temperature=5.0))
    error = caught.value
    assert error.status_code == 400
    assert error.param == "temperature"
    assert error.upstream_message == "temperature must be between 0 and 2"
    assert fake.stats()["chat_requests"] == 1


@pytest.mark.anyio
async def test_api_key_is_sent_and_never_shown(
    fake: FakeUpstream, make_provider: ProviderFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.configure(api_key="sk-right-key")
    good = make_provider(api_key="sk-right-key")
    deltas, _ = await collect(good, chat())
    assert "".join(deltas) == "".join(reply_deltas("hello world", tokens=16))
    assert "sk-right-key" not in repr(good)

    bad = make_provider(api_key="sk-wrong-secret")
    with pytest.raises(UpstreamRequestError) as caught:
        await collect(bad, chat())
    error = caught.value
    assert error.status_code == 401
    # The fake echoes the key it got, as some servers do; the provider scrubs it.
    assert error.upstream_message == "Incorrect API key provided: ***"
    for text in (str(error), repr(error), repr(bad), caplog.text):
        assert "sk-wrong-secret" not in text
        assert "sk-right-key" not in text


# --------------------------------------------------------------------------------------
# The SSE parser on awkward input


@pytest.mark.parametrize("piece", [1, 7, 1000])
def test_sse_parser_handles_split_reads_crlf_comments_and_multiline_data(piece: int) -> None:
    body = (
        b": keep-alive\r\n\r\n"
        b'data: {"choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}\r\n\r\n'
        b"event: message\n"
        b'data: {"choices":[{"index":0,"delta":\n'
        b'data: {"content":"Hel"},"finish_reason":null}]}\n\n'
        b'data:{"choices":[{"index":0,"delta":{"content":"lo \xc3\xa9"},"finish_reason":null}]}\r\r'
        b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}\n\n'
        b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n'
        b"data: [DONE]\n\n"
        b'data: {"choices":[{"index":0,"delta":{"content":"ignored"}}]}\n\n'
    )
    parser = _SseParser()
    contents: list[str] = []
    for start in range(0, len(body), piece):
        contents += parser.feed(body[start : start + piece])
    contents += parser.end()
    assert contents == ["Hel", "lo é"]
    assert parser.finish == "length"
    assert parser.usage == {"prompt_tokens": 3, "completion_tokens": 2}
    assert parser.done


def test_sse_parser_flushes_an_unterminated_last_event() -> None:
    parser = _SseParser()
    assert (
        parser.feed(b'data: {"choices":[{"delta":{"content":"a"},"finish_reason":"stop"}]}') == []
    )
    assert parser.end() == ["a"]
    assert parser.finish == "stop"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"data: {not json\n\n", "malformed chunk"),
        (b'data: {"error":{"message":"engine died"}}\n\n', "engine died"),
        (b'data: {"choices":[{"delta":{"content":"a"},"finish_reason":null}]}\n\n', "without"),
    ],
)
def test_sse_parser_rejects_broken_streams(body: bytes, problem: str) -> None:
    def parse() -> None:
        parser = _SseParser()
        parser.feed(body)
        parser.end()

    with pytest.raises(Exception, match=problem):
        parse()


# --------------------------------------------------------------------------------------
# The fake upstream itself


def test_fake_non_stream_completion_shape(fake: FakeUpstream) -> None:
    response = httpx.post(
        f"{fake.url}/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == MODEL
    assert body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int)
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Echo: hi tok2"},
            "logprobs": None,
            "finish_reason": "length",
        }
    ]
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}


def test_fake_stream_wire_format(fake: FakeUpstream) -> None:
    fake.configure(tokens=2)
    response = httpx.post(
        f"{fake.url}/chat/completions",
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": "x"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert response.headers["content-type"] == "text/event-stream"
    frames = [frame for frame in response.text.split("\n\n") if frame]
    assert all(frame.startswith("data: ") for frame in frames)
    assert frames[-1] == "data: [DONE]"
    chunks = [json.loads(frame[6:]) for frame in frames[:-1]]
    assert [chunk["object"] for chunk in chunks] == ["chat.completion.chunk"] * len(chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"]["content"] for c in chunks[1:3]] == ["Echo:", " x"]
    assert chunks[3]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert chunks[4]["choices"] == []
    assert chunks[4]["usage"] == {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}


def test_fake_errors_use_the_openai_shape(fake: FakeUpstream) -> None:
    response = httpx.post(
        f"{fake.url}/chat/completions",
        json={"model": "other", "messages": [{"role": "user", "content": "x"}]},
    )
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "message": "The model `other` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }
    fake.configure(fail_mode="status-429", fail_count=1)
    limited = httpx.post(f"{fake.url}/chat/completions", json={"model": MODEL, "messages": [{}]})
    assert limited.status_code == 400  # validation comes before injected failures
    limited = httpx.post(
        f"{fake.url}/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
    )
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "1"
    assert limited.json()["error"]["type"] == "rate_limit_error"


def test_fake_models_endpoint(fake: FakeUpstream) -> None:
    body = httpx.get(f"{fake.url}/models").json()
    assert body["object"] == "list"
    assert [model["id"] for model in body["data"]] == [MODEL]


def test_fake_embeddings_are_deterministic(fake: FakeUpstream) -> None:
    def embed(inputs: str | list[str]) -> list[list[float]]:
        response = httpx.post(f"{fake.url}/embeddings", json={"model": MODEL, "input": inputs})
        assert response.status_code == 200
        body = response.json()
        assert body["object"] == "list"
        assert [item["index"] for item in body["data"]] == list(range(len(body["data"])))
        return [item["embedding"] for item in body["data"]]

    first = embed(["alpha", "beta"])
    assert first == embed(["alpha", "beta"])
    assert embed("alpha") == [first[0]]
    assert first[0] != first[1]
    assert len(first[0]) == 8
    assert first[0] == embedding_for("alpha")
    assert abs(sum(value * value for value in first[0]) - 1) < 1e-4
    assert fake.stats()["embedding_requests"] == 3


def test_fake_stats_and_reset(fake: FakeUpstream) -> None:
    assert httpx.get(f"{fake.root}/health").json() == {"status": "ok"}
    httpx.get(f"{fake.url}/models")
    stats = fake.stats()
    assert stats["requests"] == 1
    assert fake.reset()["requests"] == 0
