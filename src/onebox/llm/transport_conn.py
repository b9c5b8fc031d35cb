"""The connection side of :mod:`onebox.llm.transport`: one asyncio protocol per HTTP/1.1
connection, with the httptools response parser, and the streamed response body."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Final, Protocol, cast

import httptools
import httpx

_HIGH_WATER: Final = 1024 * 1024  # body bytes buffered before we stop reading the socket
_COALESCE_LIMIT: Final = 64 * 1024  # request bodies up to this are sent with the head
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_NO_TIMEOUTS: Final[dict[str, float | None]] = {}
_HTTP_11: Final = b"HTTP/1.1"
_METHODS: Final = {
    name: name.encode() for name in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
}
_TIMED_OUT: Final = object()  # a waiter's result when its timer fired first
_POOL_CLOSED: Final = object()

Origin = tuple[str, str, int]


class _StaleConnection(Exception):
    """A reused connection ended before any byte of the response: retry on a new one."""


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_result(_TIMED_OUT)


def _until_close(headers: list[tuple[bytes, bytes]], status: int) -> bool:
    """Whether a response body is delimited by the end of the connection (RFC 9112 6.3)."""
    if status < 200 or status in (204, 304):
        return False
    chunked = False
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"content-length":
            return False
        if lowered == b"transfer-encoding":
            chunked = value.rsplit(b",", 1)[-1].strip().lower() == b"chunked"
    return not chunked


class _Response(httpx.AsyncByteStream):
    """One response: its head as parsed, then its body as an async byte stream."""

    __slots__ = (
        "buffered",
        "chunks",
        "complete",
        "conn",
        "error",
        "head_only",
        "headers",
        "headers_done",
        "interim",
        "loop",
        "read_timeout",
        "reason",
        "received",
        "status",
        "version",
        "waiter",
        "writing",
    )

    def __init__(
        self,
        conn: _Connection,
        loop: asyncio.AbstractEventLoop,
        read_timeout: float | None,
        head_only: bool,
    ) -> None:
        self.conn: _Connection | None = conn  # None once detached (complete or closed)
        self.loop = loop
        self.read_timeout = read_timeout
        self.head_only = head_only
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.reason = b""
        self.status = 0
        self.version = _HTTP_11
        self.headers_done = False
        self.interim = False
        self.complete = False
        self.received = False  # any byte of the response at all
        self.writing = False  # streaming the request body
        self.error: Exception | None = None
        self.waiter: asyncio.Future[object] | None = None

    async def wait(self) -> None:
        """Until the connection has news for this response (bytes, the end, an error)."""
        waiter = self.waiter = self.loop.create_future()
        timeout = self.read_timeout
        if timeout is None:
            try:
                await waiter
            finally:
                self.waiter = None
            return
        timer = self.loop.call_later(timeout, _expire, waiter)
        try:
            result = await waiter
        finally:
            timer.cancel()
            self.waiter = None
        if result is _TIMED_OUT:
            raise httpx.ReadTimeout(f"no data from the server within {timeout:g}s")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = self.chunks
        while True:
            if chunks:
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                if self.buffered > _HIGH_WATER:
                    conn = self.conn
                    if conn is not None:
                        conn.resume()
                self.buffered = 0
                yield data
            elif self.complete:
                return
            elif self.error is not None:
                raise self.error
            else:
                await self.wait()

    async def aclose(self) -> None:
        self.chunks.clear()
        if not self.complete and self.error is None:
            self.error = httpx.StreamClosed()
        conn = self.conn
        if conn is not None:  # the body did not arrive in full: drop the connection
            self.conn = None
            if conn.response is self:
                conn.response = None
            conn.abort()


class ConnectionOwner(Protocol):
    """The pool a connection returns to (``transport_pool.FastTransport``; the pool imports
    this module, so the dependency points one way)."""

    _closed: bool

    def _release(self, conn: _Connection) -> None: ...
    def _forget(self, conn: _Connection) -> None: ...


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; parses responses as bytes arrive."""

    __slots__ = (
        "closed",
        "counted",
        "drain",
        "idle_since",
        "keep_alive",
        "loop",
        "origin",
        "owner",
        "parser",
        "reading_paused",
        "response",
        "served",
        "transport",
        "write_paused",
    )

    def __init__(
        self, owner: ConnectionOwner, origin: Origin, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.owner = owner
        self.loop = loop
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: _Response | None = None
        self.closed = False
        self.counted = True  # holds one of the pool's max_connections slots
        self.served = 0  # responses received in full on this connection
        self.idle_since = 0.0
        self.keep_alive = False
        self.reading_paused = False
        self.write_paused = False
        self.drain: asyncio.Future[object] | None = None

    # Transport callbacks -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None:  # bytes nobody asked for (e.g. a 408 on an idle connection)
            self.abort()
            return
        response.received = True
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self.keep_alive = False  # whatever came after, this connection is done
            if not response.complete:
                if response.error is None:
                    response.error = httpx.RemoteProtocolError(
                        "unexpected protocol upgrade"
                        if isinstance(exc, httptools.HttpParserUpgrade)
                        else f"malformed response: {exc}"
                    )
                response.conn = None
                self.response = None
                self.abort()
        if response.complete:
            self._finish(response)
        elif response.buffered > _HIGH_WATER and not self.reading_paused and not self.closed:
            self.reading_paused = True
            assert self.transport is not None
            self.transport.pause_reading()
        waiter = response.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool | None:
        self.abort()  # mark it dead at once; connection_lost settles the response
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            self.owner._forget(self)
        drain = self.drain
        if drain is not None and not drain.done():
            drain.set_result(None)
        response = self.response
        if response is None:
            return
        self.response = None
        response.conn = None
        if response.complete:
            return
        if self.owner._closed:
            response.error = httpx.ReadError("the transport was closed")
        elif (
            exc is None
            and response.headers_done
            and _until_close(response.headers, response.status)
        ):
            response.complete = True  # the end of the connection was the end of the body
        elif not response.received and self.served:
            response.error = _StaleConnection()  # closed by the server while it was idle
        elif not response.received and response.writing:
            response.error = httpx.WriteError(
                f"connection lost while sending the request ({exc or 'closed'})"
            )
        elif isinstance(exc, OSError):
            response.error = httpx.ReadError(str(exc) or type(exc).__name__)
        elif response.headers_done:
            response.error = httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body"
            )
        else:
            response.error = httpx.RemoteProtocolError(
                "Server disconnected without sending a response."
            )
        waiter = response.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        drain = self.drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    # httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        response = self.response
        if response is None or response.complete:
            raise httpx.RemoteProtocolError("unexpected data after the response")

    def on_status(self, status: bytes) -> None:
        response = self.response
        assert response is not None
        response.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        response = self.response
        assert response is not None
        response.headers.append((name, value))

    def on_headers_complete(self) -> None:
        response = self.response
        assert response is not None
        status = self.parser.get_status_code()
        if status < 200:  # 1xx: an interim response, the real one follows
            response.headers = []
            response.reason = b""
            response.interim = True
            return
        response.status = status
        response.headers_done = True
        parser = self.parser
        self.keep_alive = parser.should_keep_alive()
        version = parser.get_http_version()
        if version != "1.1":
            response.version = f"HTTP/{version}".encode()
        if response.head_only:  # no body follows, whatever the headers say
            response.complete = True
            self.keep_alive = False  # llhttp would wait for it: do not reuse

    def on_body(self, body: bytes) -> None:
        response = self.response
        assert response is not None
        if not response.complete:
            response.chunks.append(body)
            response.buffered += len(body)

    def on_message_complete(self) -> None:
        response = self.response
        assert response is not None
        if response.interim:
            response.interim = False
        else:
            response.complete = True

    # Ours --------------------------------------------------------------------------------

    def _finish(self, response: _Response) -> None:
        """The response arrived in full: back to the pool, or closed."""
        if self.response is response:
            self.response = None
        response.conn = None
        self.served += 1
        if self.keep_alive and not self.closed:
            if self.reading_paused:
                self.resume()
            self.owner._release(self)
        else:
            self.abort()

    def resume(self) -> None:
        if self.reading_paused:
            self.reading_paused = False
            if self.transport is not None and not self.closed:
                self.transport.resume_reading()

    def abort(self) -> None:
        """Close now (unsent data is dropped); frees the pool slot at once."""
        if not self.closed:
            self.closed = True
            self.owner._forget(self)
        if self.transport is not None:
            self.transport.abort()

    async def wait_drained(self, loop: asyncio.AbstractEventLoop, limit: float | None) -> None:
        while self.write_paused and not self.closed:
            drain = self.drain = loop.create_future()
            timer = loop.call_later(limit, _expire, drain) if limit is not None else None
            try:
                result = await drain
            finally:
                self.drain = None
                if timer is not None:
                    timer.cancel()
            if result is _TIMED_OUT:
                raise httpx.WriteTimeout(f"could not send the request within {limit:g}s")
