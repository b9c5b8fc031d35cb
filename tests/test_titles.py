"""Conversation titles: plain-text fallbacks, and the model's title written in the background
after the first exchange, never holding up the reply and never replacing the user's."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from onebox.app import create_app
from onebox.chat.titles import clean_model_title, title_from
from onebox.llm.base import ChatRequest, ProviderError, StreamChunk, TextDelta, Usage
from onebox.llm.fake import FakeProvider
from onebox.ratelimit.models import Subject
from onebox.usage.models import UsageRecord
from tests.conftest import AppUnderTest, api_settings
from tests.sse import parse_events

pytestmark = pytest.mark.anyio


@dataclass
class TitledFake(FakeProvider):
    """The fake model; title requests can be answered, held back or failed."""

    title: str | None = None
    gate: asyncio.Event | None = None
    title_error: ProviderError | None = None
    title_requests: list[ChatRequest] = field(default_factory=list)

    async def stream_chat(self, request: ChatRequest) -> AsyncGenerator[StreamChunk]:
        if request.purpose != "title":
            async for chunk in super().stream_chat(request):
                yield chunk
            return
        self.title_requests.append(request)
        if self.gate is not None:
            await self.gate.wait()
        if self.title_error is not None:
            raise self.title_error
        yield TextDelta(self.title if self.title is not None else "A title")
        yield Usage(prompt_tokens=1, completion_tokens=1, finish_reason="stop")


@pytest.fixture
def provider() -> TitledFake:
    return TitledFake(model_name="fake-echo", context_size=4096)


def fake(api: AppUnderTest) -> TitledFake:
    assert isinstance(api.provider, TitledFake)
    return api.provider


async def titles_done(api: AppUnderTest) -> None:
    await asyncio.gather(*list(api.app.state.onebox.generations.titles.tasks))


async def send(api: AppUnderTest, conversation_id: str, content: str) -> list[Any]:
    response = await api.client.post(
        f"/api/conversations/{conversation_id}/messages", json={"content": content}
    )
    assert response.status_code == 200, response.text
    return parse_events(response.text)


async def conversation(api: AppUnderTest, conversation_id: str) -> dict[str, Any]:
    return dict((await api.client.get(f"/api/conversations/{conversation_id}")).json())


@pytest.mark.parametrize(
    ("raw", "title"),
    [
        ("## Heading two", "Heading two"),
        ('"Planning a trip to Lisbon."', "Planning a trip to Lisbon"),
        ("**Title:** *Espresso* machine care!", "Espresso machine care"),
        ("Title: `descale` the [machine](https://x.test)", "descale the machine"),
        ("\n\n> “Quoted”\nsecond line", "Quoted"),
        ("- list item ...", "list item"),
        ("snake_case stays", "snake_case stays"),
        ("  ", ""),
        ("word " * 40, ("word " * 11).strip() + "…"),
    ],
)
def test_model_titles_become_plain_text(raw: str, title: str) -> None:
    assert clean_model_title(raw) == title


def test_the_fallback_title_is_the_first_line_without_markdown() -> None:
    assert title_from("\n# Hello **there**\nmore") == "Hello there"
    assert title_from("What is 2 + 2?") == "What is 2 + 2?"  # a question keeps its mark
    assert title_from("***") == ""
    long = title_from("x" * 300)
    assert len(long) == 80
    assert long.endswith("…")


async def test_the_model_names_the_conversation_after_the_first_reply(api: AppUnderTest) -> None:
    fake(api).title = "## Heading two"
    created = (await api.client.post("/api/conversations", json={})).json()
    events = await send(api, created["id"], "# Tell me about **coffee**")
    assert events[0].data["conversation"]["title"] == "Tell me about coffee"
    await titles_done(api)

    stored = await conversation(api, created["id"])
    assert stored["title"] == "Heading two"
    assert stored["title_source"] == "model"
    assert await title_usage(api) == [("complete", None, 1, 1)]  # the fake's usage
    asked = fake(api).title_requests
    assert len(asked) == 1
    assert [m.content for m in asked[0].messages[1:3]] == [
        "# Tell me about **coffee**",
        "Echo: # Tell me about **coffee**",
    ]

    # Later exchanges leave the title alone.
    await send(api, created["id"], "and tea?")
    await titles_done(api)
    assert len(fake(api).title_requests) == 1
    assert (await conversation(api, created["id"]))["title"] == "Heading two"


async def test_the_reply_never_waits_for_the_title(api: AppUnderTest) -> None:
    gate = fake(api).gate = asyncio.Event()
    fake(api).title = "Coffee talk"
    created = (await api.client.post("/api/conversations", json={})).json()
    events = await send(api, created["id"], "coffee?")
    # The whole reply is done while the model is still being asked for the title.
    assert events[-1].name == "done"
    pending = list(api.app.state.onebox.generations.titles.tasks)
    assert len(pending) == 1
    assert not pending[0].done()
    listed = (await api.client.get("/api/conversations")).json()["items"]
    assert [(c["title"], c["title_source"]) for c in listed] == [("coffee?", "auto")]

    gate.set()
    await titles_done(api)
    assert (await conversation(api, created["id"]))["title"] == "Coffee talk"


async def test_a_title_the_user_set_is_never_replaced(api: AppUnderTest) -> None:
    gate = fake(api).gate = asyncio.Event()
    created = (await api.client.post("/api/conversations", json={})).json()
    await send(api, created["id"], "rename me")
    renamed = await api.client.patch(
        f"/api/conversations/{created['id']}", json={"title": "My own name"}
    )
    assert renamed.json()["title_source"] == "user"
    gate.set()
    await titles_done(api)
    stored = await conversation(api, created["id"])
    assert (stored["title"], stored["title_source"]) == ("My own name", "user")

    # Named at creation: the model is not even asked.
    named = (await api.client.post("/api/conversations", json={"title": "Named"})).json()
    await send(api, named["id"], "hello")
    await titles_done(api)
    assert len(fake(api).title_requests) == 1
    assert (await conversation(api, named["id"]))["title"] == "Named"


async def test_a_failing_title_only_logs(
    api: AppUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    fake(api).title_error = ProviderError("title model down")
    created = (await api.client.post("/api/conversations", json={})).json()
    with caplog.at_level(logging.WARNING, logger="onebox.chat.titles"):
        events = await send(api, created["id"], "still answered")
        await titles_done(api)
    assert events[-1].name == "done"
    stored = await conversation(api, created["id"])
    assert (stored["title"], stored["title_source"]) == ("still answered", "auto")
    assert any("title model down" in record.getMessage() for record in caplog.records)
    # The failed request is in the caller's usage, as a failed reply would be.
    assert await title_usage(api) == [("error", "ProviderError", 0, 0)]


async def title_usage(api: AppUnderTest) -> list[tuple[str, str | None, int, int]]:
    state = api.app.state.onebox
    await state.usage.flush()
    async with state.sessionmaker() as session:
        rows = await session.scalars(select(UsageRecord).where(UsageRecord.source == "title"))
        return [(r.status, r.error_type, r.prompt_tokens, r.completion_tokens) for r in rows]


async def test_empty_model_title_keeps_the_fallback(api: AppUnderTest) -> None:
    fake(api).title = '  "## ..."  '
    created = (await api.client.post("/api/conversations", json={})).json()
    await send(api, created["id"], "keep my first line")
    await titles_done(api)
    stored = await conversation(api, created["id"])
    assert (stored["title"], stored["title_source"]) == ("keep my first line", "auto")


async def test_the_title_tokens_count_against_the_callers_limits(
    tmp_path: Path, database_url: str
) -> None:
    settings = api_settings(tmp_path, database_url, user_tokens_per_day=100_000)
    provider = TitledFake(model_name="fake-echo", context_size=4096)
    app = create_app(settings, provider=provider)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://onebox.test") as client:
            api = AppUnderTest(app=app, client=client, provider=provider)
            created = (await client.post("/api/conversations", json={})).json()
            events = await send(api, created["id"], "count my tokens")
            await titles_done(api)
            assert await title_usage(api) == [("complete", None, 1, 1)]
            state = app.state.onebox
            async with state.sessionmaker() as session:
                user_id = (await session.scalars(select(UsageRecord.user_id))).first()
            assert user_id is not None
            counted = await state.limits.limiter.usage(Subject("user", user_id))
    done = next(e.data for e in events if e.name == "done")["message"]
    # The reply's tokens, then the title's 1 + 1 (the fake's usage).
    assert counted.tokens_today == done["prompt_tokens"] + done["completion_tokens"] + 2
