"""A reply outlives the page: a client that goes away does not stop it, and any client
reattaches to its event stream (``Last-Event-ID`` or ``?after=``), replaying what it missed
and then following live (real uvicorn server on loopback; memory and Redis event logs)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from onebox.app import create_app
from onebox.core.settings import Settings
from onebox.llm.base import ChatRequest, StreamChunk
from onebox.llm.fake import FakeProvider
from onebox.serving import workers_warnings
from tests.conftest import LiveServer, api_settings, run_live_server
from tests.sse import Event, parse_events
from tests.test_rate_limits_api import REDIS_URL, _redis_ping

pytestmark = pytest.mark.timeout(120)

WORDS = " ".join(f"w{i}" for i in range(150))  # 151 chunks, 20 ms apart: about 3 s


HELD_AFTER = 20  # chunks a "HOLD" message streams before it waits for the gate


@dataclass
class GatedProvider(FakeProvider):
    """The fake model; a message containing HOLD pauses after ``HELD_AFTER`` chunks until
    the test opens ``gate`` (so a test knows which events came before and which after)."""

    gate: threading.Event = field(default_factory=threading.Event)

    async def stream_chat(self, request: ChatRequest) -> AsyncGenerator[StreamChunk]:
        held = "HOLD" in request.messages[-1].content
        sent = 0
        async for chunk in super().stream_chat(request):
            if held and sent == HELD_AFTER:
                await asyncio.to_thread(self.gate.wait, 60)
            sent += 1
            yield chunk


@pytest.fixture(scope="module", params=["memory", "redis"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """One server per event-log backend: this process's memory, or Redis."""
    events_url = "memory://"
    if request.param == "redis":
        try:
            _redis_ping(REDIS_URL)
        except OSError as exc:
            if os.environ.get("CI"):
                raise
            pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
        events_url = REDIS_URL
    yield from run_live_server(
        Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=tmp_path_factory.mktemp("resume"),
            llm_provider="fake",
            model_name="fake-echo",
            events_url=events_url,
        ),
        GatedProvider(model_name="fake-echo", context_size=4096, token_delay=0.02),
    )


def new_conversation(url: str) -> str:
    return str(httpx.post(f"{url}/api/conversations", json={}).json()["id"])


def read_then_leave(url: str, conversation_id: str, content: str, deltas: int) -> list[Event]:
    """POSTs a message and leaves after ``deltas`` delta events (the socket is closed)."""
    received = ""
    with (
        httpx.Client(timeout=10) as client,
        client.stream(
            "POST", f"{url}/api/conversations/{conversation_id}/messages", json={"content": content}
        ) as response,
    ):
        assert response.status_code == 200
        for chunk in response.iter_text():
            received += chunk
            if received.count("event: delta") >= deltas and received.endswith("\n\n"):
                break
    return parse_events(received)


def follow(url: str, conversation_id: str, message_id: str, **request: Any) -> list[Event]:
    response = httpx.get(
        f"{url}/api/conversations/{conversation_id}/messages/{message_id}/events",
        timeout=30,
        **request,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return parse_events(response.text)


def text_of(events: list[Event]) -> str:
    return "".join(event.data["text"] for event in events if event.name == "delta")


def stored_reply(url: str, conversation_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        detail = httpx.get(f"{url}/api/conversations/{conversation_id}").json()
        replies = [m for m in detail["messages"] if m["role"] == "assistant"]
        if replies and detail["generating"] is None:
            return dict(replies[-1])
        time.sleep(0.1)
    raise AssertionError("the reply never finished")


def test_reply_continues_after_the_client_leaves(server: LiveServer) -> None:
    conversation_id = new_conversation(server.url)
    seen = read_then_leave(server.url, conversation_id, WORDS, deltas=5)
    assert seen[0].name == "message"

    detail = httpx.get(f"{server.url}/api/conversations/{conversation_id}").json()
    assert detail["generating"] == {
        "message_id": seen[0].data["assistant_message_id"],
        "parent_id": seen[0].data["user_message"]["id"],
    }
    reply = stored_reply(server.url, conversation_id)
    assert reply["status"] == "complete"
    assert reply["content"] == f"Echo: {WORDS}"
    assert reply["content"].startswith(text_of(seen))


def test_last_event_id_replays_the_missed_events_then_follows_live(server: LiveServer) -> None:
    provider = server.provider
    assert isinstance(provider, GatedProvider)
    conversation_id = new_conversation(server.url)
    content = f"HOLD {WORDS}"
    seen = read_then_leave(server.url, conversation_id, content, deltas=10)
    message_id = seen[0].data["assistant_message_id"]
    last = int(seen[-1].id or 0)
    assert [int(event.id or 0) for event in seen] == list(range(1, last + 1))

    held = 1 + HELD_AFTER  # the opening event and the chunks before the model waits
    body = ""
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "GET",
            f"{server.url}/api/conversations/{conversation_id}/messages/{message_id}/events",
            headers={"Last-Event-ID": str(last)},
        ) as response,
    ):
        assert response.status_code == 200
        chunks = response.iter_text()
        for chunk in chunks:  # the replay: exactly what was missed, while the reply waits
            body += chunk
            if f"id: {held}\n" in body and body.endswith("\n\n"):
                break
        replayed = parse_events(body)
        assert [int(event.id or 0) for event in replayed] == list(range(last + 1, held + 1))
        provider.gate.set()  # then the rest, live
        body += "".join(chunks)
    rest = parse_events(body)
    assert [int(event.id or 0) for event in rest] == list(range(last + 1, last + 1 + len(rest)))
    assert len(rest) > len(replayed)
    assert [event.name for event in rest][-2:] == ["usage", "done"]
    assert text_of(seen) + text_of(rest) == f"Echo: {content}"
    assert rest[-1].data["message"]["content"] == f"Echo: {content}"
    assert rest[-1].data["message"]["status"] == "complete"

    # A finished reply replays in full (its log is kept a while), ?after= as well as the header.
    everything = follow(server.url, conversation_id, message_id, params={"after": 0})
    assert everything[0].name == "message"
    assert [event.id for event in everything[last:]] == [event.id for event in rest]
    assert text_of(everything) == f"Echo: {content}"
    tail = follow(server.url, conversation_id, message_id, params={"after": last + 3})
    assert [event.id for event in tail] == [event.id for event in rest[3:]]


