"""Grounded answers through the doors: the quoted support arrives before the model's first
token, a weak query abstains without calling the model, the stored reply links sentences to
passages, and ``/v1`` carries ``onebox_support`` without upsetting OpenAI clients."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from onebox.core.settings import Settings
from onebox.documents.search.grounding import ABSTAIN_TEXT
from onebox.llm.fake import FakeProvider
from tests.conftest import AppUnderTest, api_settings
from tests.documents_helpers import create_collection, upload, wait_for_documents
from tests.sse import parse_events

pytestmark = pytest.mark.anyio

TOKEN = "grounding-admin-token-" + "x" * 20
AUTH = {"Authorization": f"Bearer {TOKEN}"}
POLICY = b"""# Backup policy

## Retention

Backups run every night at two in the morning. Deleted backups are kept for a retention
period of 28 days, after which they are purged for good.

## Restores

Restores are requested from the admin console and take about an hour.
"""
QUESTION = "How long are deleted backups kept?"
WEAK = "Who won the football world cup in 2014?"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return api_settings(tmp_path, database_url, api_token=TOKEN)


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider(model_name="fake-echo", context_size=4096, cite=True)


async def _collection(api: AppUnderTest) -> dict[str, Any]:
    collection = await create_collection(api.client, "policy", headers=AUTH)
    await upload(api.client, collection["id"], [("policy.md", POLICY)], headers=AUTH)
    await wait_for_documents(api.client, collection["id"], expected=1)
    return collection


async def _ask(api: AppUnderTest, conversation: str, content: str) -> list[Any]:
    response = await api.client.post(
        f"/api/conversations/{conversation}/messages", json={"content": content}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    return parse_events(response.text)


async def test_support_comes_before_the_first_token_and_sentences_are_linked(
    api: AppUnderTest,
) -> None:
    collection = await _collection(api)
    conversation = (
        await api.client.post(
            "/api/conversations", json={"collection_ids": [collection["id"]]}, headers=AUTH
        )
    ).json()
    events = await _ask(api, conversation["id"], QUESTION)
    names = [event.name for event in events]
    assert names.index("sources") < names.index("support") < names.index("delta")
    support = next(e.data for e in events if e.name == "support")
    assert support["abstained"] is False
    assert support["passages"] >= 1
    assert "28 days" in support["support"][0]["quote"]
    assert support["support"][0]["document"] == "policy.md"

    done = next(e.data for e in events if e.name == "done")["message"]
    used = [s for s in done["sources"] if s["used"]]
    assert used
    assert used[0]["sentences"]
    assert used[0]["sentences"][0] in done["content"]
    assert any("28 days" in s.get("support", "") for s in done["sources"])
    stored = (await api.client.get(f"/api/conversations/{conversation['id']}", headers=AUTH)).json()
    assert stored["messages"][-1]["sources"] == done["sources"]


async def test_a_weak_query_abstains_without_calling_the_model(api: AppUnderTest) -> None:
    collection = await _collection(api)
    calls: list[object] = []
    original = api.provider.stream_chat

    def spy(request):  # type: ignore[no-untyped-def]
        if request.purpose == "chat":  # the chat's title is asked for apart, in the background
            calls.append(request)
        return original(request)

    api.provider.stream_chat = spy  # type: ignore[method-assign]
    conversation = (
        await api.client.post(
            "/api/conversations", json={"collection_ids": [collection["id"]]}, headers=AUTH
        )
    ).json()
    events = await _ask(api, conversation["id"], WEAK)
    support = next(e.data for e in events if e.name == "support")
    assert support == {"support": [], "abstained": True, "passages": support["passages"]}
    done = next(e.data for e in events if e.name == "done")["message"]
    assert done["content"] == ABSTAIN_TEXT
    assert not any(s["used"] for s in done["sources"])
    assert calls == []

    response = await api.client.post(
        "/v1/chat/completions",
        json={"model": "fake-echo", "messages": [{"role": "user", "content": WEAK}],
              "collections": ["policy"]},
        headers=AUTH,
    )  # fmt: skip
    body = response.json()
    assert body["choices"][0]["message"]["content"] == ABSTAIN_TEXT
    assert body["onebox_support"]["abstained"] is True
    assert calls == []


@pytest.fixture
async def sdk(api: AppUnderTest) -> AsyncIterator[openai.AsyncOpenAI]:
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://onebox.test") as http:
        yield openai.AsyncOpenAI(
            base_url="http://onebox.test/v1", api_key=TOKEN, http_client=http, max_retries=0
        )


async def test_v1_carries_the_support_and_openai_clients_still_parse(
    api: AppUnderTest, sdk: openai.AsyncOpenAI
) -> None:
    await _collection(api)
    messages: Any = [{"role": "user", "content": QUESTION}]
    extra = {"collections": ["policy"]}
    completion = await sdk.chat.completions.create(
        model="fake-echo", messages=messages, extra_body=extra
    )
    assert completion.choices[0].message.content
    assert completion.choices[0].message.content.endswith("[1]")
    support = (completion.model_extra or {})["onebox_support"]
    assert "28 days" in support["support"][0]["quote"]

    stream = await sdk.chat.completions.create(
        model="fake-echo", messages=messages, extra_body=extra, stream=True
    )
    chunks = [chunk async for chunk in stream]
    first = (chunks[0].model_extra or {})["onebox_support"]
    assert "28 days" in first["support"][0]["quote"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == completion.choices[0].message.content
    assert "onebox_support" not in (chunks[-1].model_extra or {})

    raw = await api.client.post(
        "/v1/chat/completions",
        json={"model": "fake-echo", "messages": messages, "stream": True, **extra},
        headers=AUTH,
    )
    frames = [json.loads(line[6:]) for line in raw.text.splitlines() if line.startswith("data: {")]
    assert frames[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert frames[0]["onebox_support"]["abstained"] is False


async def test_langchain_still_parses_the_extended_response(api: AppUnderTest) -> None:
    from langchain_openai import ChatOpenAI

    await _collection(api)
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://onebox.test") as http:
        chat = ChatOpenAI(
            model="fake-echo", base_url="http://onebox.test/v1", api_key=TOKEN,  # type: ignore[arg-type]
            max_retries=0, http_async_client=http, extra_body={"collections": ["policy"]},
        )  # fmt: skip
        answer = await chat.ainvoke(QUESTION)
        assert str(answer.content).endswith("[1]")
        streamed = "".join([str(chunk.content) async for chunk in chat.astream(QUESTION)])
        assert streamed == answer.content
