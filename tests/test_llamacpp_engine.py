"""The embedded engine with the real SmolLM2 model: scheduling, batched decoding,
cancellation, stop strings, usage and UTF-8 streaming."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from onebox.llm.base import (
    ChatMessage,
    ChatRequest,
    ContextWindowExceededError,
    FinishReason,
    GenerationParams,
    ProviderOverloadedError,
    StreamChunk,
    TextDelta,
    Usage,
)
from onebox.llm.llamacpp import LlamaCppProvider
from onebox.llm.llamacpp_engine import LlamaEngine
from onebox.llm.llamacpp_text import TextAssembler

pytestmark = pytest.mark.model

THREADS = max(1, min(2, os.cpu_count() or 1))
LONG_STORY = "Write a very long story about a dragon who learns to bake bread."
StartProvider = Callable[..., Awaitable[LlamaCppProvider]]


@pytest.fixture
async def start_provider() -> AsyncIterator[StartProvider]:
    started: list[LlamaCppProvider] = []

    async def start(
        slots: int = 4, queued: int = 8, context: int = 1024, ignore_eos: bool = False
    ) -> LlamaCppProvider:
        provider = LlamaCppProvider(
            model_name="smollm2",
            context_size=context,
            threads=THREADS,
            max_batch_sequences=slots,
            max_queued_requests=queued,
            ignore_eos=ignore_eos,
        )
        await provider.start()
        started.append(provider)
        return provider

    yield start
    for provider in started:
        await provider.close()


@dataclass
class Answer:
    text: str
    deltas: list[str]
    usage: Usage


def chat(prompt: str, max_tokens: int = 24, **params: object) -> ChatRequest:
    params.setdefault("temperature", 0.0)
    return ChatRequest(
        [ChatMessage("user", prompt)],
        GenerationParams(max_tokens=max_tokens, **params),  # type: ignore[arg-type]
    )


async def answer(provider: LlamaCppProvider, request: ChatRequest) -> Answer:
    deltas: list[str] = []
    usage: Usage | None = None
    async for chunk in provider.stream_chat(request):
        assert usage is None, "nothing may follow the Usage"
        if isinstance(chunk, TextDelta):
            deltas.append(chunk.text)
        else:
            usage = chunk
    assert usage is not None
    return Answer("".join(deltas), deltas, usage)


def engine_of(provider: LlamaCppProvider) -> LlamaEngine:
    assert provider.engine is not None
    return provider.engine


async def wait_until(condition: Callable[[], bool]) -> float:
    """Seconds until the condition held (polled; gives up after 10 s)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < 10, "timed out"
        await asyncio.sleep(0.005)
    return time.monotonic() - started


async def first_chunk(stream: AsyncIterator[StreamChunk]) -> StreamChunk:
    return await anext(stream)


@pytest.mark.anyio
async def test_concurrent_requests_give_the_same_text_as_one_at_a_time(
    start_provider: StartProvider,
) -> None:
    provider = await start_provider(slots=4)
    engine = engine_of(provider)
    requests = [
        chat("Name three colours."),
        chat("What is the capital of France?"),
        # Longer than one 512-token prefill chunk.
        chat("Summarise this: " + "The quick brown fox jumps over the lazy dog. " * 55),
        # Sampling with a seed is reproducible too: the logits are the same bits.
        chat("Write a haiku about the sea.", temperature=0.9, top_p=0.9, seed=1234),
    ]
    assert len(provider._prompt(engine, requests[2].messages)[0]) > engine.n_batch

    one_at_a_time = [await answer(provider, request) for request in requests]
    assert engine.max_batch_seen == 1
    together = await asyncio.gather(*(answer(provider, request) for request in requests))

    assert engine.max_batch_seen > 1  # the sequences really were decoded together

    async def later(delay: float, request: ChatRequest) -> Answer:
        await asyncio.sleep(delay)
        return await answer(provider, request)

    # Joining while others are mid-generation, in another order and other slots.
    staggered = await asyncio.gather(
        *(later(0.08 * i, request) for i, request in enumerate(reversed(requests)))
    )
    for alone, batched, joined in zip(one_at_a_time, together, reversed(staggered), strict=True):
        assert alone.text
        for other in (batched, joined):
            assert other.text == alone.text
            assert other.usage.completion_tokens == alone.usage.completion_tokens
            assert other.usage.finish_reason == alone.usage.finish_reason
    assert engine.active_sequences == 0


