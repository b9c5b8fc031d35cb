"""The pool side of :mod:`onebox.llm.transport`: :class:`FastTransport`, which keeps idle
connections per origin, bounds them and hands them to waiting requests."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque

import httpx

from onebox.llm.transport_conn import (
    _COALESCE_LIMIT,
    _DEFAULT_PORTS,
    _METHODS,
    _NO_TIMEOUTS,
    _POOL_CLOSED,
    _TIMED_OUT,
    Origin,
    _Connection,
    _expire,
    _Response,
    _StaleConnection,
)

__all__ = ["FastTransport"]


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
        origin = _origin(request.url)
        timeouts = request.extensions.get("timeout") or _NO_TIMEOUTS
        try:
            body: bytes | None = request.content
        except httpx.RequestNotRead:
            body = None  # a streamed body: sent as it comes, never replayed
        head = _request_head(request, body is None)
        if body is not None and len(body) <= _COALESCE_LIMIT:
            head += body
            body = b""
        return await self._send(origin, request, head, body, timeouts)

    async def send_prepared(
        self, url: httpx.URL, message: bytes, timeouts: dict[str, float | None]
    ) -> httpx.Response:
        """Sends ``message``, a whole request already in bytes (request line, ``Host``,
        ``Content-Length``, the body), to ``url``'s origin, as :meth:`handle_async_request`
        would have sent it: for a caller that sends the same request shape again and again
        and can skip building an :class:`httpx.Request` (the response's ``request`` is
        unset). Not a ``HEAD`` request."""
        if self._closed:
            raise RuntimeError("the transport is closed")
        return await self._send(_origin(url), None, message, b"", timeouts)

    async def _send(
        self,
        origin: Origin,
        request: httpx.Request | None,
        head: bytes,
        body: bytes | None,
        timeouts: dict[str, float | None],
    ) -> httpx.Response:
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
        request: httpx.Request | None,
        head: bytes,
        body: bytes | None,
        timeouts: dict[str, float | None],
    ) -> httpx.Response:
        """``request`` is None for :meth:`send_prepared`'s requests (buffered, never
        ``HEAD``)."""
        transport = conn.transport
        assert transport is not None
        head_only = request is not None and request.method == "HEAD"
        response = _Response(conn, loop, timeouts.get("read"), head_only)
        conn.response = response
        try:
            if conn.closed:  # the server closed it between release and now
                conn.connection_lost(None)
            else:
                transport.write(head)
                if body:
                    transport.write(body)
                elif body is None:
                    assert request is not None
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


def _origin(url: httpx.URL) -> Origin:
    scheme = url.scheme
    port = url.port or _DEFAULT_PORTS.get(scheme)
    if port is None:
        raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
    return (scheme, url.raw_host.decode("ascii"), port)


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
