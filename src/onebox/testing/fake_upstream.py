"""A fake OpenAI-compatible upstream: a real HTTP server process, deterministic and fast.

Run it with ``python -m onebox.testing.fake_upstream --port 8001``, or from tests and
benchmarks with :func:`start_fake_upstream`, which launches it on a free port and waits
until it answers.

It speaks just enough of the OpenAI wire format for a gateway: ``POST /v1/chat/completions``
(streamed as ``text/event-stream`` or not), ``GET /v1/models``, ``POST /v1/embeddings`` and
``GET /health``. Test hooks: ``GET /_stats`` (counters), ``POST /_reset`` (zero them and the
injected-failure budget), ``POST /_config`` (change any option at runtime, same names as the
command line) and ``GET /_last_request`` (the last chat request body).

The reply is fixed by the request (see :func:`reply_words`)::

    words = ["Echo:", *last_user_message.split()] + ["tok{i}" for i in range(len, tokens)]
    words = words[:tokens]                       # --tokens, default 16
    emitted = words[:max_tokens]                 # max_tokens / max_completion_tokens
    deltas = [words[0], " " + words[1], " " + words[2], ...]

``finish_reason`` is ``"length"`` when ``max_tokens`` cut the reply short, else ``"stop"``;
a ``stop`` string found in the text cuts it just before the match (``"stop"``). Usage:
``prompt_tokens`` = sum over messages of (words in the content + 3);
``completion_tokens`` = number of content deltas.

Timing: headers go out at once; the role chunk and the first content chunk after
``--ttft-ms``; then one token every ``1 / --tokens-per-second`` seconds (0: no delay),
scheduled on absolute times so a busy server catches up by batching due tokens.

Fault injection (``--fail-mode``): ``status-500``, ``status-503``, ``status-429`` (with
``Retry-After: 1``) and ``slow-first-byte`` (no headers for an hour) hit the first
``--fail-count`` chat/embedding requests (default: all), then the server is healthy;
``midstream`` sends ``--fail-count`` tokens (default 3) and then closes the connection
without ending the chunked body; ``stall`` sends that many tokens and then goes silent
with the connection open.

It is a raw asyncio protocol on uvloop with the httptools parser: no framework, no task per
request, one timer per active stream, so it can feed a gateway benchmark on a small machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import http
import json
import math
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import IO, Any, cast

import httptools
import httpx

FAIL_MODES = (
    "none",
    "status-500",
    "status-503",
    "status-429",
    "midstream",
    "stall",
    "slow-first-byte",
)
DEFAULT_TOKENS = 16
DEFAULT_FAULT_TOKENS = 3
DEFAULT_EMBEDDING_DIMENSIONS = 8
MAX_BODY_BYTES = 16 * 1024 * 1024
SLOW_FIRST_BYTE_SECONDS = 3600.0


# --------------------------------------------------------------------------------------
# The deterministic reply


def reply_words(last_user_message: str, tokens: int = DEFAULT_TOKENS) -> list[str]:
    """The whole reply for a request whose last user message is ``last_user_message``:
    ``Echo:`` and its words, padded with ``tok<position>`` or truncated to ``tokens``."""
    words = ["Echo:", *last_user_message.split()]
    words.extend(f"tok{index}" for index in range(len(words), tokens))
    return words[:tokens]


def reply_deltas(
    last_user_message: str, tokens: int = DEFAULT_TOKENS, max_tokens: int | None = None
) -> list[str]:
    """The content deltas streamed, in order (before any ``stop`` string is applied)."""
    words = reply_words(last_user_message, tokens)
    if max_tokens is not None:
        words = words[:max_tokens]
    return [word if index == 0 else f" {word}" for index, word in enumerate(words)]


def expected_reply(
    last_user_message: str, tokens: int = DEFAULT_TOKENS, max_tokens: int | None = None
) -> tuple[str, str]:
    """``(text, finish_reason)`` the fake returns (no ``stop`` strings)."""
    text = "".join(reply_deltas(last_user_message, tokens, max_tokens))
    truncated = max_tokens is not None and max_tokens < tokens
    return text, "length" if truncated else "stop"


def prompt_tokens_for(contents: list[str]) -> int:
    """The fake's prompt token count: words in each message's content plus 3 per message."""
    return sum(len(content.split()) + 3 for content in contents)


def embedding_for(text: str, dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS) -> list[float]:
    """A unit vector derived from SHA-256 of the text (repeatable across runs and hosts)."""
    raw: list[float] = []
    counter = 0
    while len(raw) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        raw.extend(value / 2**31 - 1.0 for value in struct.unpack(">8I", digest))
        counter += 1
    raw = raw[:dimensions]
    norm = math.sqrt(sum(value * value for value in raw)) or 1.0
    return [round(value / norm, 6) for value in raw]


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": "..."}, ...]
        return " ".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type", "text") == "text"
        )
    return ""


def _apply_stop(deltas: list[str], stops: list[str]) -> tuple[list[str], bool]:
    """Cut the deltas just before the first occurrence of any stop string."""
    text = "".join(deltas)
    cut = min((index for stop in stops if (index := text.find(stop)) >= 0), default=-1)
    if cut < 0:
        return deltas, False
    kept: list[str] = []
    position = 0
    for delta in deltas:
        if position + len(delta) <= cut:
            kept.append(delta)
            position += len(delta)
            continue
        if cut > position:
            kept.append(delta[: cut - position])
        break
    return kept, True


# --------------------------------------------------------------------------------------
# Options, counters, errors


@dataclass
class Options:
    ttft_ms: float = 0.0
    tokens_per_second: float = 0.0
    tokens: int = DEFAULT_TOKENS
    fail_mode: str = "none"
    fail_count: int | None = None
    model: str | None = None
    api_key: str | None = None

    def validate(self) -> None:
        if self.fail_mode not in FAIL_MODES:
            raise ValueError(f"fail_mode must be one of {', '.join(FAIL_MODES)}")
        if self.ttft_ms < 0 or self.tokens_per_second < 0 or self.tokens < 0:
            raise ValueError("ttft_ms, tokens_per_second and tokens must not be negative")
        if self.fail_count is not None and self.fail_count < 0:
            raise ValueError("fail_count must not be negative")


@dataclass
class Stats:
    requests: int = 0  # every /v1/... request
    chat_requests: int = 0
    embedding_requests: int = 0
    completed: int = 0  # chat/embedding responses sent in full (success only)
    disconnects: int = 0  # the client closed the connection before the response finished
    active_streams: int = 0
    active_requests: int = 0  # chat/embedding responses in progress, streamed or not
    injected_faults: int = 0
    client_errors: int = 0  # 4xx answers to invalid requests (not injected)
    connections: int = 0  # open now
    connections_total: int = 0


class _ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        error_type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.code = code
        self.param = param

    def body(self) -> bytes:
        error = {
            "message": self.message,
            "type": self.error_type,
            "param": self.param,
            "code": self.code,
        }
        return json.dumps({"error": error}).encode()


def _invalid(param: str, message: str) -> _ApiError:
    return _ApiError(400, message, code="invalid_value", param=param)


_INJECTED_STATUS = {
    "status-500": (500, "server_error", "The fake upstream failed as configured (500)"),
    "status-503": (503, "service_unavailable", "The fake upstream is unavailable (503)"),
    "status-429": (429, "rate_limit_exceeded", "Rate limit reached for the fake upstream"),
}


class _State:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.stats = Stats()
        self.failures_injected = 0
        self.last_request: Any = None
        self.sequence = 0

    def reset(self) -> None:
        connections = self.stats.connections
        active_streams = self.stats.active_streams
        active_requests = self.stats.active_requests
        self.stats = Stats(
            connections=connections,
            active_streams=active_streams,
            active_requests=active_requests,
        )
        self.failures_injected = 0
        self.last_request = None

    def take_failure(self) -> bool:
        """Whether this request gets the configured status/slow fault (first K, or all)."""
        limit = self.options.fail_count
        if limit is not None and self.failures_injected >= limit:
            return False
        self.failures_injected += 1
        self.stats.injected_faults += 1
        return True

    def next_id(self) -> str:
        self.sequence += 1
        return f"chatcmpl-fake{self.sequence:08x}"


# --------------------------------------------------------------------------------------
# HTTP plumbing


def _head(status: int, content_type: bytes, length: int | None, extra: bytes = b"") -> bytes:
    phrase = http.HTTPStatus(status).phrase.encode()
    framing = (
        b"transfer-encoding: chunked\r\n" if length is None else b"content-length: %d\r\n" % length
    )
    return b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\n%s%sserver: onebox-fake-upstream\r\n\r\n" % (
        status,
        phrase,
        content_type,
        framing,
        extra,
    )


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


# Content delta -> the end of its SSE event. Filler words ("tok7") recur in every reply.
_EVENT_TAILS: dict[str, bytes] = {}


def _event_tail(delta: str) -> bytes:
    tail = (
        b'{"content":%s},"logprobs":null,"finish_reason":null}]}\n\n'
        % json.dumps(delta, ensure_ascii=False).encode()
    )
    if len(_EVENT_TAILS) >= 100_000:
        _EVENT_TAILS.clear()
    _EVENT_TAILS[delta] = tail
    return tail


_JSON = b"application/json"
_SSE = b"text/event-stream"
_DONE = b"data: [DONE]\n\n"
_LAST_CHUNK = b"0\r\n\r\n"


class _Request:
    __slots__ = ("authorization", "body", "keep_alive", "method", "path")

    def __init__(
        self, method: bytes, path: str, authorization: bytes | None, body: bytes, keep_alive: bool
    ) -> None:
        self.method = method
        self.path = path
        self.authorization = authorization
        self.body = body
        self.keep_alive = keep_alive


class _Stream:
    """One streamed chat completion in progress."""

    __slots__ = (
        "deltas",
        "fault",
        "fault_at",
        "final",
        "index",
        "interval",
        "prefix",
        "started",
        "t0",
    )

    def __init__(
        self,
        prefix: bytes,
        deltas: list[str],
        final: bytes,
        t0: float,
        interval: float,
        fault: str | None,
        fault_at: int,
    ) -> None:
        self.prefix = prefix
        self.deltas = deltas
        self.final = final
        self.t0 = t0
        self.interval = interval
        self.fault = fault
        self.fault_at = fault_at
        self.index = 0
        self.started = False


class _Connection(asyncio.Protocol):
    def __init__(self, state: _State) -> None:
        self.state = state
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.authorization: bytes | None = None
        self.body: list[bytes] = []
        self.body_size = 0
        self.queue: deque[_Request] = deque()
        self.busy = False  # a response is being produced
        self.in_flight = False  # a chat/embedding response that a disconnect would cut
        self.streaming = False
        self.keep_alive = True
        self.closed = False
        self.paused = False
        self.emit_pending = False
        self.timer: asyncio.TimerHandle | None = None
        self.stream: _Stream | None = None

    # asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.state.stats.connections += 1
        self.state.stats.connections_total += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        stats = self.state.stats
        stats.connections -= 1
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.in_flight:
            stats.disconnects += 1
            self._end_in_flight()
        self.stream = None
        self.queue.clear()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fatal(400, "upgrades are not supported")
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _ApiError):
                self._fatal(cause.status, cause.message)
            else:
                traceback.print_exception(cause or exc)
                self._fatal(500, "internal error in the fake upstream")
        except httptools.HttpParserError as exc:
            self._fatal(400, f"malformed HTTP request: {exc}")

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.emit_pending:
            self.emit_pending = False
            self._emit()

    # httptools callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.authorization = None
        self.body = []
        self.body_size = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"authorization":
            self.authorization = value

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > MAX_BODY_BYTES:
            raise _ApiError(413, "request body too large")
        self.body.append(body)

    def on_message_complete(self) -> None:
        path = self.url.split(b"?", 1)[0].decode("latin-1")
        request = _Request(
            self.parser.get_method(),
            path,
            self.authorization,
            b"".join(self.body),
            self.parser.should_keep_alive(),
        )
        self.queue.append(request)
        if not self.busy:
            self._next()

    # request handling -----------------------------------------------------------------

    def _fatal(self, status: int, message: str) -> None:
        if self.transport is None or self.closed:
            return
        if not self.busy:
            body = _ApiError(status, message).body()
            self.transport.write(_head(status, _JSON, len(body), b"connection: close\r\n") + body)
        self.transport.close()

    def _next(self) -> None:
        while self.queue and not self.busy and not self.closed:
            request = self.queue.popleft()
            self.keep_alive = request.keep_alive
            self.busy = True
            try:
                self._dispatch(request)
            except _ApiError as exc:
                if exc.status < 500 and exc.status != 429:
                    self.state.stats.client_errors += 1
                self._send_error(exc)
            except Exception as exc:
                traceback.print_exception(exc)
                self._send_error(_ApiError(500, f"fake upstream bug: {exc!r}", "server_error"))

    def _finish(self) -> None:
        """The current response is complete: keep the connection or close it."""
        self.busy = False
        if self.transport is None or self.closed:
            return
        if not self.keep_alive:
            self.transport.close()
            return
        if self.queue:
            self._next()

    def _send(self, status: int, body: bytes, extra: bytes = b"") -> None:
        assert self.transport is not None
        if not self.keep_alive:
            extra += b"connection: close\r\n"
        self.transport.write(_head(status, _JSON, len(body), extra) + body)
        self._finish()

    def _send_error(self, error: _ApiError, extra: bytes = b"") -> None:
        self._send(error.status, error.body(), extra)

    def _send_json(self, payload: object) -> None:
        self._send(200, json.dumps(payload).encode())

    def _begin_in_flight(self, streaming: bool) -> None:
        self.in_flight = True
        self.streaming = streaming
        self.state.stats.active_requests += 1
        if streaming:
            self.state.stats.active_streams += 1

    def _end_in_flight(self) -> None:
        if not self.in_flight:
            return
        self.in_flight = False
        self.state.stats.active_requests -= 1
        if self.streaming:
            self.state.stats.active_streams -= 1
            self.streaming = False

    def _dispatch(self, request: _Request) -> None:
        state = self.state
        path = request.path
        method = request.method
        if path.startswith("/v1/"):
            state.stats.requests += 1
            self._authorize(request)
            if path == "/v1/chat/completions":
                self._require(method, b"POST")
                state.stats.chat_requests += 1
                self._chat(request)
            elif path == "/v1/embeddings":
                self._require(method, b"POST")
                state.stats.embedding_requests += 1
                self._embeddings(request)
            elif path == "/v1/models":
                self._require(method, b"GET")
                self._models()
            else:
                raise _ApiError(404, f"Unknown path {path}", code="not_found")
        elif path == "/health":
            self._send_json({"status": "ok"})
        elif path == "/_stats":
            self._send_json(asdict(state.stats))
        elif path == "/_reset":
            self._require(method, b"POST")
            state.reset()
            self._send_json(asdict(state.stats))
        elif path == "/_config":
            self._configure(request)
        elif path == "/_last_request":
            self._send_json(state.last_request)
        else:
            raise _ApiError(404, f"Unknown path {path}", code="not_found")

    @staticmethod
    def _require(method: bytes, expected: bytes) -> None:
        if method != expected:
            raise _ApiError(405, f"Method {method.decode('latin-1')} not allowed here")

    def _authorize(self, request: _Request) -> None:
        key = self.state.options.api_key
        if key is None:
            return
        given = (request.authorization or b"").decode("latin-1")
        if given != f"Bearer {key}":
            # Like some real servers, echo what was sent: lets tests prove the gateway
            # redacts upstream messages.
            shown = given.removeprefix("Bearer ") or "(none)"
            raise _ApiError(401, f"Incorrect API key provided: {shown}", code="invalid_api_key")

    def _configure(self, request: _Request) -> None:
        state = self.state
        if request.method == b"POST":
            changes = _parse_json_object(request.body)
            known = {item.name for item in fields(Options)}
            unknown = sorted(set(changes) - known)
            if unknown:
                raise _invalid(unknown[0], f"unknown option {unknown[0]!r}")
            try:
                candidate = Options(**{**asdict(state.options), **_coerce(changes)})
                candidate.validate()
            except (TypeError, ValueError) as exc:
                raise _invalid("options", str(exc)) from exc
            state.options = candidate
            state.failures_injected = 0
        self._send_json(asdict(state.options))

    def _models(self) -> None:
        name = self.state.options.model or "fake-model"
        self._send_json(
            {
                "object": "list",
                "data": [{"id": name, "object": "model", "created": 0, "owned_by": "onebox"}],
            }
        )

    def _check_model(self, body: dict[str, Any]) -> str:
        requested = body.get("model")
        if not isinstance(requested, str) or not requested:
            raise _invalid("model", "you must provide a model parameter")
        expected = self.state.options.model
        if expected is not None and requested != expected:
            raise _ApiError(
                404,
                f"The model `{requested}` does not exist or you do not have access to it.",
                code="model_not_found",
                param="model",
            )
        return requested

    def _injected_status(self) -> bool:
        """Answer with the configured status error or go silent; True when it did."""
        mode = self.state.options.fail_mode
        if mode in _INJECTED_STATUS:
            if not self.state.take_failure():
                return False
            status, code, message = _INJECTED_STATUS[mode]
            error_type = "rate_limit_error" if status == 429 else "server_error"
            extra = b"retry-after: 1\r\n" if status == 429 else b""
            self._send_error(_ApiError(status, message, error_type, code), extra)
            return True
        if mode == "slow-first-byte":
            if not self.state.take_failure():
                return False
            self._begin_in_flight(streaming=False)
            self.timer = self.loop.call_later(SLOW_FIRST_BYTE_SECONDS, self._abandon)
            return True
        return False

    def _abandon(self) -> None:
        self.timer = None
        self._end_in_flight()
        if self.transport is not None:
            self.transport.close()

    def _embeddings(self, request: _Request) -> None:
        body = _parse_json_object(request.body)
        model = self._check_model(body)
        raw = body.get("input")
        inputs: list[str]
        if isinstance(raw, str):
            inputs = [raw]
        elif isinstance(raw, list) and raw:
            inputs = [item if isinstance(item, str) else json.dumps(item) for item in raw]
        else:
            raise _invalid("input", "input must be a string or a non-empty array")
        dimensions = body.get("dimensions", DEFAULT_EMBEDDING_DIMENSIONS)
        if (
            not isinstance(dimensions, int)
            or isinstance(dimensions, bool)
            or not 1 <= dimensions <= 4096
        ):
            raise _invalid("dimensions", "dimensions must be an integer from 1 to 4096")
        if self._injected_status():
            return
        words = sum(len(text.split()) for text in inputs)
        self.state.stats.completed += 1
        self._send_json(
            {
                "object": "list",
                "data": [
                    {
                        "object": "embedding",
                        "index": index,
                        "embedding": embedding_for(text, dimensions),
                    }
                    for index, text in enumerate(inputs)
                ],
                "model": model,
                "usage": {"prompt_tokens": words, "total_tokens": words},
            }
        )

    def _chat(self, request: _Request) -> None:
        state = self.state
        options = state.options
        body = _parse_json_object(request.body)
        state.last_request = body
        model = self._check_model(body)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _invalid("messages", "messages must be a non-empty array")
        contents: list[str] = []
        last_user = ""
        for message in messages:
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise _invalid("messages", "each message needs a role")
            text = _text_of(message.get("content"))
            contents.append(text)
            if message["role"] == "user":
                last_user = text
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if max_tokens is not None and (
            not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
        ):
            raise _invalid("max_tokens", "max_tokens must be an integer of at least 1")
        temperature = body.get("temperature")
        if temperature is not None and (
            not isinstance(temperature, int | float) or not 0 <= temperature <= 2
        ):
            raise _invalid("temperature", "temperature must be between 0 and 2")
        stop = body.get("stop")
        stops: list[str]
        if stop is None:
            stops = []
        elif isinstance(stop, str):
            stops = [stop]
        elif isinstance(stop, list) and all(isinstance(item, str) for item in stop):
            stops = [item for item in stop if item]
        else:
            raise _invalid("stop", "stop must be a string or an array of strings")
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise _invalid("stream", "stream must be a boolean")
        stream_options = body.get("stream_options") or {}
        include_usage = isinstance(stream_options, dict) and bool(
            stream_options.get("include_usage")
        )

        if self._injected_status():
            return

        deltas = reply_deltas(last_user, options.tokens, max_tokens)
        finish = "length" if max_tokens is not None and max_tokens < options.tokens else "stop"
        if stops:
            deltas, hit = _apply_stop(deltas, stops)
            if hit:
                finish = "stop"
        usage = {
            "prompt_tokens": prompt_tokens_for(contents),
            "completion_tokens": len(deltas),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        completion_id = state.next_id()
        created = int(time.time())
        interval = 1.0 / options.tokens_per_second if options.tokens_per_second > 0 else 0.0
        t0 = self.loop.time() + options.ttft_ms / 1000
        fault = options.fail_mode if options.fail_mode in ("midstream", "stall") else None
        fault_at = options.fail_count if options.fail_count is not None else DEFAULT_FAULT_TOKENS
        if fault is not None:
            state.stats.injected_faults += 1
        self._begin_in_flight(streaming=stream)

        if not stream:
            text = "".join(deltas)
            payload = json.dumps(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "logprobs": None,
                            "finish_reason": finish,
                        }
                    ],
                    "usage": usage,
                }
            ).encode()
            done_at = t0 + max(len(deltas) - 1, 0) * interval
            if fault is None and done_at <= self.loop.time():
                self._complete_whole(payload)
            else:
                self.timer = self.loop.call_at(done_at, self._complete_whole, payload, fault)
            return

        prefix = (
            b'data: {"id":"%s","object":"chat.completion.chunk","created":%d,"model":%s,'
            b'"choices":[{"index":0,"delta":'
            % (completion_id.encode(), created, json.dumps(model).encode())
        )
        final = prefix + b'{},"logprobs":null,"finish_reason":"%s"}]}\n\n' % finish.encode()
        if include_usage:
            final += b'data: {"id":"%s","object":"chat.completion.chunk","created":%d,' % (
                completion_id.encode(),
                created,
            )
            final += b'"model":%s,"choices":[],"usage":%s}\n\n' % (
                json.dumps(model).encode(),
                json.dumps(usage).encode(),
            )
        final += _DONE
        self.stream = _Stream(prefix, deltas, final, t0, interval, fault, fault_at)
        extra = b"cache-control: no-cache\r\n"
        if not self.keep_alive:
            extra += b"connection: close\r\n"
        head = _head(200, _SSE, None, extra)
        assert self.transport is not None
        if t0 <= self.loop.time():
            self._emit(head)
        else:
            self.transport.write(head)
            self.timer = self.loop.call_at(t0, self._emit)

    def _complete_whole(self, payload: bytes, fault: str | None = None) -> None:
        self.timer = None
        if self.closed or self.transport is None:
            return
        extra = b"" if self.keep_alive else b"connection: close\r\n"
        message = _head(200, _JSON, len(payload), extra) + payload
        if fault is not None:
            self.transport.write(message[: len(message) - len(payload) // 2])
            if fault == "midstream":
                self._end_in_flight()
                self.transport.close()
            return  # stall: keep the connection open and silent
        self._end_in_flight()
        self.state.stats.completed += 1
        self.transport.write(message)
        self._finish()

    def _emit(self, head: bytes = b"") -> None:
        """Send every token that is due; schedule the next, or end or break the stream."""
        self.timer = None
        stream = self.stream
        transport = self.transport
        if stream is None or transport is None or self.closed:
            return
        if self.paused:
            self.emit_pending = True
            return
        parts: list[bytes] = []
        prefix = stream.prefix
        if not stream.started:
            stream.started = True
            parts.append(
                prefix
                + b'{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n'
            )
        total = len(stream.deltas)
        limit = total if stream.fault is None else min(total, stream.fault_at)
        if stream.interval:
            due = int((self.loop.time() - stream.t0) / stream.interval) + 1
            upto = min(limit, max(due, stream.index + 1))
        else:
            upto = limit
        cache = _EVENT_TAILS
        for delta in stream.deltas[stream.index : upto]:
            tail = cache.get(delta)
            if tail is None:
                tail = _event_tail(delta)
            parts.append(prefix + tail)
        stream.index = upto
        if stream.index >= limit and stream.fault is None:
            parts.append(stream.final)
            transport.write(head + _chunk(b"".join(parts)) + _LAST_CHUNK)
            self.stream = None
            self._end_in_flight()
            self.state.stats.completed += 1
            self._finish()
            return
        transport.write(head + _chunk(b"".join(parts)))
        if stream.index >= limit:  # the fault point
            if stream.fault == "midstream":
                if stream.interval:
                    when = stream.t0 + stream.index * stream.interval
                    self.timer = self.loop.call_at(when, self._drop)
                else:
                    self._drop()
            return  # stall: silent until the client gives up
        self.timer = self.loop.call_at(stream.t0 + stream.index * stream.interval, self._emit)

    def _drop(self) -> None:
        """Break the stream: close without the final chunk, like a crashed upstream."""
        self.timer = None
        self.stream = None
        self._end_in_flight()
        if self.transport is not None:
            self.transport.close()


_OPTION_TYPES: dict[str, type] = {
    "ttft_ms": float,
    "tokens_per_second": float,
    "tokens": int,
    "fail_mode": str,
    "fail_count": int,
    "model": str,
    "api_key": str,
}


def _coerce(changes: dict[str, Any]) -> dict[str, Any]:
    """JSON values to option types (None stays None where an option allows it)."""
    coerced: dict[str, Any] = {}
    for name, value in changes.items():
        kind = _OPTION_TYPES[name]
        if value is None and name in {"fail_count", "model", "api_key"}:
            coerced[name] = None
        elif isinstance(value, bool) or not isinstance(value, int | float | str):
            raise TypeError(f"{name}: expected {kind.__name__}, got {value!r}")
        elif kind is str:
            coerced[name] = str(value)
        else:
            coerced[name] = kind(value)
    return coerced


def _parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise _ApiError(400, f"We could not parse the JSON body of your request: {exc}") from exc
    if not isinstance(value, dict):
        raise _ApiError(400, "The request body must be a JSON object")
    return value


# --------------------------------------------------------------------------------------
# The server process


async def serve(host: str, port: int, options: Options) -> None:
    """Serve until SIGINT/SIGTERM."""
    options.validate()
    state = _State(options)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Connection(state), host, port, backlog=4096, reuse_address=True
    )
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return None
    return uvloop.new_event_loop


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m onebox.testing.fake_upstream",
        description="A deterministic fake OpenAI-compatible server for tests and benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ttft-ms", type=float, default=0.0, help="delay before the first token")
    parser.add_argument(
        "--tokens-per-second", type=float, default=0.0, help="decode speed; 0 = no delay"
    )
    parser.add_argument("--tokens", type=int, default=DEFAULT_TOKENS, help="reply length")
    parser.add_argument("--fail-mode", choices=FAIL_MODES, default="none")
    parser.add_argument(
        "--fail-count",
        type=int,
        default=None,
        help="status/slow modes: first K requests fail (default all); "
        f"midstream/stall: tokens sent before the fault (default {DEFAULT_FAULT_TOKENS})",
    )
    parser.add_argument("--model", default=None, help="only accept this model name")
    parser.add_argument("--api-key", default=None, help="require this Bearer key on /v1/")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    options = Options(
        ttft_ms=args.ttft_ms,
        tokens_per_second=args.tokens_per_second,
        tokens=args.tokens,
        fail_mode=args.fail_mode,
        fail_count=args.fail_count,
        model=args.model,
        api_key=args.api_key,
    )
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(serve(args.host, args.port, options))


# --------------------------------------------------------------------------------------
# Launching it from tests and benchmarks


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass
class FakeUpstream:
    """A running fake upstream process. ``url`` is the OpenAI base URL (ends in ``/v1``)."""

    host: str
    port: int
    process: subprocess.Popen[bytes] = field(repr=False)
    _client: httpx.Client = field(
        default_factory=lambda: httpx.Client(timeout=5), init=False, repr=False
    )

    @property
    def root(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.root}/v1"

    def _get(self, path: str) -> Any:
        response = self._client.get(f"{self.root}{path}")
        response.raise_for_status()
        return response.json()

    def _post(self, path: str, payload: object = None) -> Any:
        response = self._client.post(f"{self.root}{path}", json=payload)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, int]:
        return dict(self._get("/_stats"))

    def reset(self) -> dict[str, int]:
        return dict(self._post("/_reset"))

    def configure(self, **options: Any) -> dict[str, Any]:
        """Change options at runtime (same names as :func:`start_fake_upstream`); resets the
        injected-failure budget."""
        return dict(self._post("/_config", options))

    def last_request(self) -> Any:
        """The body of the last chat completion request, as JSON."""
        return self._get("/_last_request")

    async def astats(self) -> dict[str, int]:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(f"{self.root}/_stats")
            response.raise_for_status()
            return dict(response.json())


def _command(host: str, port: int, options: dict[str, Any]) -> list[str]:
    command = [sys.executable, "-m", "onebox.testing.fake_upstream", "--host", host]
    command += ["--port", str(port)]
    for name, value in options.items():
        if name not in {item.name for item in fields(Options)}:
            raise TypeError(f"start_fake_upstream() got an unknown option {name!r}")
        if value is not None:
            command += [f"--{name.replace('_', '-')}", str(value)]
    return command


@contextlib.contextmanager
def start_fake_upstream(
    host: str = "127.0.0.1", startup_timeout: float = 20.0, **options: Any
) -> Iterator[FakeUpstream]:
    """Run the fake upstream in a subprocess on a free port until the block exits.

    Options: ``ttft_ms``, ``tokens_per_second``, ``tokens``, ``fail_mode``, ``fail_count``,
    ``model``, ``api_key`` (as on the command line).
    """
    source_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source_root, env.get("PYTHONPATH")]))
    last_error = "no attempt"
    for _ in range(3):  # another process may grab the free port before the child binds it
        port = _free_port(host)
        log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
        process = subprocess.Popen(
            _command(host, port, options), stdout=subprocess.DEVNULL, stderr=log, env=env
        )
        upstream = FakeUpstream(host=host, port=port, process=process)
        try:
            if _wait_healthy(upstream, startup_timeout):
                yield upstream
                return
            log.seek(0)
            last_error = log.read().decode(errors="replace")[-2000:] or "no output"
        finally:
            upstream._client.close()
            _stop(process)
            log.close()
    raise RuntimeError(f"the fake upstream did not start: {last_error}")


def _wait_healthy(upstream: FakeUpstream, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if upstream.process.poll() is not None:
            return False
        try:
            if upstream._client.get(f"{upstream.root}/health", timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


if __name__ == "__main__":
    main()
