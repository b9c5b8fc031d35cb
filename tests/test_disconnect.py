"""A client that goes away mid-stream leaves a partial assistant message (real server)."""

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


def test_disconnect_mid_stream_stores_partial(live_server: LiveServer) -> None:
    url = live_server.url
    conversation = httpx.post(f"{url}/api/conversations", json={}).json()
    received = ""
    with (
        httpx.Client(timeout=10) as client,
        client.stream(
            "POST",
            f"{url}/api/conversations/{conversation['id']}/messages",
            json={"content": " ".join(f"w{i}" for i in range(200))},
        ) as response,
    ):
        assert response.status_code == 200
        for chunk in response.iter_text():
            received += chunk
            if received.count("event: delta") >= 5:
                break  # leave mid-stream: the connection is closed here

    streamed_before_leaving = "".join(
        e.data["text"] for e in parse_events(received.rsplit("\n\n", 1)[0]) if e.name == "delta"
    )
    assistant = _wait_for_assistant(url, conversation["id"])
    assert assistant["status"] == "partial"
    assert assistant["content"].startswith(streamed_before_leaving)
    # Generation stopped promptly instead of running to the end of the 200-word reply.
    assert len(assistant["content"].split()) < 60


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
