"""HTTP plumbing of the fake upstream: framing, and the asyncio protocol that parses
requests, queues them and writes (timed, streamed) responses."""

from __future__ import annotations

import asyncio
import http
import json
import traceback
from collections import deque
from typing import cast

import httptools

from onebox.testing.fake_upstream.replies import MAX_BODY_BYTES
from onebox.testing.fake_upstream.state import _ApiError, _State


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


class _Protocol(asyncio.Protocol):
    """Connection plumbing; :class:`~onebox.testing.fake_upstream.handlers._Connection`
    adds the request handlers."""

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
        raise NotImplementedError

    def _abandon(self) -> None:
        self.timer = None
        self._end_in_flight()
        if self.transport is not None:
            self.transport.close()

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
