"""A lean HTTP/1.1 transport for ``httpx.AsyncClient``, for streaming from upstreams.

``httpx.AsyncClient(transport=FastTransport(...))`` keeps the whole httpx API for callers
(``client.stream(...)``, ``aiter_bytes()``, timeouts, exceptions) while replacing
httpcore/h11/anyio underneath with an asyncio :class:`asyncio.Protocol` per connection and
the C ``httptools`` (llhttp) response parser. The gateway spends most of its time relaying
SSE tokens, so the per-request and per-chunk paths are kept short:

* **Connections** are protocols: bytes are parsed in ``data_received`` as they arrive and
  body pieces are appended to the current response's buffer, waking its reader (one future
  per wait, one timer per wait when a read timeout is set). No task per connection, no
  stream objects, no anyio.
* **Pool**: per origin ``(scheme, host, port)`` a LIFO deque of idle connections; acquiring
  pops the most recently used one, releasing pushes it, both O(1). ``max_connections``
  caps all connections together (those opening included); when it is reached, requests
  queue FIFO for ``timeout["pool"]`` (``httpx.PoolTimeout``), and a connection that is
  released or closed goes straight to the oldest waiter (a released connection of another
  origin is closed to free its slot for the waiter). A request for an origin with no idle
  connection while the cap is reached closes an idle connection of another origin (a loop
  over origins, never over connections). ``keepalive_expiry`` is checked lazily: on
  acquire (idle connections are stacked in release order, so if the newest is too old all
  of them are) and at the old end of the deque on release. Connections the server closes
  while idle are marked dead at once and skipped when popped. A connection is returned
  to the pool as soon as its response has been received in full and the server allowed
  keep-alive; it is closed when the response said ``Connection: close`` (or was
  HTTP/1.0 without keep-alive, or delimited by the end of the connection), when the
  response body was not received in full (``aclose()`` before the end, a timeout,
  cancellation) and after any error or unexpected byte.
* **Stale keep-alive connections**: a *reused* connection that ends (EOF or reset) before
  a single byte of the response arrived was most likely closed by the server while idle
  (e.g. uvicorn's 5 s keep-alive timeout) just as we picked it. The request is then sent
  once more on a new connection, provided its body is buffered (``request.content``,
  which is what httpx builds for ``json=``/``content=`` bytes) and so can be replayed. Like
  most HTTP clients this may repeat a non-idempotent request in the rare case where the
  server did process it and then closed without answering; Onebox only sends POSTs whose
  effect is a generation it did not receive, so that is acceptable here. Fresh
  connections and streamed bodies are never retried; the caller's own retry logic (in
  :mod:`onebox.llm.openai_compat`) decides.
* **Responses** are framed by ``Content-Length``, chunked transfer coding or the end of
  the connection. The body is an :class:`httpx.AsyncByteStream` that yields every network
  read as soon as it is parsed (token-by-token SSE); ``aclose()`` before the end closes the
  TCP connection at once so the upstream sees the disconnect and stops generating. The
  socket stops being read while more than 1 MiB of body waits for the reader.
* **Timeouts** come from ``request.extensions["timeout"]`` (``None`` = no limit): connect
  (TCP and TLS handshake) → :class:`httpx.ConnectTimeout`, read (each wait for bytes,
  the response head included) → :class:`httpx.ReadTimeout`, write (waits for the socket
  to drain) → :class:`httpx.WriteTimeout`, pool → :class:`httpx.PoolTimeout`.
* **Errors**: refused/unreachable/DNS/TLS handshake → :class:`httpx.ConnectError` (the
  ``OSError`` kept as ``__cause__``); connection dropped → :class:`httpx.ReadError` (reset)
  or :class:`httpx.RemoteProtocolError` (closed before a response or mid-body, malformed
  response); dropped while streaming a request body → :class:`httpx.WriteError`. All are
  ``httpx.TransportError``, which the provider retries before the first token.

Not supported (not needed for upstreams): HTTP/2, proxies, ``Expect: 100-continue``
(interim 1xx responses are skipped), protocol upgrades, trio. ``HEAD`` responses work
but their connection is not reused. Requests must be made from the event loop the
transport first connected on (httpx clients are per loop anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Final, cast

import httptools
import httpx

__all__ = ["FastTransport"]

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
        self, owner: FastTransport, origin: Origin, loop: asyncio.AbstractEventLoop
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


class FastTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with keep-alive over asyncio protocols and httptools; see the module doc.

    ``verify``: ``True`` (system CA bundle, hostname checked), ``False`` (no checks: tests
    only) or an :class:`ssl.SSLContext`. Proxies and HTTP/2 are not supported.
    """

    def __init__(
        self,
        *,
        max_connections: int = 100,
        keepalive_expiry: float | None = 30.0,
        verify: bool | ssl.SSLContext = True,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._max = max_connections
        self._expiry = keepalive_expiry if keepalive_expiry is not None else float("inf")
        self._verify = verify
        self._ssl: ssl.SSLContext | None = verify if isinstance(verify, ssl.SSLContext) else None
        self._idle: dict[Origin, deque[_Connection]] = {}
        self._total = 0  # connections open or opening, and slots handed to waiters
        self._waiters: deque[tuple[Origin, asyncio.Future[object]]] = deque()
        self._connections: set[_Connection] = set()
        self._closed = False

    # Introspection, for tests and metrics ------------------------------------------------

    @property
    def connection_count(self) -> int:
        """Connections open or being opened."""
        return len(self._connections)

    @property
    def idle_count(self) -> int:
        return sum(1 for idle in self._idle.values() for conn in idle if not conn.closed)

    # httpx -------------------------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("the transport is closed")
        url = request.url
        scheme = url.scheme
        port = url.port or _DEFAULT_PORTS.get(scheme)
        if port is None:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
        origin = (scheme, url.raw_host.decode("ascii"), port)
        timeouts = request.extensions.get("timeout") or _NO_TIMEOUTS
        try:
            body: bytes | None = request.content
        except httpx.RequestNotRead:
            body = None  # a streamed body: sent as it comes, never replayed
        head = _request_head(request, body is None)
        if body is not None and len(body) <= _COALESCE_LIMIT:
            head += body
            body = b""
        loop = asyncio.get_running_loop()
        conn = await self._acquire(loop, origin, timeouts, fresh=False)
        try:
            return await self._exchange(loop, conn, request, head, body, timeouts)
        except _StaleConnection:
            pass
        if body is None:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        conn = await self._acquire(loop, origin, timeouts, fresh=True)
        try:
            return await self._exchange(loop, conn, request, head, body, timeouts)
        except _StaleConnection:  # cannot happen on a new connection; for completeness
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response."
            ) from None

    async def aclose(self) -> None:
        self._closed = True
        waiters, self._waiters = self._waiters, deque()
        for _, waiter in waiters:
            if not waiter.done():
                waiter.set_result(_POOL_CLOSED)
        for conn in list(self._connections):
            conn.abort()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports run connection_lost and close sockets

    # One exchange ------------------------------------------------------------------------

    async def _exchange(
        self,
        loop: asyncio.AbstractEventLoop,
        conn: _Connection,
        request: httpx.Request,
        head: bytes,
        body: bytes | None,
        timeouts: dict[str, float | None],
    ) -> httpx.Response:
        transport = conn.transport
        assert transport is not None
        response = _Response(conn, loop, timeouts.get("read"), request.method == "HEAD")
        conn.response = response
        try:
            if conn.closed:  # the server closed it between release and now
                conn.connection_lost(None)
            else:
                transport.write(head)
                if body:
                    transport.write(body)
                elif body is None:
                    await self._send_stream(loop, conn, response, request, timeouts)
                if conn.write_paused:
                    response.writing = True
                    await conn.wait_drained(loop, timeouts.get("write"))
                    response.writing = False
            while not response.headers_done:
                error = response.error
                if error is not None:
                    raise error
                await response.wait()
        except BaseException:
            response.conn = None
            if conn.response is response:
                conn.response = None
            conn.abort()
            raise
        return httpx.Response(
            response.status,
            headers=response.headers,
            stream=response,
            extensions={"http_version": response.version, "reason_phrase": response.reason},
        )

    async def _send_stream(
        self,
        loop: asyncio.AbstractEventLoop,
        conn: _Connection,
        response: _Response,
        request: httpx.Request,
        timeouts: dict[str, float | None],
    ) -> None:
        """Send a body that httpx has not buffered, chunked unless its length is known."""
        stream = request.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        chunked = _is_chunked(request)
        transport = conn.transport
        assert transport is not None
        write_timeout = timeouts.get("write")
        response.writing = True
        async for chunk in stream:
            if conn.closed or response.error is not None:
                break  # the server answered early or went away: see what it said
            if not chunk:
                continue
            transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
            if conn.write_paused:
                await conn.wait_drained(loop, write_timeout)
        else:
            if chunked and not conn.closed:
                transport.write(b"0\r\n\r\n")
        response.writing = False

    # The pool ----------------------------------------------------------------------------

    async def _acquire(
        self,
        loop: asyncio.AbstractEventLoop,
        origin: Origin,
        timeouts: dict[str, float | None],
        *,
        fresh: bool,
    ) -> _Connection:
        if not fresh:
            idle = self._idle.get(origin)
            if idle:
                conn = self._pop_idle(idle, loop.time())
                if conn is not None:
                    return conn
        if self._total < self._max:
            self._total += 1
        elif not self._evict_idle():
            handed = await self._wait_for_slot(loop, origin, timeouts.get("pool"))
            if handed is not None:
                if not fresh:
                    return handed
                handed.counted = False  # keep its slot for the new connection
                handed.abort()
        try:
            return await self._connect(loop, origin, timeouts.get("connect"))
        except BaseException:
            self._free_slot()
            raise

    def _pop_idle(self, idle: deque[_Connection], now: float) -> _Connection | None:
        expiry = self._expiry
        while idle:
            conn = idle.pop()
            if conn.closed:
                continue
            if now - conn.idle_since > expiry:  # and every older one below it
                conn.abort()
                while idle:
                    idle.pop().abort()
                return None
            return conn
        return None

    def _evict_idle(self) -> bool:
        """At the cap: close the oldest idle connection of any origin and take its slot."""
        for idle in self._idle.values():
            while idle:
                conn = idle.popleft()
                if not conn.closed:
                    conn.counted = False
                    conn.abort()
                    return True
        return False

    async def _wait_for_slot(
        self, loop: asyncio.AbstractEventLoop, origin: Origin, limit: float | None
    ) -> _Connection | None:
        """Queue for a connection of this origin (returned) or a free slot (``None``)."""
        waiter: asyncio.Future[object] = loop.create_future()
        entry = (origin, waiter)
        self._waiters.append(entry)
        timer = loop.call_later(limit, _expire, waiter) if limit is not None else None
        try:
            result = await waiter
        except BaseException:  # cancelled: give back what we may have been handed
            if waiter.done() and not waiter.cancelled():
                self._give_back(waiter.result())
            else:
                self._discard_waiter(entry)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if result is _TIMED_OUT:
            self._discard_waiter(entry)
            raise httpx.PoolTimeout(f"no free connection in the pool within {limit:g}s")
        if result is _POOL_CLOSED:
            raise httpx.ConnectError("the transport was closed")
        assert result is None or isinstance(result, _Connection)
        return result

    def _discard_waiter(self, entry: tuple[Origin, asyncio.Future[object]]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(entry)

    def _give_back(self, result: object) -> None:
        if isinstance(result, _Connection):
            self._release(result)
        elif result is None:
            self._free_slot()

    def _release(self, conn: _Connection) -> None:
        """A connection whose response arrived in full, reusable."""
        if self._closed:
            conn.abort()
            return
        waiters = self._waiters
        while waiters:
            origin, waiter = waiters.popleft()
            if waiter.done():
                continue
            if origin == conn.origin:
                waiter.set_result(conn)
            else:  # hand its slot over
                conn.counted = False
                conn.abort()
                waiter.set_result(None)
            return
        now = conn.loop.time()
        conn.idle_since = now
        idle = self._idle.get(conn.origin)
        if idle is None:
            idle = self._idle[conn.origin] = deque()
        idle.append(conn)
        expiry = self._expiry
        while idle:  # lazily drop the oldest ones, dead or expired
            oldest = idle[0]
            if oldest.closed:
                idle.popleft()
            elif now - oldest.idle_since > expiry:
                idle.popleft().abort()
            else:
                break

    def _forget(self, conn: _Connection) -> None:
        """A connection is closed: forget it and free its slot (unless handed over)."""
        self._connections.discard(conn)
        if conn.counted:
            conn.counted = False
            self._free_slot()

    def _free_slot(self) -> None:
        waiters = self._waiters
        while waiters:
            _, waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._total -= 1

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, origin: Origin, limit: float | None
    ) -> _Connection:
        scheme, host, port = origin
        conn = _Connection(self, origin, loop)
        context: ssl.SSLContext | None = None
        if scheme == "https":
            context = self._ssl_context()
        try:
            async with asyncio.timeout(limit):
                transport, _ = await loop.create_connection(
                    lambda: conn, host, port, ssl=context, server_hostname=host if context else None
                )
        except TimeoutError as exc:
            conn.counted = False
            raise httpx.ConnectTimeout(
                f"could not connect to {host}:{port} within {limit:g}s"
            ) from exc
        except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError)
            conn.counted = False
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        except BaseException:
            conn.counted = False
            if conn.transport is not None:
                conn.transport.abort()
            raise
        conn.transport = transport  # uvloop may call connection_made only after this
        if self._closed:
            conn.counted = False
            conn.abort()
            raise httpx.ConnectError("the transport was closed")
        self._connections.add(conn)
        return conn

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            context = ssl.create_default_context()
            if self._verify is False:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._ssl = context
        return self._ssl


def _request_head(request: httpx.Request, streamed: bool) -> bytes:
    """Request line and headers, ``Host`` first when httpx left it out."""
    method = request.method
    parts = [_METHODS.get(method) or method.encode("ascii"), b" ", request.url.raw_path]
    parts.append(b" HTTP/1.1\r\n")
    has_host = False
    has_length = False
    for name, value in request.headers.raw:
        lowered = name.lower()
        if lowered == b"host":
            has_host = True
        elif lowered in (b"content-length", b"transfer-encoding"):
            has_length = True
        parts.append(b"%b: %b\r\n" % (name, value))
    if not has_host:
        parts.insert(4, b"Host: %b\r\n" % request.url.netloc)  # after the request line
    if streamed and not has_length:
        parts.append(b"Transfer-Encoding: chunked\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def _is_chunked(request: httpx.Request) -> bool:
    if "content-length" in request.headers:
        return False
    encoding = request.headers.get("transfer-encoding")
    return encoding is None or encoding.lower().endswith("chunked")
