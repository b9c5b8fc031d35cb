"""``GET /api/bootstrap``: the first screen's data in one request, part for part the same as
the separate endpoints, and nothing of anyone's data without a sign-in."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.accounts import make_account, sign_in
from tests.conftest import AppUnderTest

pytestmark = pytest.mark.anyio


@pytest.fixture
async def stranger(api: AppUnderTest) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://onebox.test") as client:
        yield client


async def parts(client: httpx.AsyncClient) -> dict[str, object]:
    """What the five separate endpoints answer, keyed like the bootstrap's fields."""
    separate = {
        "config": await client.get("/api/auth/config"),
        "me": await client.get("/api/auth/me"),
        "models": await client.get("/api/models"),
        "conversations": await client.get("/api/conversations?limit=50&offset=0"),
        "collections": await client.get("/api/collections"),
    }
    for name, response in separate.items():
        assert response.status_code == 200, (name, response.text)
    out = {name: response.json() for name, response in separate.items()}
    out["collections"] = out["collections"]["items"]  # type: ignore[index]
    return out


async def test_single_user_mode_gets_everything_the_separate_endpoints_give(
    api: AppUnderTest,
) -> None:
    for title in ("first", "second"):
        assert (await api.client.post("/api/conversations", json={"title": title})).is_success
    created = await api.client.post("/api/collections", json={"name": "Handbook"})
    assert created.status_code == 201

    response = await api.client.get("/api/bootstrap")
    assert response.status_code == 200
    body = response.json()
    assert body["me"]["mode"] == "anonymous"
    assert [c["title"] for c in body["conversations"]["items"]] == ["second", "first"]
    assert [c["name"] for c in body["collections"]] == ["Handbook"]
    assert body == await parts(api.client)


async def test_signed_out_gets_the_config_and_no_data(
    api: AppUnderTest, stranger: httpx.AsyncClient
) -> None:
    state = api.app.state.onebox
    await make_account(state, "owner@example.com")
    owner = await sign_in(api.client, "owner@example.com")
    made = await owner.client.post(
        "/api/conversations", json={"title": "private"}, headers=owner.headers()
    )
    assert made.status_code == 201

    response = await stranger.get("/api/bootstrap")
    assert response.status_code == 200
    assert response.json() == {
        "config": {"signup_open": state.settings.signup_open, "anonymous": False},
        "me": None,
        "models": [],
        "conversations": None,
        "collections": [],
    }

    # Signed in, it is the owner's own data, as the separate endpoints give it.
    body = (await owner.client.get("/api/bootstrap")).json()
    assert body["me"]["user"]["email"] == "owner@example.com"
    assert [c["title"] for c in body["conversations"]["items"]] == ["private"]
    assert body == await parts(owner.client)


async def test_a_bad_bearer_key_is_treated_as_signed_out(api: AppUnderTest) -> None:
    response = await api.client.get(
        "/api/bootstrap", headers={"Authorization": "Bearer obx_not_a_real_key"}
    )
    assert response.status_code == 200
    assert response.json()["me"] is None
