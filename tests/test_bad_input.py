"""Malformed requests get a clear 4xx JSON error and never change stored data."""

from __future__ import annotations

import pytest

from tests.conftest import AppUnderTest

pytestmark = pytest.mark.anyio


async def _conversation(api: AppUnderTest) -> str:
    response = await api.client.post("/api/conversations", json={"title": "t"})
    return str(response.json()["id"])


async def _messages(api: AppUnderTest, conversation_id: str) -> list[dict[str, object]]:
    response = await api.client.get(f"/api/conversations/{conversation_id}")
    return list(response.json()["messages"])


def _assert_error(response: object, status: int) -> dict[str, str]:
    import httpx

    assert isinstance(response, httpx.Response)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"]
    assert error["type"]
    return dict(error)


async def test_malformed_json(api: AppUnderTest) -> None:
    conversation_id = await _conversation(api)
    response = await api.client.post(
        f"/api/conversations/{conversation_id}/messages",
        content=b'{"content": "unterminated',
        headers={"content-type": "application/json"},
    )
    _assert_error(response, 400)
    assert await _messages(api, conversation_id) == []


async def test_invalid_utf8(api: AppUnderTest) -> None:
    conversation_id = await _conversation(api)
    response = await api.client.post(
        f"/api/conversations/{conversation_id}/messages",
        content=b'{"content": "caf\xe9 \xff"}',
        headers={"content-type": "application/json"},
    )
    _assert_error(response, 400)
    assert await _messages(api, conversation_id) == []


async def test_wrong_content_type(api: AppUnderTest) -> None:
    conversation_id = await _conversation(api)
    response = await api.client.post(
        f"/api/conversations/{conversation_id}/messages",
        content=b"content=hello",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    error = _assert_error(response, 415)
    assert "application/json" in error["message"]


async def test_body_over_the_request_limit(api: AppUnderTest) -> None:
    conversation_id = await _conversation(api)
    response = await api.client.post(
        f"/api/conversations/{conversation_id}/messages",
        json={"content": "x" * (70 * 1024)},
    )
    _assert_error(response, 413)
    assert await _messages(api, conversation_id) == []


@pytest.mark.parametrize("content", ["", "   \n\t  ", "\x00\x01\x02"])
async def test_empty_message(api: AppUnderTest, content: str) -> None:
    conversation_id = await _conversation(api)
    response = await api.client.post(
        f"/api/conversations/{conversation_id}/messages", json={"content": content}
    )
    error = _assert_error(response, 400)
    assert error["param"] == "content"
    assert await _messages(api, conversation_id) == []


async def test_message_over_the_character_limit(api: AppUnderTest) -> None:
    conversation_id = await _conversation(api)
    response = await api.client.post(
        f"/api/conversations/{conversation_id}/messages", json={"content": "y" * 2001}
    )
    error = _assert_error(response, 400)
    assert "2000" in error["message"]
    assert await _messages(api, conversation_id) == []


@pytest.mark.parametrize(
    "body",
    [{}, {"content": 12}, {"content": ["a"]}, {"content": "hi", "unexpected": 1}, [1, 2]],
)
async def test_wrong_shapes(api: AppUnderTest, body: object) -> None:
    conversation_id = await _conversation(api)
    response = await api.client.post(f"/api/conversations/{conversation_id}/messages", json=body)
    _assert_error(response, 422)
    assert await _messages(api, conversation_id) == []


async def test_unknown_parent_message(api: AppUnderTest) -> None:
    conversation_id = await _conversation(api)
    response = await api.client.post(
        f"/api/conversations/{conversation_id}/messages",
        json={"content": "hi", "parent_id": "nope"},
    )
    error = _assert_error(response, 404)
    assert error["param"] == "parent_id"
    assert await _messages(api, conversation_id) == []


async def test_unknown_route_and_method(api: AppUnderTest) -> None:
    _assert_error(await api.client.get("/api/nothing-here"), 404)
    _assert_error(await api.client.put("/api/conversations", json={}), 405)
