"""What each request of a mode sends and how its answer is read: chat completions (streamed
or not) and searches."""

from __future__ import annotations

import json
import random
import re
import time
from dataclasses import dataclass
from typing import Any

from onebox.loadtest.http import Client, Exchange
from onebox.loadtest.runner import Sample

# A content delta in a chat.completion.chunk, however the server spaces its JSON. Not
# "reasoning_content": the quote before "content" rules it out.
_CONTENT = re.compile(rb'"content"\s*:\s*"(?!")')
_EVENT_END = re.compile(rb"\r?\n\r?\n")
_WORDS = (
    "the", "pump", "valve", "manual", "water", "pressure", "start", "filter", "clean", "check",
    "open", "close", "level", "engine", "report", "data", "system", "model", "answer",
    "question", "document", "simple", "quick", "note", "table", "river", "stone", "light",
    "window", "garden", "paper", "market", "signal", "channel", "number", "letter",
)  # fmt: skip
PROMPT_VARIANTS = 64  # distinct prompts, so an engine's prefix cache cannot answer them all


def make_prompt(words: int, rng: random.Random) -> str:
    """About ``words`` tokens of text (one common English word is about one token)."""
    return " ".join(rng.choice(_WORDS) for _ in range(max(1, words)))


@dataclass
class ChatWorkload:
    """``POST /v1/chat/completions`` against ``client`` (whose base URL ends in ``/v1``)."""

    client: Client
    model: str
    stream: bool = True
    prompt_tokens: int = 32
    max_tokens: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)  # noqa: S311 - prompt text, not secrets
        self._raw: list[bytes] = []
        for _ in range(PROMPT_VARIANTS):
            body: dict[str, Any] = {
                "model": self.model,
                "messages": [{"role": "user", "content": make_prompt(self.prompt_tokens, rng)}],
                "max_tokens": self.max_tokens,
                "stream": self.stream,
            }
            if self.stream:
                body["stream_options"] = {"include_usage": True}
            payload = json.dumps(body, separators=(",", ":")).encode()
            self._raw.append(
                self.client.raw_request("POST", "/chat/completions", payload, "application/json")
            )
        self._next = 0

    async def __call__(self, scheduled: float | None) -> Sample:
        raw = self._raw[self._next % len(self._raw)]
        self._next += 1
        if not self.stream:
            exchange = await self.client.send(raw, keep_body=True)
            return _sample(exchange, scheduled, *_whole_reply(exchange))
        reader = _StreamReader()
        exchange = await self.client.send(raw, observer=reader.feed)
        sample = _sample(exchange, scheduled, reader.tokens, reader.error)
        sample.first_token = reader.times[0] if reader.times else None
        sample.token_times = reader.times
        return sample


class _StreamReader:
    """Reads SSE as it arrives: which reads carried output (their arrival times), the
    number of content deltas, the usage the server reported, an error event."""

    __slots__ = ("buffer", "deltas", "error", "reported", "times")

    def __init__(self) -> None:
        self.buffer = b""
        self.times: list[float] = []
        self.deltas = 0
        self.reported: int | None = None
        self.error: str | None = None

    @property
    def tokens(self) -> int:
        return self.reported if self.reported is not None else self.deltas

    def feed(self, now: float, data: bytes) -> None:
        self.buffer += data
        pieces = _EVENT_END.split(self.buffer)
        self.buffer = pieces.pop()  # an unfinished event waits for more bytes
        carried = False
        for event in pieces:
            payload = event.partition(b"data:")[2].strip()
            if not payload or payload == b"[DONE]":
                continue
            if _CONTENT.search(payload):
                self.deltas += 1
                carried = True
            if b'"usage"' in payload or b'"error"' in payload:
                self._read_extras(payload)
        if carried:
            self.times.append(now)

    def _read_extras(self, payload: bytes) -> None:
        try:
            event = json.loads(payload)
        except ValueError:
            return
        if isinstance(event, dict):
            usage = event.get("usage")
            if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
                self.reported = usage["completion_tokens"]
            error = event.get("error")
            if error:
                message = error.get("message") if isinstance(error, dict) else error
                self.error = f"stream error: {str(message)[:120]}"


def _whole_reply(exchange: Exchange) -> tuple[int, str | None]:
    """Output tokens of a non-streamed completion (usage, else a rough word count)."""
    if not exchange.ok or exchange.body is None:
        return 0, None
    try:
        reply = json.loads(exchange.body)
        usage = reply.get("usage") or {}
        if isinstance(usage.get("completion_tokens"), int):
            return int(usage["completion_tokens"]), None
        text = reply["choices"][0]["message"]["content"] or ""
        return len(text.split()), None
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return 0, "unreadable reply"


def _sample(exchange: Exchange, scheduled: float | None, tokens: int, error: str | None) -> Sample:
    start = exchange.sent if scheduled is None else scheduled
    if exchange.error is None and not exchange.ok:
        error = f"HTTP {exchange.status}"
    error = exchange.error or error
    return Sample(
        start=start,
        done=exchange.done if exchange.done is not None else time.perf_counter(),
        ok=error is None,
        error=error,
        lag=0.0 if scheduled is None else max(0.0, exchange.sent - scheduled),
        output_tokens=tokens if error is None else 0,
    )


@dataclass
class SearchWorkload:
    """``POST /api/search`` on a running Onebox (``client``'s base URL is the server root)."""

    client: Client
    collection_ids: list[str]
    queries: list[str]
    limit: int = 5
    mode: str = "hybrid"

    def __post_init__(self) -> None:
        self._raw = [
            self.client.raw_request(
                "POST",
                "/api/search",
                json.dumps(
                    {
                        "query": query,
                        "collection_ids": self.collection_ids,
                        "limit": self.limit,
                        "mode": self.mode,
                    }
                ).encode(),
                "application/json",
            )
            for query in self.queries
        ]
        self._next = 0

    async def __call__(self, scheduled: float | None) -> Sample:
        raw = self._raw[self._next % len(self._raw)]
        self._next += 1
        return _sample(await self.client.send(raw), scheduled, 0, None)
