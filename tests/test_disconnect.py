"""Stop ends a reply and keeps what it had; one reply at a time per conversation (real
server). A client that goes away does not stop it: see test_reply_resume.py."""

from __future__ import annotations

import time

import httpx

from tests.conftest import LiveServer
from tests.sse import parse_events


def _wait_for_assistant(url: str, conversation_id: str) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        messages = httpx.get(f"{url}/api/conversations/{conversation_id}").json()["messages"]
        if len(messages) == 2:
            return dict(messages[1])
        time.sleep(0.05)
    raise AssertionError("assistant message was never stored")


def test_stop_endpoint_ends_the_reply(live_server: LiveServer) -> None:
    url = live_server.url
    conversation = httpx.post(f"{url}/api/conversations", json={}).json()
    with (
        httpx.Client(timeout=10) as client,
        client.stream(
            "POST",
            f"{url}/api/conversations/{conversation['id']}/messages",
            json={"content": " ".join(f"w{i}" for i in range(200))},
        ) as response,
    ):
        body = ""
        chunks = response.iter_text()
        for chunk in chunks:
            body += chunk
            if "event: delta" in body:
                stop = httpx.post(f"{url}/api/conversations/{conversation['id']}/stop")
                assert stop.json() == {"stopped": True}
                break
        body += "".join(chunks)
    events = parse_events(body)
    assert events[-1].name == "error"
    assert events[-1].data["message"]["status"] == "partial"
    assert _wait_for_assistant(url, conversation["id"])["status"] == "partial"


def test_second_message_while_replying_is_409(live_server: LiveServer) -> None:
    url = live_server.url
    conversation = httpx.post(f"{url}/api/conversations", json={}).json()
    path = f"{url}/api/conversations/{conversation['id']}/messages"
    with (
        httpx.Client(timeout=10) as client,
        client.stream("POST", path, json={"content": "slow " * 50}) as response,
    ):
        chunks = response.iter_text()  # keep a reference: dropping it closes the stream
        next(chunks)
        clash = httpx.post(path, json={"content": "impatient"})
        assert clash.status_code == 409
        assert clash.json()["error"]["type"] == "conflict_error"