@pytest.mark.anyio
async def test_all_slots_decode_in_one_call(start_provider: StartProvider) -> None:
    provider = await start_provider(slots=4, ignore_eos=True)
    calls_before = engine_of(provider).decode_calls
    answers = await asyncio.gather(
        *(answer(provider, chat(f"Count to {n}.", max_tokens=16)) for n in (3, 5, 7, 9))
    )
    engine = engine_of(provider)
    assert engine.max_batch_seen == 4
    # 4 prefills, then 15 steps advance all four sequences at once (each one's 16th token
    # comes from the last step), instead of 4 * 15 single-sequence calls. The engine may
    # take a step or two before the last request has arrived.
    assert 4 + 15 <= engine.decode_calls - calls_before <= 4 + 15 + 3
    assert all(a.usage.completion_tokens == 16 for a in answers)


@pytest.mark.anyio
async def test_a_full_queue_refuses_before_doing_any_work(start_provider: StartProvider) -> None:
    provider = await start_provider(slots=1, queued=1)
    engine = engine_of(provider)
    running = provider.stream_chat(chat(LONG_STORY, max_tokens=400))
    assert isinstance(await first_chunk(running), TextDelta)
    queued = asyncio.create_task(answer(provider, chat("Say hello.", max_tokens=8)))
    await wait_until(lambda: engine.waiting_requests == 1)
    admitted = engine.admitted

    refused = provider.stream_chat(chat("Name three colours."))
    with pytest.raises(ProviderOverloadedError) as caught:
        await first_chunk(refused)
    assert caught.value.retry_after > 0
    assert (engine.admitted, engine.waiting_requests, engine.active_sequences) == (admitted, 1, 1)

    await running.aclose()
    follow_up = await asyncio.wait_for(queued, timeout=60)
    assert follow_up.usage.completion_tokens <= 8
    assert follow_up.usage.queue_ms is not None
    assert follow_up.usage.queue_ms > 0


@pytest.mark.anyio
async def test_a_cancelled_queued_request_never_starts(start_provider: StartProvider) -> None:
    provider = await start_provider(slots=1, queued=4)
    engine = engine_of(provider)
    running = provider.stream_chat(chat(LONG_STORY, max_tokens=400))
    await first_chunk(running)
    waiting = asyncio.create_task(answer(provider, chat("Say hello.")))
    await wait_until(lambda: engine.waiting_requests == 1)

    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert engine.waiting_requests == 0  # left the queue at once
    await running.aclose()
    await wait_until(lambda: engine.active_sequences == 0)
    assert engine.admitted == 1  # only the first request ever got a slot

    after = await answer(provider, chat("Say hello.", max_tokens=8))
    assert after.text
    assert engine.admitted == 2


@pytest.mark.anyio
async def test_cancelling_running_requests_frees_their_slots(start_provider: StartProvider) -> None:
    provider = await start_provider(slots=2)
    engine = engine_of(provider)
    closed = provider.stream_chat(chat(LONG_STORY, max_tokens=400))
    await first_chunk(closed)
    consumed: list[StreamChunk] = []

    async def consume() -> None:
        async for chunk in provider.stream_chat(chat(LONG_STORY + " Make it sad.", 400)):
            consumed.append(chunk)

    task = asyncio.create_task(consume())
    await wait_until(lambda: len(consumed) >= 2)
    assert engine.active_sequences == 2

    await closed.aclose()  # the consumer stops iterating
    assert await wait_until(lambda: engine.active_sequences == 1) < 2.0
    task.cancel()  # the task running the stream is cancelled
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_until(lambda: engine.active_sequences == 0) < 2.0
    assert not any(isinstance(chunk, Usage) for chunk in consumed)

    follow_up = await answer(provider, chat("Say hello.", max_tokens=8))
    assert follow_up.usage.finish_reason in ("stop", "length")
    assert engine.active_sequences == 0