def test_a_finished_reply_without_a_log_gives_its_stored_state(server: LiveServer) -> None:
    conversation_id = new_conversation(server.url)
    response = httpx.post(
        f"{server.url}/api/conversations/{conversation_id}/messages", json={"content": "hi"}
    )
    events = parse_events(response.text)
    message_id = events[0].data["assistant_message_id"]
    # Past the end of the log (as after it has expired): the stored message, as ``done``.
    final = follow(server.url, conversation_id, message_id, params={"after": 1000})
    assert [(event.name, event.id) for event in final] == [("done", "1001")]
    assert final[0].data["message"]["content"] == "Echo: hi"
    assert final[0].data["message"]["id"] == message_id


def test_unknown_ids_and_bad_positions_are_refused(server: LiveServer) -> None:
    conversation_id = new_conversation(server.url)
    events = parse_events(
        httpx.post(
            f"{server.url}/api/conversations/{conversation_id}/messages", json={"content": "hi"}
        ).text
    )
    user_id = events[0].data["user_message"]["id"]
    base = f"{server.url}/api/conversations"

    missing = httpx.get(f"{base}/{conversation_id}/messages/nope/events")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "Reply 'nope' not found in this conversation"
    assert httpx.get(f"{base}/{conversation_id}/messages/{user_id}/events").status_code == 404
    other = httpx.get(f"{base}/nope/messages/{user_id}/events")
    assert other.status_code == 404
    assert "Conversation 'nope' not found" in other.json()["error"]["message"]

    reply_id = events[0].data["assistant_message_id"]
    path = f"{base}/{conversation_id}/messages/{reply_id}/events"
    bad = httpx.get(path, headers={"Last-Event-ID": "x1"})
    assert bad.status_code == 400
    assert "Last-Event-ID" in bad.json()["error"]["message"]
    assert httpx.get(path, params={"after": -1}).status_code in (400, 422)


def test_stop_still_ends_a_reply_nobody_is_reading(server: LiveServer) -> None:
    conversation_id = new_conversation(server.url)
    seen = read_then_leave(server.url, conversation_id, WORDS, deltas=3)
    stop = httpx.post(f"{server.url}/api/conversations/{conversation_id}/stop")
    assert stop.json() == {"stopped": True}
    reply = stored_reply(server.url, conversation_id)
    assert reply["status"] == "partial"
    assert reply["content"].startswith(text_of(seen))
    assert len(reply["content"].split()) < 120
    again = httpx.post(f"{server.url}/api/conversations/{conversation_id}/stop")
    assert again.json() == {"stopped": False}


@pytest.mark.anyio
async def test_the_time_limit_ends_a_reply_that_runs_too_long(tmp_path: Path) -> None:
    settings = api_settings(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'limit.db'}", reply_max_seconds=0.3
    )
    provider = FakeProvider(model_name="fake-echo", context_size=4096, token_delay=0.02)
    app = create_app(settings, provider=provider)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            conversation = (await client.post("/api/conversations", json={})).json()
            response = await client.post(
                f"/api/conversations/{conversation['id']}/messages", json={"content": WORDS}
            )
            events = parse_events(response.text)
            assert events[-1].name == "error"
            assert events[-1].data["error"]["message"] == (
                "Stopped after the time limit of 0.3 seconds"
            )
            message = events[-1].data["message"]
            assert message["status"] == "partial"
            assert 0 < len(message["content"].split()) < 100
            detail = (await client.get(f"/api/conversations/{conversation['id']}")).json()
            assert detail["messages"][-1]["status"] == "partial"
            assert detail["generating"] is None


def test_several_workers_are_told_to_share_the_event_log() -> None:
    def settings(**values: object) -> Settings:
        return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]

    notes = workers_warnings(settings(), 2)
    assert any("ONEBOX_EVENTS_URL=memory://" in note for note in notes)
    shared = workers_warnings(settings(events_url="redis://127.0.0.1:6379/2"), 2)
    assert not any("ONEBOX_EVENTS_URL" in note for note in shared)
    assert workers_warnings(settings(), 1) == []
