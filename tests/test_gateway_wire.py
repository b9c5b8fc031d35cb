"""The gateway's shortcuts on the wire: the upstream request written straight to Onebox's
transport is the request the httpx client would have sent; SSE events that orjson refuses
are still read as before; uvicorn's response head travels with the first body bytes but is
never held while the application waits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn

from onebox.core.db import new_id
from onebox.core.requestid import request_id
from onebox.llm.base import ChatMessage, ChatRequest, GenerationParams, TextDelta, Usage
from onebox.llm.openai_compat import OpenAICompatProvider
from onebox.llm.openai_sse import _SseParser
from onebox.llm.transport import FastTransport
from onebox.serving_protocol import CoalescingHttpToolsProtocol, HeadWithBody, http_protocol
from tests.conftest import free_port

_STREAM = (
    b'data: {"choices":[{"index":0,"delta":{"content":"caf\xc3\xa9"},"finish_reason":null}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":7,"completion_tokens":1}}\n\n'
    b"data: [DONE]\n\n"
)


@contextlib.asynccontextmanager
async def recording_upstream() -> AsyncIterator[tuple[str, list[tuple[list[bytes], bytes]]]]:
    """A loopback HTTP/1.1 server that keeps each request's header lines and body and
    answers every one with the same short completion stream."""
    seen: list[tuple[list[bytes], bytes]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")[:-2]
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in lines
                    if line.lower().startswith(b"content-length:")
                )
                seen.append((lines, await reader.readexactly(length)))
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"content-length: %d\r\n\r\n%b" % (len(_STREAM), _STREAM)
                )
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/v1", seen


def _headers(lines: list[bytes]) -> dict[bytes, bytes]:
    return {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(b":") for line in lines[1:])
    }


async def _one_call(client: httpx.AsyncClient, url: str, **options: Any) -> list[str]:
    provider = OpenAICompatProvider(
        model_name="public", context_size=4096, base_url=url, upstream_model="up",
        client=client, max_retries=0, **options,
    )  # fmt: skip
    request = ChatRequest(
        messages=[ChatMessage("system", "Sé bref."), ChatMessage("user", "hello")],
        params=GenerationParams(max_tokens=16, temperature=0.7, top_p=0.95, stop=("\n",)),
    )
    texts: list[str] = []
    async with contextlib.aclosing(provider.stream_chat(request)) as stream:
        async for chunk in stream:
            if isinstance(chunk, TextDelta):
                texts.append(chunk.text)
            else:
                assert isinstance(chunk, Usage)
                assert (chunk.prompt_tokens, chunk.completion_tokens) == (7, 1)
    return texts


@pytest.mark.anyio
async def test_the_direct_request_is_what_the_client_would_send() -> None:
    options: dict[str, Any] = {
        "api_key": "sk-secret",
        "extra_headers": {"X-Team": "blue"},
        "extra_body": {"repetition_penalty": 1.1, "meta": {"ünï": [1, 2.5, None]}},
    }
    async with recording_upstream() as (url, seen):
        token = request_id.set("req-123")
        try:
            async with httpx.AsyncClient(headers={"X-Client": "c"}) as plain:
                assert await _one_call(plain, url, **options) == ["café"]
            fast = httpx.AsyncClient(headers={"X-Client": "c"}, transport=FastTransport())
            async with fast:
                assert await _one_call(fast, url, **options) == ["café"]
                request_id.set(None)
                assert await _one_call(fast, url, **options) == ["café"]  # no request id
        finally:
            request_id.reset(token)
    (plain_lines, plain_body), (fast_lines, fast_body), (untraced, _) = seen
    assert fast_lines[0] == plain_lines[0] == b"POST /v1/chat/completions HTTP/1.1"
    assert _headers(fast_lines) == _headers(plain_lines)
    assert _headers(fast_lines)[b"x-request-id"] == b"req-123"
    assert _headers(fast_lines)[b"authorization"] == b"Bearer sk-secret"
    assert b"x-request-id" not in _headers(untraced)
    assert json.loads(fast_body) == json.loads(plain_body)
    assert json.loads(fast_body)["meta"] == {"ünï": [1, 2.5, None]}


@pytest.mark.anyio
async def test_extra_body_orjson_cannot_encode_goes_the_slow_way() -> None:
    async with (
        recording_upstream() as (url, seen),
        httpx.AsyncClient(transport=FastTransport()) as fast,
    ):
        assert await _one_call(fast, url, extra_body={"logit_bias": {50256: -100}}) == ["café"]
    assert json.loads(seen[0][1])["logit_bias"] == {"50256": -100}


@pytest.mark.parametrize(
    "event",
    [
        b'{"choices":[{"delta":{"content":"a"}}]} trailing',  # text after the value
        b' {"choices":[{"delta":{"content":"a"}}]}',  # leading whitespace
        b'{"choices":[{"delta":{"content":"a"}}],"n":123456789012345678901234567890}',
    ],
)
def test_sse_events_orjson_refuses_are_still_read(event: bytes) -> None:
    parser = _SseParser()
    assert parser.feed(b"data:" + event + b"\n\n") == ["a"]


class _Recording:
    """The transport side of a :class:`HeadWithBody`: what was written, in how many
    writes."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"extra:{name}"