@pytest.mark.anyio
async def test_stop_strings_end_the_text_before_them(start_provider: StartProvider) -> None:
    provider = await start_provider()
    full = await answer(provider, chat("Name three colours.", max_tokens=32))
    # A word from the middle, and a piece of text that spans several tokens.
    word = full.text.split()[4]
    piece = full.text[len(full.text) // 2 : len(full.text) // 2 + 7]
    for stop in (word, piece):
        stopped = await answer(provider, chat("Name three colours.", max_tokens=32, stop=(stop,)))
        assert stopped.text == full.text[: full.text.index(stop)]
        assert stop not in "".join(stopped.deltas)
        assert stopped.usage.finish_reason == "stop"
        assert stopped.usage.completion_tokens < full.usage.completion_tokens


@pytest.mark.anyio
async def test_usage_counts_and_finish_reasons(start_provider: StartProvider) -> None:
    provider = await start_provider()
    request = chat(LONG_STORY, max_tokens=5)
    truncated = await answer(provider, request)
    assert truncated.usage.finish_reason == "length"
    assert truncated.usage.completion_tokens == 5
    assert truncated.usage.prompt_tokens == provider.count_tokens(request.messages)
    assert truncated.usage.queue_ms is not None
    assert truncated.usage.queue_ms >= 0

    natural = await answer(provider, chat("What is 2+2? Answer with just the number.", 64))
    finish: FinishReason = natural.usage.finish_reason
    assert finish == "stop"  # the model's end-of-turn token
    assert 0 < natural.usage.completion_tokens < 64
    assert "<|im_end|>" not in natural.text


@pytest.mark.anyio
async def test_each_sequence_gets_the_whole_context(start_provider: StartProvider) -> None:
    provider = await start_provider(slots=2, context=256, ignore_eos=True)
    assert provider.context_size == 256
    prompt = "Repeat after me: " + "bread " * 180
    requests = [chat(prompt, max_tokens=500), chat(prompt + "please", max_tokens=500)]
    answers = await asyncio.gather(*(answer(provider, request) for request in requests))
    for result in answers:  # both filled their own 256 cells at the same time
        assert result.usage.finish_reason == "length"
        assert result.usage.prompt_tokens + result.usage.completion_tokens == 256 + 1

    with pytest.raises(ContextWindowExceededError):
        await first_chunk(provider.stream_chat(chat("bread " * 300)))


@pytest.mark.anyio
async def test_multibyte_characters_arrive_whole(start_provider: StartProvider) -> None:
    provider = await start_provider()
    emoji = await answer(provider, chat("Reply with three emoji that describe happiness."))
    assert sum(ord(c) > 0xFFFF for c in emoji.text) >= 3
    # Each emoji takes several tokens, yet every delta is whole characters.
    assert len(emoji.deltas) < emoji.usage.completion_tokens
    assert "\ufffd" not in emoji.text

    japanese = chat("Translate 'good morning' into Japanese.", max_tokens=24)
    short = await answer(provider, japanese)
    longer = await answer(provider, chat("Translate 'good morning' into Japanese.", 40))
    assert sum(ord(c) > 0x3000 for c in short.text) > 5
    # 24 tokens end in the middle of a character: its bytes are dropped, not mangled.
    assert "\ufffd" not in short.text
    assert longer.text.startswith(short.text)


def test_text_assembler_rejoins_characters_split_anywhere() -> None:
    text = "Bread 🍞, pão, хлеб, パン, 面包 — done."
    data = text.encode("utf-8")
    rng = random.Random(7)  # noqa: S311 (reproducible cut points)
    for _ in range(50):
        cuts = sorted(rng.sample(range(1, len(data)), 12))
        pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        assembler = TextAssembler()
        out = [assembler.feed(piece) for piece in pieces]
        out.append(assembler.flush())
        assert "".join(out) == text


def test_text_assembler_holds_back_a_possible_stop_string() -> None:
    assembler = TextAssembler(["<|im_end|>", "STOP"])
    assert assembler.feed(b"Hello <|") == "Hello "
    assert assembler.feed(b"im") == ""
    assert assembler.feed(b"_end|> more") == ""
    assert assembler.stopped
    assert assembler.flush() == ""

    assembler = TextAssembler(["STOP"])
    assert assembler.feed(b"ST") == ""
    assert assembler.feed(b"ART") == "START"  # not a stop after all: released
    assert assembler.feed(b"xxST") == "xx"
    assert assembler.flush() == "ST"  # at the end, a partial stop string is just text
