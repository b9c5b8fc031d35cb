"""Malformed requests get a clear 4xx JSON error and never change stored data."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from onebox.core.inputs import MAX_PAGE_OFFSET
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


NUL = "before\x00after"


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/api/conversations", {"title": NUL}, "title"),
        ("/api/conversations", {"collection_ids": ["fine", NUL]}, "collection_ids.1"),
        ("/api/collections", {"name": NUL}, "name"),
        ("/api/collections", {"name": "ok", "description": NUL}, "description"),
        ("/api/keys", {"name": NUL}, "name"),
        ("/api/auth/login", {"email": NUL, "password": "secret"}, "email"),
        ("/api/auth/signup", {"email": "a@example.com", "password": NUL}, "password"),
        ("/api/search", {"query": NUL, "collection_ids": ["c"]}, "query"),
    ],
)
async def test_nul_characters_are_a_400_and_nothing_is_stored(
    api: AppUnderTest, path: str, body: dict[str, object], param: str
) -> None:
    # PostgreSQL text cannot hold NUL: before this was refused up front, each was a 500.
    error = _assert_error(await api.client.post(path, json=body), 400)
    assert error["param"] == param
    assert "NUL" in error["message"]
    assert (await api.client.get("/api/conversations")).json()["items"] == []
    assert (await api.client.get("/api/collections")).json()["items"] == []
    assert (await api.client.get("/api/keys")).json() == []


async def test_nul_in_an_update_or_a_message_changes_nothing(api: AppUnderTest) -> None:
    conversation_id = await _conversation(api)
    path = f"/api/conversations/{conversation_id}"
    error = _assert_error(await api.client.patch(path, json={"title": NUL}), 400)
    assert error["param"] == "title"
    error = _assert_error(await api.client.post(f"{path}/messages", json={"content": NUL}), 400)
    assert error["param"] == "content"
    kept = (await api.client.get(path)).json()
    assert kept["title"] == "t"
    assert kept["messages"] == []


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/chat/completions", {"model": NUL, "messages": [{"role": "user", "content": "hi"}]},
         "model"),
        ("/v1/chat/completions", {"model": "fake-echo", "messages": [{"role": "user",
         "content": NUL}]}, "messages.0.content"),
        ("/v1/chat/completions", {"model": "fake-echo", "messages": [{"role": "user",
         "content": [{"type": "text", "text": NUL}]}]}, "messages.0.content"),
        ("/v1/chat/completions", {"model": "fake-echo", "messages": [{"role": "user",
         "content": "hi"}], "stop": ["ok", NUL]}, "stop"),
        ("/v1/embeddings", {"input": ["fine", NUL]}, "input"),
    ],
)  # fmt: skip
async def test_nul_characters_on_the_openai_api_are_a_400(
    api: AppUnderTest, path: str, body: dict[str, object], param: str
) -> None:
    error = _assert_error(await api.client.post(path, json=body), 400)
    assert error["param"] == param
    assert "NUL" in error["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/conversations/{id}%00"),
        ("PATCH", "/api/conversations/{id}%00"),
        ("DELETE", "/api/conversations/{id}%00"),
        ("GET", "/api/collections/a%00b/documents"),
        ("DELETE", "/api/keys/a%00b"),
        ("GET", "/api/conversations?include_archived=true&x=%00"),
    ],
)
async def test_nul_characters_in_the_url_are_a_400(
    api: AppUnderTest, method: str, path: str
) -> None:
    conversation_id = await _conversation(api)
    path = path.format(id=conversation_id)
    body = {"title": "changed"} if method == "PATCH" else None
    error = _assert_error(await api.client.request(method, path, json=body), 400)
    assert "NUL" in error["message"]
    kept = await api.client.get(f"/api/conversations/{conversation_id}")
    assert kept.json()["title"] == "t"


HUGE_OFFSET = 2**63  # one past the largest integer SQLite and PostgreSQL can bind


@pytest.mark.parametrize(
    "path",
    ["/api/conversations", "/api/jobs", "/api/admin/users", "/api/collections/{id}/documents"],
)
async def test_page_offsets_are_bounded(api: AppUnderTest, path: str) -> None:
    collection = (await api.client.post("/api/collections", json={"name": "c"})).json()
    path = path.format(id=collection["id"])
    too_far = await api.client.get(path, params={"offset": HUGE_OFFSET})
    error = _assert_error(too_far, 422)  # as every other bad page parameter
    assert error["param"] == "query.offset"
    farthest = await api.client.get(path, params={"offset": MAX_PAGE_OFFSET})
    assert farthest.status_code == 200, farthest.text


async def _chunked(payload: bytes, piece: int = 16 * 1024) -> AsyncIterator[bytes]:
    """A generator body: httpx sends it chunked, with no Content-Length to check up front."""
    for start in range(0, len(payload), piece):
        yield payload[start : start + piece]


JSON = {"content-type": "application/json"}
OVERSIZED = b'{"content": "' + b"x" * (70 * 1024) + b'"}'  # the limit here is 64 KB


async def test_oversized_chunked_bodies_are_a_413(
    api: AppUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    conversation_id = await _conversation(api)
    for path in (
        "/v1/chat/completions",
        "/api/conversations",
        f"/api/conversations/{conversation_id}/messages",
    ):
        response = await api.client.post(path, content=_chunked(OVERSIZED), headers=JSON)
        assert response.request.headers["transfer-encoding"] == "chunked"
        error = _assert_error(response, 413)
        assert error["type"] == "payload_too_large"
        assert "limit" in error["message"]
    # No traceback logged: a body too large is the client's mistake, not a server error.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert await _messages(api, conversation_id) == []
    assert len((await api.client.get("/api/conversations")).json()["items"]) == 1


async def test_chunked_bodies_within_the_limit_are_read(api: AppUnderTest) -> None:
    body = b'{"title": "sent in pieces"}'
    response = await api.client.post("/api/conversations", content=_chunked(body, 5), headers=JSON)
    assert response.status_code == 201, response.text
    assert response.json()["title"] == "sent in pieces"
    chat = b'{"model": "fake-echo", "messages": [{"role": "user", "content": "hi"}]}'
    response = await api.client.post(
        "/v1/chat/completions", content=_chunked(chat, 7), headers=JSON
    )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "Echo: hi"


@pytest.mark.parametrize("seed", [2**63, -(2**63) - 1, 10**40])
async def test_a_seed_wider_than_64_bits_is_a_400(api: AppUnderTest, seed: int) -> None:
    body = {"model": "fake-echo", "messages": [{"role": "user", "content": "hi"}], "seed": seed}
    error = _assert_error(await api.client.post("/v1/chat/completions", json=body), 400)
    assert error["param"] == "seed"