@pytest.mark.anyio
async def test_the_head_goes_out_with_the_first_body_bytes() -> None:
    loop = asyncio.get_running_loop()
    sink = _Recording()
    wire = HeadWithBody(sink, loop)  # type: ignore[arg-type]
    wire.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert sink.writes == []
    wire.write(b"body")
    wire.write(b"more")
    assert sink.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"more"]
    await asyncio.sleep(0)  # the flush scheduled for the head finds nothing left
    assert sink.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"more"]
    assert wire.get_extra_info("peername") == "extra:peername"


@pytest.mark.anyio
async def test_a_head_alone_goes_out_by_the_end_of_the_loop_turn() -> None:
    loop = asyncio.get_running_loop()
    sink = _Recording()
    wire = HeadWithBody(sink, loop)  # type: ignore[arg-type]
    wire.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # interim: at once
    assert sink.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    wire.write(b"HTTP/1.1 200 OK\r\n\r\n")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert sink.writes[1:] == [b"HTTP/1.1 200 OK\r\n\r\n"]
    closing = HeadWithBody(_Recording(), loop)  # type: ignore[arg-type]
    closing.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    closing.close()  # a held head is written before the close
    assert closing._transport.writes == [b"HTTP/1.1 204 No Content\r\n\r\n"]  # type: ignore[attr-defined]


async def _slow_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    if scope["path"] == "/slow":
        await asyncio.sleep(1.0)
    await send({"type": "http.response.body", "body": b"done"})


@pytest.mark.anyio
async def test_uvicorn_with_the_protocol_never_holds_a_head_while_the_app_waits() -> None:
    assert http_protocol() is CoalescingHttpToolsProtocol
    port = free_port()
    config = uvicorn.Config(
        _slow_app, host="127.0.0.1", port=port, http=CoalescingHttpToolsProtocol,
        log_level="warning", lifespan="off",
    )  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(1000):
            if server.started:
                break
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/quick")).text == "done"
            async with client.stream("GET", "/slow") as response:  # the head, long before
                assert response.status_code == 200  # the body
                assert not response.is_stream_consumed
                assert (await response.aread()) == b"done"
        assert (await asyncio.to_thread(_first_bytes, port)).startswith(b"HTTP/1.1 200 OK\r\n")
    finally:
        server.should_exit = True
        await task


def _first_bytes(port: int) -> bytes:
    """What a client reads within half a second, well before the app's 1 s sleep ends."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        raw.settimeout(0.5)
        return raw.recv(4096)


def test_new_ids_are_version_4_uuids() -> None:
    ids = {new_id() for _ in range(2000)}
    assert len(ids) == 2000
    for text in list(ids)[:200]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
