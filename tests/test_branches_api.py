"""Branches (regenerate, edit, switch), paging along the branch shown, and feedback, through
the real app on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from onebox.llm.base import ChatRequest
from tests.accounts import make_account, sign_in
from tests.conftest import AppUnderTest
from tests.sse import parse_events

pytestmark = pytest.mark.anyio


async def _stream(api: AppUnderTest, path: str, body: dict[str, Any] | None = None) -> list[Any]:
    response = await api.client.post(path, json=body)
    assert response.status_code == 200, response.text
    events = parse_events(response.text)
    assert events[-1].name == "done", events[-1]
    return events


async def _send(api: AppUnderTest, cid: str, content: str, **extra: Any) -> list[Any]:
    return await _stream(api, f"/api/conversations/{cid}/messages", {"content": content, **extra})


async def _shown(api: AppUnderTest, cid: str) -> list[dict[str, Any]]:
    detail = (await api.client.get(f"/api/conversations/{cid}")).json()
    return list(detail["messages"])


async def _new(api: AppUnderTest) -> str:
    return str((await api.client.post("/api/conversations", json={})).json()["id"])


async def test_regenerate_makes_a_shown_sibling_through_the_turn(api: AppUnderTest) -> None:
    sent: list[ChatRequest] = []
    original = api.provider.stream_chat

    def recording(request: ChatRequest):  # type: ignore[no-untyped-def]
        sent.append(request)
        return original(request)

    api.provider.stream_chat = recording  # type: ignore[method-assign]
    cid = await _new(api)
    await _send(api, cid, "first")
    await _send(api, cid, "second")
    user, reply = (await _shown(api, cid))[2:]
    events = await _stream(api, f"/api/conversations/{cid}/messages/{reply['id']}/regenerate")
    assert events[0].data["user_message"]["id"] == user["id"]  # no new user message
    new_reply = events[-1].data["message"]
    assert new_reply["parent_id"] == user["id"]
    assert new_reply["id"] != reply["id"]
    # The model saw the same history as the first time.
    assert [(m.role, m.content) for m in sent[-1].messages[1:]] == [
        (m.role, m.content) for m in sent[-2].messages[1:]
    ]

    shown = await _shown(api, cid)
    assert [m["role"] for m in shown] == ["user", "assistant", "user", "assistant"]
    assert shown[-1]["id"] == new_reply["id"]
    assert shown[-1]["siblings"] == [reply["id"], new_reply["id"]]
    assert shown[2]["siblings"] == [user["id"]]
    # Regenerating a user message answers it again: a third sibling.
    events = await _stream(api, f"/api/conversations/{cid}/messages/{user['id']}/regenerate")
    assert (await _shown(api, cid))[-1]["siblings"][-1] == events[-1].data["message"]["id"]
    assert len((await _shown(api, cid))[-1]["siblings"]) == 3


async def test_edit_branches_and_switching_is_remembered(api: AppUnderTest) -> None:
    cid = await _new(api)
    await _send(api, cid, "one")
    await _send(api, cid, "two")
    await _send(api, cid, "three")
    original = await _shown(api, cid)
    two = original[2]
    await _send(api, cid, "two, edited", edit_of=two["id"])
    edited = await _shown(api, cid)
    assert [m["content"] for m in edited] == [
        "one",
        "Echo: one",
        "two, edited",
        "Echo: two, edited",
    ]
    assert edited[2]["siblings"] == [two["id"], edited[2]["id"]]
    assert edited[2]["parent_id"] == two["parent_id"]

    # A message sent without a parent continues the branch shown, not the newest message.
    switched = await api.client.put(
        f"/api/conversations/{cid}/branch", json={"message_id": two["id"]}
    )
    assert switched.status_code == 200
    assert [m["id"] for m in switched.json()["items"]] == [m["id"] for m in original]
    assert [m["id"] for m in await _shown(api, cid)] == [m["id"] for m in original]
    await _send(api, cid, "four")
    assert [m["content"] for m in await _shown(api, cid)][-4:] == [
        "three", "Echo: three", "four", "Echo: four",
    ]  # fmt: skip

    # Switching does not move the conversation up the list.
    other = await _new(api)
    await api.client.put(f"/api/conversations/{cid}/branch", json={"message_id": edited[2]["id"]})
    listed = (await api.client.get("/api/conversations")).json()["items"]
    assert listed[0]["id"] == other
    assert [m["content"] for m in await _shown(api, cid)][-1] == "Echo: two, edited"

    # Editing the very first message makes a second root.
    await _send(api, cid, "zero", edit_of=original[0]["id"])
    shown = await _shown(api, cid)
    assert [m["content"] for m in shown] == ["zero", "Echo: zero"]
    assert shown[0]["parent_id"] is None
    assert shown[0]["siblings"] == [original[0]["id"], shown[0]["id"]]
    # Back to the first root: the deeper choice made there is still remembered.
    await api.client.put(f"/api/conversations/{cid}/branch", json={"message_id": original[0]["id"]})
    assert [m["content"] for m in await _shown(api, cid)][-1] == "Echo: two, edited"


async def test_pages_follow_the_branch_shown_newest_first(api: AppUnderTest) -> None:
    cid = await _new(api)
    for index in range(7):
        await _send(api, cid, f"m{index}")
    await _stream(
        api, f"/api/conversations/{cid}/messages/{(await _shown(api, cid))[-1]['id']}/regenerate"
    )
    path = [m["id"] for m in await _shown(api, cid)]
    assert len(path) == 14
    first = (await api.client.get(f"/api/conversations/{cid}/messages", params={"limit": 5})).json()
    assert [m["id"] for m in first["items"]] == path[-5:]
    assert first["has_more"] is True
    assert len(first["items"][-1]["siblings"]) == 2
    pages = [first]
    while pages[-1]["has_more"]:
        before = pages[-1]["items"][0]["id"]
        response = await api.client.get(
            f"/api/conversations/{cid}/messages", params={"limit": 5, "before": before}
        )
        assert response.status_code == 200
        pages.append(response.json())
    assert [m["id"] for page in reversed(pages) for m in page["items"]] == path
    assert [len(page["items"]) for page in pages] == [5, 5, 4]

    # The detail carries only the newest page.
    for index in range(7, 30):
        await _send(api, cid, f"m{index}")
    detail = (await api.client.get(f"/api/conversations/{cid}")).json()
    assert len(detail["messages"]) == 50
    assert detail["has_more"] is True
    assert detail["messages"][-1]["content"] == "Echo: m29"

    # A message off the branch shown, an unknown one, bad limits.
    hidden = first["items"][-1]["siblings"][0]
    off = await api.client.get(f"/api/conversations/{cid}/messages", params={"before": hidden})
    assert off.status_code == 409
    unknown = await api.client.get(f"/api/conversations/{cid}/messages", params={"before": "nope"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["param"] == "before"
    for limit in (0, 201, "x"):
        bad = await api.client.get(f"/api/conversations/{cid}/messages", params={"limit": limit})
        assert bad.status_code in (400, 422), bad.text


async def test_feedback_is_stored_changed_and_cleared(api: AppUnderTest) -> None:
    cid = await _new(api)
    await _send(api, cid, "rate me")
    user, reply = await _shown(api, cid)
    path = f"/api/conversations/{cid}/messages/{reply['id']}/feedback"
    payload = '<img src=x onerror="alert(1)"> not <b>great</b>'
    given = await api.client.put(path, json={"rating": "down", "comment": payload})
    assert given.status_code == 200, given.text
    assert given.json()["rating"] == "down"
    assert given.json()["comment"] == payload  # stored as text; the UI writes it as text
    assert (await _shown(api, cid))[1]["feedback"]["comment"] == payload
    changed = await api.client.put(path, json={"rating": "up"})
    assert changed.json() == {**changed.json(), "rating": "up", "comment": ""}
    assert (await _shown(api, cid))[1]["feedback"]["rating"] == "up"
    assert (await api.client.delete(path)).status_code == 204
    assert (await _shown(api, cid))[1]["feedback"] is None
    assert (await api.client.delete(path)).status_code == 204  # clearing twice is fine

    bad_bodies: list[Any] = [
        {"rating": "meh"},
        {},
        {"rating": "up", "comment": "x" * 2001},
        {"rating": "up", "extra": 1},
        {"rating": "up", "comment": "nul\x00"},
    ]
    for body in bad_bodies:
        response = await api.client.put(path, json=body)
        assert 400 <= response.status_code < 500, (body, response.text)
        assert "error" in response.json()
    on_user = await api.client.put(
        f"/api/conversations/{cid}/messages/{user['id']}/feedback", json={"rating": "up"}
    )
    assert on_user.status_code == 400
    missing = await api.client.put(
        f"/api/conversations/{cid}/messages/nope/feedback", json={"rating": "up"}
    )
    assert missing.status_code == 404
    # Deleting the conversation takes its feedback with it.
    await api.client.put(path, json={"rating": "up"})
    assert (await api.client.delete(f"/api/conversations/{cid}")).status_code == 204


async def test_bad_branch_requests(api: AppUnderTest) -> None:
    cid = await _new(api)
    await _send(api, cid, "hello")
    user, reply = await _shown(api, cid)
    cases: list[tuple[str, str, Any, int]] = [
        ("PUT", f"/api/conversations/{cid}/branch", {"message_id": "nope"}, 404),
        ("PUT", f"/api/conversations/{cid}/branch", {}, 400),
        ("POST", f"/api/conversations/{cid}/messages/nope/regenerate", None, 404),
        ("POST", f"/api/conversations/{cid}/messages", {"content": "x", "edit_of": "nope"}, 404),
        (
            "POST",
            f"/api/conversations/{cid}/messages",
            {"content": "x", "edit_of": reply["id"]},
            404,
        ),
        (
            "POST",
            f"/api/conversations/{cid}/messages",
            {"content": "x", "edit_of": user["id"], "parent_id": user["id"]},
            400,
        ),
        (
            "POST",
            f"/api/conversations/{cid}/messages",
            {"content": " ", "edit_of": user["id"]},
            400,
        ),
    ]
    for method, path, body, status in cases:
        response = await api.client.request(method, path, json=body)
        assert response.status_code in ((400, 422) if status == 400 else (status,)), (
            path,
            body,
            response.text,
        )
        assert "error" in response.json()
    # Nothing was stored by the refused requests.
    shown = await _shown(api, cid)
    assert [m["id"] for m in shown] == [user["id"], reply["id"]]
    assert shown[0]["siblings"] == [user["id"]]


@pytest.fixture
async def second_client(api: AppUnderTest) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://onebox.test") as client:
        yield client


async def test_others_cannot_touch_branches_or_feedback(
    api: AppUnderTest, second_client: httpx.AsyncClient
) -> None:
    state = api.app.state.onebox
    await make_account(state, "owner@example.com")
    await make_account(state, "intruder@example.com")
    owner = await sign_in(api.client, "owner@example.com")
    intruder = await sign_in(second_client, "intruder@example.com")
    cid = (await api.client.post("/api/conversations", json={}, headers=owner.headers())).json()[
        "id"
    ]
    response = await api.client.post(
        f"/api/conversations/{cid}/messages", json={"content": "mine"}, headers=owner.headers()
    )
    assert response.status_code == 200
    user, reply = (await api.client.get(f"/api/conversations/{cid}")).json()["messages"]
    await api.client.put(
        f"/api/conversations/{cid}/messages/{reply['id']}/feedback",
        json={"rating": "up", "comment": "owner's"},
        headers=owner.headers(),
    )
    attempts: list[tuple[str, str, Any]] = [
        ("GET", f"/api/conversations/{cid}/messages", None),
        ("PUT", f"/api/conversations/{cid}/branch", {"message_id": user["id"]}),
        ("POST", f"/api/conversations/{cid}/messages/{reply['id']}/regenerate", None),
        ("POST", f"/api/conversations/{cid}/messages", {"content": "x", "edit_of": user["id"]}),
        ("PUT", f"/api/conversations/{cid}/messages/{reply['id']}/feedback", {"rating": "down"}),
        ("DELETE", f"/api/conversations/{cid}/messages/{reply['id']}/feedback", None),
    ]
    for method, path, body in attempts:
        response = await second_client.request(method, path, json=body, headers=intruder.headers())
        assert response.status_code == 404, (method, path, response.text)
    kept = (await api.client.get(f"/api/conversations/{cid}")).json()["messages"]
    assert [m["id"] for m in kept] == [user["id"], reply["id"]]
    assert kept[1]["feedback"]["comment"] == "owner's"
    assert kept[1]["siblings"] == [reply["id"]]
