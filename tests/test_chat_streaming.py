"""Posting a message streams the reply as SSE and stores both sides."""

from __future__ import annotations

import pytest

from onebox.llm.base import ChatRequest
from tests.conftest import AppUnderTest
from tests.sse import parse_events

pytestmark = pytest.mark.anyio


class RecordingProvider:
    """Wraps the fake so a test can see exactly what the model was sent."""

    def __init__(self, api: AppUnderTest) -> None:
        self.requests: list[ChatRequest] = []
        provider = api.provider
        original = provider.stream_chat

        def recording(request: ChatRequest):  # type: ignore[no-untyped-def]
            if request.purpose == "chat":  # not the conversation's title, asked in background
                self.requests.append(request)
            return original(request)

        provider.stream_chat = recording  # type: ignore[method-assign]


async def _send(api: AppUnderTest, conversation_id: str, content: str) -> list:  # type: ignore[type-arg]
    response = await api.client.post(
        f"/api/conversations/{conversation_id}/messages", json={"content": content}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return parse_events(response.text)


async def test_reply_streams_typed_events_and_is_stored(api: AppUnderTest) -> None:
    conversation = (await api.client.post("/api/conversations", json={})).json()
    events = await _send(api, conversation["id"], "Hello there, **model**")

    names = [event.name for event in events]
    assert names[0] == "message"
    assert names[-2:] == ["usage", "done"]
    assert set(names[1:-2]) == {"delta", "render"}
    assert [int(event.id) for event in events] == list(range(1, len(events) + 1))

    opening = events[0].data
    assert opening["user_message"]["content"] == "Hello there, **model**"
    assert opening["user_message"]["role"] == "user"
    assert opening["conversation"]["title"] == "Hello there, model"  # plain text

    streamed = "".join(event.data["text"] for event in events if event.name == "delta")
    assert streamed == "Echo: Hello there, **model**"
    done = events[-1].data["message"]
    assert done["id"] == opening["assistant_message_id"]
    assert done["content"] == streamed
    assert done["status"] == "complete"
    assert "<strong>model</strong>" in done["html"]
    assert done["parent_id"] == opening["user_message"]["id"]
    assert done["completion_tokens"] == 4
    assert done["ttft_ms"] is not None
    assert done["duration_ms"] is not None

    stored = (await api.client.get(f"/api/conversations/{conversation['id']}")).json()
    assert [(m["role"], m["content"], m["status"]) for m in stored["messages"]] == [
        ("user", "Hello there, **model**", "complete"),
        ("assistant", streamed, "complete"),
    ]
    assert stored["title"] == "Hello there, model"


async def test_follow_up_sends_the_whole_history(api: AppUnderTest) -> None:
    recorder = RecordingProvider(api)
    conversation = (await api.client.post("/api/conversations", json={})).json()
    await _send(api, conversation["id"], "first question")
    events = await _send(api, conversation["id"], "second question")

    sent = recorder.requests[-1].messages
    system_prompt = api.app.state.onebox.settings.system_prompt
    assert sent[0].role == "system"
    assert sent[0].content.startswith(system_prompt)
    assert "onebox-canary-" in sent[0].content  # a fresh canary guards each reply
    assert [(m.role, m.content) for m in sent[1:]] == [
        ("user", "first question"),
        ("assistant", "Echo: first question"),
        ("user", "second question"),
    ]
    first_reply_id = (await api.client.get(f"/api/conversations/{conversation['id']}")).json()[
        "messages"
    ][1]["id"]
    assert events[0].data["user_message"]["parent_id"] == first_reply_id


async def test_conversations_are_independent(api: AppUnderTest) -> None:
    recorder = RecordingProvider(api)
    first = (await api.client.post("/api/conversations", json={})).json()
    second = (await api.client.post("/api/conversations", json={})).json()
    await _send(api, first["id"], "about cats")
    await _send(api, second["id"], "about dogs")
    await _send(api, first["id"], "more cats")
    assert [m.content for m in recorder.requests[-1].messages[1:]] == [
        "about cats",
        "Echo: about cats",
        "more cats",
    ]


async def test_provider_failure_mid_stream_keeps_partial_text(api: AppUnderTest) -> None:
    api.provider.fail_after = 2  # type: ignore[attr-defined]
    conversation = (await api.client.post("/api/conversations", json={})).json()
    events = await _send(api, conversation["id"], "one two three four")
    assert events[-1].name == "error"
    assert events[-1].data["error"]["message"] == "The fake provider failed as configured"
    partial = events[-1].data["message"]
    assert partial["status"] == "partial"
    assert partial["content"] == "Echo: one"

    stored = (await api.client.get(f"/api/conversations/{conversation['id']}")).json()
    assert [(m["role"], m["status"]) for m in stored["messages"]] == [
        ("user", "complete"),
        ("assistant", "partial"),
    ]
    assert stored["messages"][1]["content"] == "Echo: one"


async def test_provider_failure_before_any_text_is_an_error_message(api: AppUnderTest) -> None:
    api.provider.fail_after = 0  # type: ignore[attr-defined]
    conversation = (await api.client.post("/api/conversations", json={})).json()
    events = await _send(api, conversation["id"], "hello")
    assert events[-1].name == "error"
    assert events[-1].data["message"]["status"] == "error"

    # The failed turn is not fed back to the model on the next message.
    api.provider.fail_after = None  # type: ignore[attr-defined]
    recorder = RecordingProvider(api)
    await _send(api, conversation["id"], "again")
    assert [m.role for m in recorder.requests[-1].messages] == ["system", "user", "user"]


async def test_message_too_long_for_the_context_window(api: AppUnderTest) -> None:
    api.provider.context_size = 300
    conversation = (await api.client.post("/api/conversations", json={})).json()
    response = await api.client.post(
        f"/api/conversations/{conversation['id']}/messages", json={"content": "word " * 300}
    )
    assert response.status_code == 400
    assert "context window" in response.json()["error"]["message"]
    stored = (await api.client.get(f"/api/conversations/{conversation['id']}")).json()
    assert stored["messages"] == []


async def test_long_history_is_trimmed_to_fit(api: AppUnderTest) -> None:
    recorder = RecordingProvider(api)
    api.provider.context_size = 600
    conversation = (await api.client.post("/api/conversations", json={})).json()
    for index in range(8):
        await _send(api, conversation["id"], f"turn {index} " + "filler " * 20)
    sent = recorder.requests[-1].messages
    assert sent[0].role == "system"
    assert sent[1].role == "user"
    assert sent[-1].content.startswith("turn 7")
    assert len(sent) < 17  # older turns were dropped
    assert api.provider.count_tokens(sent) <= 600 - 256
