"""A lean HTTP/1.1 client for load generation.

One asyncio protocol per keep-alive connection and the C ``httptools`` response parser, so
the generator's own CPU stays small next to the server it measures on the same machine.
``data_received`` reads the clock before parsing: every timestamp is when the bytes
arrived, and body observers get that time with each piece.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools

# Servers close idle keep-alive connections (uvicorn after 5 s); one idle that long is not
# reused, or the generator would measure its own stale connections as errors.
IDLE_EXPIRY_SECONDS = 4.0

BodyObserver = Callable[[float, bytes], None]  # (arrival time, piece of the body)


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> tuple[Origin, str]:
        """The origin of ``url`` and its path (without a trailing slash)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port), parts.path.rstrip("/")

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(slots=True)
class Exchange:
    """One request and what came back. Times are ``time.perf_counter()`` seconds."""

    sent: float = 0.0
    first_byte: float | None = None
    done: float | None = None
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray | None = None  # kept only when asked for
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and 200 <= self.status < 300


class _Stale(Exception):
    """A reused connection closed before answering: send again on a new one."""


class _Connection(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.reused = False
        self.exchange: Exchange | None = None
        self.observer: BodyObserver | None = None
        self.finished: asyncio.Future[bool] | None = None  # result: keep-alive allowed
        self.parser: httptools.HttpResponseParser | None = None
        self.now = 0.0

    # asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.now = now = time.perf_counter()  # before anything else: arrival time
        exchange = self.exchange
        if exchange is None or self.parser is None:
            self.abort()  # bytes nobody asked for
            return
        if exchange.first_byte is None:
            exchange.first_byte = now
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._finish(error=f"bad response: {exc}", at=now)
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        exchange = self.exchange
        if exchange is not None and self.finished is not None and not self.finished.done():
            now = time.perf_counter()
            if exchange.first_byte is None and self.reused:
                self.finished.set_exception(_Stale())
            elif exc is None and exchange.status and _until_close(exchange.headers):
                self._finish(at=now)  # a body delimited by the end of the connection
            else:
                error = "connection closed" if exc is None else type(exc).__name__
                self._finish(error=error, at=now)

    # httptools callbacks ------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.exchange is not None
        self.exchange.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        assert self.exchange is not None
        assert self.parser is not None
        self.exchange.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        exchange = self.exchange
        assert exchange is not None
        if exchange.body is not None:
            exchange.body += body
        if self.observer is not None:
            self.observer(self.now, body)

    def on_message_complete(self) -> None:
        assert self.parser is not None
        self._finish(keep_alive=self.parser.should_keep_alive(), at=self.now)

    # ------------------------------------------------------------------------------------

    def start(self, exchange: Exchange, observer: BodyObserver | None) -> asyncio.Future[bool]:
        self.exchange = exchange
        self.observer = observer
        self.parser = httptools.HttpResponseParser(self)
        self.finished = self.loop.create_future()
        return self.finished

    def _finish(self, *, at: float, keep_alive: bool = False, error: str | None = None) -> None:
        exchange, finished = self.exchange, self.finished
        if exchange is None or finished is None or finished.done():
            return
        exchange.done = at
        exchange.error = error
        finished.set_result(keep_alive and error is None)

    def release(self) -> None:
        self.exchange = self.observer = self.finished = self.parser = None
        self.reused = True
        self.idle_since = time.monotonic()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class Client:
    """Requests to one origin over pooled keep-alive connections (as many as are needed at
    once: an open-loop generator must never queue behind its own pool)."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 120.0,
        verify: bool = True,
    ) -> None:
        self.origin, self.base_path = Origin.parse(base_url)
        self.timeout = timeout
        fixed = {"Host": self.origin.host_header, "User-Agent": "onebox-bench", **(headers or {})}
        self._head_lines = "".join(f"{name}: {value}\r\n" for name, value in fixed.items())
        self._idle: list[_Connection] = []
        self._ssl: ssl.SSLContext | None = None
        if self.origin.scheme == "https":
            self._ssl = ssl.create_default_context()
            if not verify:
                self._ssl.check_hostname = False
                self._ssl.verify_mode = ssl.CERT_NONE

    def raw_request(
        self, method: str, path: str, body: bytes = b"", content_type: str | None = None
    ) -> bytes:
        """The bytes of a request, built once and sent as often as wanted."""
        head = f"{method} {self.base_path}{path} HTTP/1.1\r\n{self._head_lines}"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        if body or method in ("POST", "PUT", "PATCH"):
            head += f"Content-Length: {len(body)}\r\n"
        return head.encode("latin-1") + b"\r\n" + body

    async def send(
        self,
        raw: bytes,
        *,
        observer: BodyObserver | None = None,
        keep_body: bool = False,
    ) -> Exchange:
        """Sends ``raw`` (see :meth:`raw_request`); never raises for HTTP or network trouble:
        the exchange carries the error."""
        loop = asyncio.get_running_loop()
        for _attempt in range(2):
            exchange = Exchange(body=bytearray() if keep_body else None)
            try:
                connection = await self._acquire(loop)
            except (OSError, TimeoutError) as exc:
                exchange.sent = time.perf_counter()
                exchange.done = exchange.sent
                exchange.error = f"connect: {type(exc).__name__}"
                return exchange
            finished = connection.start(exchange, observer)
            timer = loop.call_later(self.timeout, _time_out, connection)
            exchange.sent = time.perf_counter()
            assert connection.transport is not None
            connection.transport.write(raw)
            try:
                keep_alive = await finished
            except _Stale:
                continue
            except asyncio.CancelledError:
                connection.abort()
                raise
            finally:
                timer.cancel()
            if keep_alive and not connection.closed:
                connection.release()
                self._idle.append(connection)
            else:
                connection.abort()
            return exchange
        exchange.error = "connection closed"
        exchange.done = time.perf_counter()
        return exchange

    async def _acquire(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and now - connection.idle_since < IDLE_EXPIRY_SECONDS:
                return connection
            connection.abort()
        origin = self.origin
        connection = _Connection(loop)
        async with asyncio.timeout(min(self.timeout, 30.0)):
            await loop.create_connection(
                lambda: connection,
                origin.host,
                origin.port,
                ssl=self._ssl,
                server_hostname=origin.host if self._ssl else None,
            )
        return connection

    def close(self) -> None:
        for connection in self._idle:
            connection.abort()
        self._idle.clear()


def _time_out(connection: _Connection) -> None:
    connection._finish(error="timeout", at=time.perf_counter())
    connection.abort()


def _until_close(headers: Mapping[str, str]) -> bool:
    return "content-length" not in headers and "chunked" not in headers.get("transfer-encoding", "")
