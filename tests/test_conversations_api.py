"""Conversation CRUD through the real app, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.conftest import AppUnderTest

pytestmark = pytest.mark.anyio


async def test_create_get_rename_delete(api: AppUnderTest) -> None:
    created = await api.client.post("/api/conversations", json={"title": "  Trip plans "})
    assert created.status_code == 201
    conversation = created.json()
    assert conversation["title"] == "Trip plans"
    assert conversation["pinned"] is False

    fetched = await api.client.get(f"/api/conversations/{conversation['id']}")
    assert fetched.status_code == 200
    assert fetched.json()["messages"] == []

    renamed = await api.client.patch(
        f"/api/conversations/{conversation['id']}", json={"title": "Lisbon", "pinned": True}
    )
    assert renamed.status_code == 200
    assert renamed.json()["title"] == "Lisbon"
    assert renamed.json()["pinned"] is True

    deleted = await api.client.delete(f"/api/conversations/{conversation['id']}")
    assert deleted.status_code == 204
    gone = await api.client.get(f"/api/conversations/{conversation['id']}")
    assert gone.status_code == 404
    assert gone.json()["error"]["type"] == "not_found_error"


async def test_create_without_body(api: AppUnderTest) -> None:
    response = await api.client.post("/api/conversations")
    assert response.status_code == 201
    assert response.json()["title"] == ""


async def test_list_is_paginated_newest_first(api: AppUnderTest) -> None:
    ids = []
    for index in range(5):
        response = await api.client.post("/api/conversations", json={"title": f"c{index}"})
        ids.append(response.json()["id"])

    first = (await api.client.get("/api/conversations", params={"limit": 2})).json()
    assert [item["title"] for item in first["items"]] == ["c4", "c3"]
    assert first["next_offset"] == 2
    second = (await api.client.get("/api/conversations", params={"limit": 2, "offset": 2})).json()
    assert [item["title"] for item in second["items"]] == ["c2", "c1"]
    last = (await api.client.get("/api/conversations", params={"limit": 2, "offset": 4})).json()
    assert [item["title"] for item in last["items"]] == ["c0"]
    assert last["next_offset"] is None

    # Touching an old conversation moves it to the top.
    await api.client.patch(f"/api/conversations/{ids[0]}", json={"title": "c0 renamed"})
    top = (await api.client.get("/api/conversations", params={"limit": 1})).json()
    assert top["items"][0]["id"] == ids[0]


async def test_archived_conversations_are_hidden_unless_asked(api: AppUnderTest) -> None:
    conversation = (await api.client.post("/api/conversations", json={})).json()
    await api.client.patch(f"/api/conversations/{conversation['id']}", json={"archived": True})
    listed = (await api.client.get("/api/conversations")).json()
    assert listed["items"] == []
    with_archived = (
        await api.client.get("/api/conversations", params={"include_archived": "true"})
    ).json()
    assert [item["id"] for item in with_archived["items"]] == [conversation["id"]]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/conversations/does-not-exist"),
        ("PATCH", "/api/conversations/does-not-exist"),
        ("DELETE", "/api/conversations/does-not-exist"),
        ("POST", "/api/conversations/does-not-exist/messages"),
        ("POST", "/api/conversations/does-not-exist/stop"),
    ],
)
async def test_unknown_ids_are_404(api: AppUnderTest, method: str, path: str) -> None:
    body = {"content": "hi"} if path.endswith("messages") else {"title": "x"}
    response = await api.client.request(
        method, path, json=body if method in {"PATCH", "POST"} else None
    )
    assert response.status_code == 404
    assert response.json()["error"]["message"]


async def test_blank_title_is_rejected(api: AppUnderTest) -> None:
    conversation = (await api.client.post("/api/conversations", json={"title": "Keep"})).json()
    response = await api.client.patch(
        f"/api/conversations/{conversation['id']}", json={"title": "   "}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "title"
    kept = (await api.client.get(f"/api/conversations/{conversation['id']}")).json()
    assert kept["title"] == "Keep"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": 0}, "query.limit"),
        ({"limit": 1000}, "query.limit"),
        ({"offset": -1}, "query.offset"),
    ],
)
async def test_bad_pagination_is_4xx(api: AppUnderTest, params: dict[str, int], param: str) -> None:
    response = await api.client.get("/api/conversations", params=params)
    assert response.status_code == 422
    assert response.json()["error"]["param"] == param


async def test_timestamps_are_utc_everywhere(api: AppUnderTest) -> None:
    created = (await api.client.post("/api/conversations", json={})).json()
    fetched = (await api.client.get(f"/api/conversations/{created['id']}")).json()
    listed = (await api.client.get("/api/conversations")).json()["items"][0]
    for stamp in (
        created["created_at"],
        fetched["created_at"],
        fetched["updated_at"],
        listed["updated_at"],
    ):
        assert stamp.endswith(("Z", "+00:00")), stamp


async def test_models_are_listed(api: AppUnderTest) -> None:
    models = (await api.client.get("/api/models")).json()
    assert models == [
        {
            "id": "fake-echo",
            "aliases": ["default"],
            "provider": "fake",
            "context_window": 4096,
            "default": True,
            "ready": True,
        }
    ]


async def test_conversation_model_is_validated_and_kept(api: AppUnderTest) -> None:
    bad = await api.client.post("/api/conversations", json={"model": "nope"})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "model"

    created = (await api.client.post("/api/conversations", json={"model": "default"})).json()
    assert created["model"] == "fake-echo"  # aliases are stored as the canonical name
    patched = await api.client.patch(
        f"/api/conversations/{created['id']}", json={"model": "missing"}
    )
    assert patched.status_code == 400
    kept = (await api.client.get(f"/api/conversations/{created['id']}")).json()
    assert kept["model"] == "fake-echo"


async def test_a_reply_ending_while_the_conversation_is_read_shows_saved(
    api: AppUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reply is saved before it stops being in flight. Reading the conversation asks
    "in flight?" before reading the messages: a reply that ends in between then shows as
    generating (clients follow it to its end), never as idle with a stale checkpoint."""
    from onebox.chat.service import ChatService

    client = api.client
    conversation = (await client.post("/api/conversations", json={})).json()
    generations = api.app.state.onebox.generations
    order: list[str] = []
    real_in_flight = generations.in_flight
    real_get = ChatService.get_conversation

    async def in_flight(conversation_id: str) -> object:
        order.append("in_flight")
        return await real_in_flight(conversation_id)

    async def get_conversation(self: ChatService, *args: object, **kwargs: object) -> object:
        order.append("messages")
        return await real_get(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(generations, "in_flight", in_flight)
    monkeypatch.setattr(ChatService, "get_conversation", get_conversation)
    detail = await client.get(f"/api/conversations/{conversation['id']}")
    assert detail.status_code == 200
    assert detail.json()["generating"] is None
    assert order == ["in_flight", "messages"]
