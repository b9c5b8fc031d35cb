"""FastTransport against real servers on loopback: the fake OpenAI upstream, and small
asyncio servers written here for each edge case (framing, keep-alive, stale connections,
timeouts, the pool, early close, TLS)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from onebox.llm.transport import FastTransport
from onebox.testing.fake_upstream import FakeUpstream, reply_deltas, start_fake_upstream
from tests.conftest import free_port

MODEL = "fake-model"
TIMEOUT = httpx.Timeout(5.0)


# --------------------------------------------------------------------------------------
# A scriptable HTTP/1.1 server


class Peer:
    """The server side of one accepted connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int):
        self.reader = reader
        self.writer = writer
        self.index = index  # 1 for the first connection the server accepted
        self.requests = 0  # requests read on this connection

    async def read_request(self) -> tuple[bytes, bytes] | None:
        """``(head, body)`` of the next request, or None at EOF before one."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        lowered = head.lower()
        body = b""
        if b"transfer-encoding: chunked" in lowered:
            pieces = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                data = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                pieces.append(data[:-2])
            body = b"".join(pieces)
        elif b"content-length:" in lowered:
            length = int(lowered.split(b"content-length:")[1].split(b"\r\n")[0])
            body = await self.reader.readexactly(length)
        self.requests += 1
        return head, body

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def wait_closed_by_client(self, seconds: float = 3.0) -> bool:
        """Whether the client closed the connection (EOF or reset) within ``seconds``."""
        try:
            async with asyncio.timeout(seconds):
                while await self.reader.read(65536):
                    pass
        except TimeoutError:
            return False
        except ConnectionError:
            pass
        return True


Handler = Callable[[Peer], Awaitable[None]]


class Server:
    """``asyncio.start_server`` on 127.0.0.1 running ``handler`` per connection; counts
    accepted connections and closes everything on exit (no ResourceWarnings)."""

    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.accepted = 0
        self.closed = 0
        self.peers: list[Peer] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.accepted += 1
        peer = Peer(reader, writer, self.accepted)
        self.peers.append(peer)
        try:
            await self.handler(peer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # our own teardown; ending normally keeps asyncio.streams from logging it
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self.closed += 1
            self._tasks.discard(task)

    async def connections_ended(self, count: int, seconds: float = 2.0) -> bool:
        """Whether ``count`` handlers have returned (for ``keepalive_ok``: the client
        closed the connection) within ``seconds``."""
        deadline = time.monotonic() + seconds
        while self.closed < count:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(
            self._client, "127.0.0.1", 0, ssl=self.ssl_context
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()


def ok(body: bytes = b"ok", *extra: bytes) -> bytes:
    headers = b"".join(line + b"\r\n" for line in extra)
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%b\r\n%b" % (len(body), headers, body)


async def keepalive_ok(peer: Peer) -> None:
    while await peer.read_request() is not None:
        await peer.send(ok(b"ok %d/%d" % (peer.index, peer.requests)))


@contextlib.asynccontextmanager
async def fast_client(
    max_connections: int = 100,
    keepalive_expiry: float | None = 30.0,
    verify: bool | ssl.SSLContext = True,
) -> AsyncIterator[httpx.AsyncClient]:
    transport = FastTransport(
        max_connections=max_connections, keepalive_expiry=keepalive_expiry, verify=verify
    )
    async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as client:
        yield client


# --------------------------------------------------------------------------------------
# Against the fake OpenAI upstream


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with start_fake_upstream(model=MODEL) as fake:
        yield fake


@pytest.fixture
def fake(upstream: FakeUpstream) -> FakeUpstream:
    upstream.configure(ttft_ms=0, tokens_per_second=0, tokens=16, fail_mode="none")
    upstream.reset()
    return upstream


def chat_body(content: str = "hello world") -> dict[str, object]:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "stream": True,
        "max_tokens": 64,
    }


def deltas_from_sse(lines: list[str]) -> list[str]:
    contents = []
    for line in lines:
        if line.startswith("data: ") and line != "data: [DONE]":
            for choice in json.loads(line[6:])["choices"]:
                if choice["delta"].get("content"):
                    contents.append(choice["delta"]["content"])
    return contents


@pytest.mark.anyio
async def test_sse_stream_from_the_fake_upstream_reuses_one_connection(
    fake: FakeUpstream,
) -> None:
    before = fake.stats()["connections_total"]
    async with fast_client() as client:
        for index in range(20):
            async with client.stream(
                "POST", f"{fake.url}/chat/completions", json=chat_body(f"n{index}")
            ) as response:
                assert response.status_code == 200
                assert response.headers["content-type"] == "text/event-stream"
                assert response.http_version == "HTTP/1.1"
                lines = [line async for line in response.aiter_lines()]
            assert lines[-2:] == ["data: [DONE]", ""] or lines[-1] == "data: [DONE]"
            assert deltas_from_sse(lines) == reply_deltas(f"n{index}", tokens=16)
        non_streamed = await client.post(
            f"{fake.url}/chat/completions", json={**chat_body(), "stream": False}
        )
        assert non_streamed.json()["choices"][0]["message"]["content"].startswith("Echo: hello")
        models = await client.get(f"{fake.url}/models")
        assert models.json()["data"][0]["id"] == MODEL
    stats = fake.stats()
    assert stats["connections_total"] - before == 1
    assert stats["completed"] == 21


@pytest.mark.anyio
async def test_concurrent_streams_stay_within_max_connections(fake: FakeUpstream) -> None:
    fake.configure(tokens_per_second=200, tokens=8)
    before = fake.stats()["connections_total"]
    transport = FastTransport(max_connections=4)
    async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as client:

        async def one(index: int) -> list[str]:
            async with client.stream(
                "POST", f"{fake.url}/chat/completions", json=chat_body(f"c{index}")
            ) as response:
                return deltas_from_sse([line async for line in response.aiter_lines()])

        results = await asyncio.gather(*(one(index) for index in range(24)))
        assert transport.connection_count <= 4
        assert transport.idle_count == transport.connection_count
    for index, deltas in enumerate(results):
        assert deltas == reply_deltas(f"c{index}", tokens=8)
    assert fake.stats()["connections_total"] - before == 4


@pytest.mark.anyio
async def test_closing_a_stream_early_disconnects_the_fake_upstream(fake: FakeUpstream) -> None:
    fake.configure(tokens=500, tokens_per_second=50)
    async with fast_client() as client:
        async with client.stream(
            "POST", f"{fake.url}/chat/completions", json=chat_body()
        ) as response:
            async for line in response.aiter_lines():
                if "Echo:" in line:
                    break
        deadline = time.monotonic() + 3
        while (stats := await fake.astats())["disconnects"] != 1:
            assert time.monotonic() < deadline, stats
            await asyncio.sleep(0.02)
        assert stats["active_streams"] == 0


# --------------------------------------------------------------------------------------
# Framing


@pytest.mark.anyio
async def test_content_length_body_and_the_request_sent() -> None:
    seen: list[tuple[bytes, bytes]] = []

    async def handler(peer: Peer) -> None:
        while (request := await peer.read_request()) is not None:
            seen.append(request)
            await peer.send(ok(b"hello", b"X-Custom: yes", b"Set-Cookie: a=b"))

    async with Server(handler) as server, fast_client() as client:
        response = await client.post(
            f"{server.url}/v1/chat?x=1&y=%20",
            json={"a": 1},
            headers={"Authorization": "Bearer k"},
        )
        assert response.status_code == 200
        assert response.reason_phrase == "OK"
        assert response.headers["x-custom"] == "yes"
        assert response.content == b"hello"
        get = await client.get(f"{server.url}/models")
        assert get.text == "hello"
    head, body = seen[0]
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v1/chat?x=1&y=%20 HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}" in lines
    assert "Authorization: Bearer k" in lines
    assert "Content-Type: application/json" in lines
    assert json.loads(body) == {"a": 1}
    assert seen[1][0].startswith(b"GET /models HTTP/1.1\r\n")
    assert server.accepted == 1


@pytest.mark.anyio
async def test_chunked_body_with_odd_chunk_sizes_and_splits() -> None:
    payload = bytes(range(256)) * 40
    sizes = [1, 2, 3, 0x1F, 0x100, 4097]

    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            wire = bytearray(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            offset = 0
            index = 0
            while offset < len(payload):
                size = sizes[index % len(sizes)]
                piece = payload[offset : offset + size]
                # Upper-case hex and a chunk extension, both legal.
                wire += b"%X;ext=1\r\n%b\r\n" % (len(piece), piece)
                offset += size
                index += 1
            wire += b"0\r\nX-Trailer: t\r\n\r\n"
            for start in range(0, len(wire), 7):  # split the framing everywhere
                peer.writer.write(wire[start : start + 7])
                if start % 700 == 0:
                    await peer.writer.drain()
                    await asyncio.sleep(0)
            await peer.writer.drain()

    async with Server(handler) as server, fast_client() as client:
        for _ in range(2):
            response = await client.get(server.url)
            assert response.content == payload
        assert server.accepted == 1


@pytest.mark.anyio
async def test_body_delimited_by_the_end_of_the_connection() -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        if peer.index == 1:
            await peer.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart one, ")
            await asyncio.sleep(0.05)
            await peer.send(b"part two")
        else:
            await peer.send(b"HTTP/1.0 200 OK\r\n\r\nold server")

    async with Server(handler) as server, fast_client() as client:
        first = await client.get(server.url)
        assert first.content == b"part one, part two"
        second = await client.get(server.url)
        assert second.http_version == "HTTP/1.0"
        assert second.content == b"old server"
        assert server.accepted == 2


@pytest.mark.anyio
async def test_connection_close_is_honoured() -> None:
    closed_by_client: list[bool] = []

    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(ok(b"bye", b"Connection: close"))
        closed_by_client.append(await peer.wait_closed_by_client(seconds=1))

    async with Server(handler) as server, fast_client() as client:
        for _ in range(3):
            assert (await client.get(server.url)).text == "bye"
        assert server.accepted == 3
        assert await server.connections_ended(3)
    assert closed_by_client == [True, True, True]  # the client closed each one itself


@pytest.mark.anyio
async def test_interim_100_continue_is_skipped_and_204_has_no_body() -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"final"))
        await peer.read_request()
        await peer.send(b"HTTP/1.1 204 No Content\r\n\r\n")
        await peer.read_request()
        await peer.send(ok(b"after"))

    async with Server(handler) as server, fast_client() as client:
        assert (await client.post(server.url, content=b"x")).text == "final"
        empty = await client.get(server.url)
        assert empty.status_code == 204
        assert empty.content == b""
        assert (await client.get(server.url)).text == "after"
        assert server.accepted == 1


@pytest.mark.anyio
async def test_streamed_request_body_is_sent_chunked() -> None:
    received: list[bytes] = []

    async def handler(peer: Peer) -> None:
        while (request := await peer.read_request()) is not None:
            head, body = request
            assert b"transfer-encoding: chunked" in head.lower()
            received.append(body)
            await peer.send(ok(b"got %d" % len(body)))

    async def parts() -> AsyncIterator[bytes]:
        for index in range(5):
            yield b"part%d;" % index
            await asyncio.sleep(0)

    async with Server(handler) as server, fast_client() as client:
        response = await client.post(server.url, content=parts())
        assert response.text == "got 30"
    assert received == [b"part0;part1;part2;part3;part4;"]


@pytest.mark.anyio
async def test_large_body_with_flow_control() -> None:
    payload = b"0123456789abcdef" * (6 * 65536)  # 6 MiB, more than the 1 MiB high-water

    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(ok(payload))

    async with Server(handler) as server, fast_client() as client:
        async with client.stream("GET", server.url) as response:
            await asyncio.sleep(0.2)  # let the transport fill its buffer and pause
            total = bytearray()
            async for chunk in response.aiter_raw():
                total += chunk
        assert bytes(total) == payload
        assert (await client.get(server.url)).content == payload  # connection reused
        assert server.accepted == 1


# --------------------------------------------------------------------------------------
# Streaming and early close


@pytest.mark.anyio
async def test_each_chunk_is_readable_as_soon_as_it_arrives() -> None:
    second_sent_at: list[float] = []

    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nchunk1\r\n")
        await asyncio.sleep(0.3)
        second_sent_at.append(time.monotonic())
        await peer.send(b"6\r\nchunk2\r\n0\r\n\r\n")

    async with (
        Server(handler) as server,
        fast_client() as client,
        client.stream("GET", server.url) as response,
    ):
        chunks = response.aiter_raw()
        assert await anext(chunks) == b"chunk1"
        first_at = time.monotonic()
        assert not second_sent_at  # chunk 1 was readable before chunk 2 was sent
        assert await anext(chunks) == b"chunk2"
        assert [rest async for rest in chunks] == []
    assert second_sent_at[0] - first_at >= 0.2


@pytest.mark.anyio
async def test_early_aclose_closes_the_connection_at_once() -> None:
    closed_by_client: list[bool] = []

    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        closed_by_client.append(await peer.wait_closed_by_client(seconds=2))

    async with Server(handler) as server, fast_client(max_connections=1) as client:
        started = time.monotonic()
        async with client.stream("GET", server.url) as response:
            async for chunk in response.aiter_raw():
                assert chunk == b"first"
                break
        for _ in range(100):
            if closed_by_client:
                break
            await asyncio.sleep(0.01)
        assert closed_by_client == [True]
        assert time.monotonic() - started < 1
        # The slot is free again: a new connection is opened.
        async with client.stream("GET", server.url) as response:
            assert await anext(response.aiter_raw()) == b"first"
        assert server.accepted == 2


@pytest.mark.anyio
async def test_server_closing_mid_body_is_a_remote_protocol_error() -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")

    async with (
        Server(handler) as server,
        fast_client() as client,
        client.stream("GET", server.url) as response,
    ):
        chunks = response.aiter_raw()
        assert await anext(chunks) == b"only this"
        with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
            await anext(chunks)


@pytest.mark.anyio
async def test_malformed_response_is_a_remote_protocol_error() -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"NOT HTTP AT ALL\r\n\r\n")
        await peer.wait_closed_by_client()

    async with Server(handler) as server, fast_client() as client:
        with pytest.raises(httpx.RemoteProtocolError, match="malformed response"):
            await client.get(server.url)


@pytest.mark.anyio
async def test_protocol_upgrade_is_refused() -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\n\r\n\x81\x00"
        )
        await peer.wait_closed_by_client()

    async with Server(handler) as server, fast_client() as client:
        with pytest.raises(httpx.RemoteProtocolError, match="upgrade"):
            await client.get(server.url)


# --------------------------------------------------------------------------------------
# Keep-alive: reuse, stale connections, expiry


@pytest.mark.anyio
async def test_keep_alive_reuses_one_connection() -> None:
    async with Server(keepalive_ok) as server, fast_client() as client:
        texts = [(await client.get(server.url)).text for _ in range(10)]
        assert texts == [f"ok 1/{index}" for index in range(1, 11)]
        assert server.accepted == 1


@pytest.mark.anyio
async def test_idle_connection_closed_by_the_server_is_not_reused() -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(ok(b"once"))  # keep-alive promised, then closed while idle

    async with Server(handler) as server, fast_client() as client:
        assert (await client.get(server.url)).text == "once"
        await asyncio.sleep(0.1)  # the EOF reaches the client while the connection is idle
        assert (await client.get(server.url)).text == "once"
        assert server.accepted == 2


@pytest.mark.anyio
async def test_stale_keep_alive_connection_is_retried_once_on_a_new_one() -> None:
    """The server reads the second request on a connection and closes without answering,
    as when its keep-alive timeout fires just as the request is sent."""
    requests_read: list[int] = []

    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            requests_read.append(peer.index)
            if peer.requests == 2:
                return  # closes the connection, nothing sent
            await peer.send(ok(b"conn %d" % peer.index))

    async with Server(handler) as server, fast_client() as client:
        assert (await client.post(server.url, json={"n": 1})).text == "conn 1"
        assert (await client.post(server.url, json={"n": 2})).text == "conn 2"
        assert requests_read == [1, 1, 2]
        assert server.accepted == 2

        # A streamed body cannot be replayed: the error surfaces instead.
        async def body() -> AsyncIterator[bytes]:
            yield b"once"

        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(server.url, content=body())
        assert server.accepted == 2


@pytest.mark.anyio
async def test_new_connection_closed_without_answer_is_not_retried() -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()  # and close

    async with Server(handler) as server, fast_client() as client:
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            await client.post(server.url, json={})
        assert server.accepted == 1


@pytest.mark.anyio
async def test_reset_on_a_reused_connection_is_retried() -> None:
    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            if peer.requests == 2:
                transport = peer.writer.transport
                sock = transport.get_extra_info("socket")
                linger = struct.pack("ii", 1, 0)  # on, 0 s: close() sends a reset
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                transport.abort()
                return
            await peer.send(ok(b"conn %d" % peer.index))

    async with Server(handler) as server, fast_client() as client:
        assert (await client.post(server.url, content=b"1")).text == "conn 1"
        assert (await client.post(server.url, content=b"2")).text == "conn 2"


@pytest.mark.anyio
async def test_keepalive_expiry_drops_old_idle_connections() -> None:
    async with (
        Server(keepalive_ok) as server,
        fast_client(keepalive_expiry=0.1) as client,
    ):
        assert (await client.get(server.url)).text == "ok 1/1"
        assert (await client.get(server.url)).text == "ok 1/2"
        await asyncio.sleep(0.2)
        assert (await client.get(server.url)).text == "ok 2/1"
        assert server.accepted == 2
        assert await server.connections_ended(1)  # the expired one, closed by the client


@pytest.mark.anyio
async def test_aclose_closes_pooled_connections() -> None:
    async with Server(keepalive_ok) as server:
        transport = FastTransport()
        async with httpx.AsyncClient(transport=transport) as client:
            await asyncio.gather(*(client.get(server.url) for _ in range(3)))
            assert transport.idle_count == transport.connection_count == server.accepted == 3
        assert transport.connection_count == 0
        assert await server.connections_ended(3)


# --------------------------------------------------------------------------------------
# Timeouts and errors


@pytest.mark.anyio
async def test_server_that_never_answers_is_a_read_timeout() -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.wait_closed_by_client(seconds=10)

    async with Server(handler) as server, fast_client(max_connections=1) as client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await client.get(server.url, timeout=httpx.Timeout(5, read=0.2))
        assert 0.18 <= time.monotonic() - started < 2
        assert await server.connections_ended(1)
        # The slot came back: the next request opens a new connection.
        with pytest.raises(httpx.ReadTimeout):
            await client.get(server.url, timeout=httpx.Timeout(5, read=0.05))
        assert server.accepted == 2


@pytest.mark.anyio
async def test_stall_mid_body_is_a_read_timeout() -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await peer.wait_closed_by_client(seconds=10)

    async with (
        Server(handler) as server,
        fast_client() as client,
        client.stream("GET", server.url, timeout=httpx.Timeout(5, read=0.2)) as response,
    ):
        chunks = response.aiter_raw()
        assert await anext(chunks) == b"abc"
        with pytest.raises(httpx.ReadTimeout):
            await anext(chunks)


@pytest.mark.anyio
async def test_server_that_does_not_read_is_a_write_timeout() -> None:
    async def handler(peer: Peer) -> None:
        await asyncio.sleep(10)  # reads nothing: the socket buffers fill up

    async with Server(handler) as server, fast_client() as client:
        with pytest.raises(httpx.WriteTimeout):
            await client.post(
                server.url, content=b"x" * (64 * 1024 * 1024), timeout=httpx.Timeout(5, write=0.2)
            )


@pytest.mark.anyio
async def test_nothing_listening_is_a_connect_error() -> None:
    port = free_port()
    async with fast_client() as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.get(f"http://127.0.0.1:{port}/")
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


@pytest.mark.anyio
async def test_connect_timeout() -> None:
    # A listening socket whose accept backlog is full does not complete handshakes.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(8):  # fill the backlog (its exact size depends on the kernel)
                filler = socket.socket()
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", port))
                fillers.append(filler)
            async with fast_client() as client:
                try:
                    await client.get(
                        f"http://127.0.0.1:{port}/", timeout=httpx.Timeout(5, connect=0.2)
                    )
                except httpx.ConnectTimeout:
                    pass
                except httpx.TransportError as exc:  # pragma: no cover - kernel dependent
                    pytest.skip(f"this kernel completed or refused the handshake: {exc!r}")
                else:  # pragma: no cover
                    pytest.skip("this kernel completed the handshake despite the backlog")
        finally:
            for filler in fillers:
                filler.close()


@pytest.mark.anyio
async def test_pool_exhaustion_is_a_pool_timeout_and_waiters_are_served_fifo() -> None:
    release = asyncio.Event()

    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbu")
            await release.wait()
            await peer.send(b"sy")
            release.clear()

    async with Server(handler) as server, fast_client(max_connections=1) as client:
        async with client.stream("GET", server.url) as held:
            with pytest.raises(httpx.PoolTimeout):
                await client.get(server.url, timeout=httpx.Timeout(5, pool=0.1))

            order: list[int] = []

            async def waiter(index: int) -> None:
                response = await client.get(server.url, timeout=httpx.Timeout(5, pool=5))
                assert response.text == "busy"
                order.append(index)

            waiters = [asyncio.create_task(waiter(index)) for index in range(3)]
            await asyncio.sleep(0.05)
            release.set()
            assert await held.aread() == b"busy"
        for _ in range(3):
            for _ in range(100):
                if not release.is_set():
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.02)
            release.set()
        await asyncio.gather(*waiters)
        assert order == [0, 1, 2]
        assert server.accepted == 1


@pytest.mark.anyio
async def test_cancelled_request_frees_its_connection_slot() -> None:
    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            if peer.index == 1:
                await peer.wait_closed_by_client(seconds=10)
                return
            await peer.send(ok())

    async with Server(handler) as server, fast_client(max_connections=1) as client:
        task = asyncio.create_task(client.get(server.url))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await server.connections_ended(1)
        response = await client.get(server.url, timeout=httpx.Timeout(5, pool=0.5))
        assert response.text == "ok"


@pytest.mark.anyio
async def test_at_the_cap_an_idle_connection_of_another_origin_is_evicted() -> None:
    async with (
        Server(keepalive_ok) as first,
        Server(keepalive_ok) as second,
        fast_client(max_connections=1) as client,
    ):
        assert (await client.get(first.url)).text == "ok 1/1"
        response = await client.get(second.url, timeout=httpx.Timeout(5, pool=0.2))
        assert response.text == "ok 1/1"
        assert await first.connections_ended(1)


@pytest.mark.anyio
async def test_unsupported_scheme() -> None:
    async with fast_client() as client:
        with pytest.raises(httpx.UnsupportedProtocol):
            await client.get("ftp://127.0.0.1/")


# --------------------------------------------------------------------------------------
# TLS


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command line tool is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.anyio
async def test_https_with_verification(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))

    async with Server(keepalive_ok, ssl_context=server_context) as server:
        async with fast_client(verify=trusting) as client:
            assert (await client.get(server.url)).text == "ok 1/1"
            assert (await client.get(server.url)).text == "ok 1/2"
        async with fast_client(verify=False) as client:
            assert (await client.get(server.url)).text == "ok 2/1"
        async with fast_client() as client:  # the system CAs do not know this certificate
            with pytest.raises(httpx.ConnectError) as caught:
                await client.get(server.url)
            assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)
