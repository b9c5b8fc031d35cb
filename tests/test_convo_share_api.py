"""Read-only share links: made and revoked by the owner, opened signed out, leaking
nothing else; on both databases."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.accounts import SignedIn, make_account, sign_in
from tests.conftest import AppUnderTest
from tests.convo_helpers import XSS, branched_file, conversation_file, import_file, message, source

pytestmark = pytest.mark.anyio


@pytest.fixture
async def visitor(api: AppUnderTest) -> AsyncIterator[httpx.AsyncClient]:
    """A browser with no cookies: nobody signed in."""
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://onebox.test") as client:
        yield client


async def _owner(api: AppUnderTest) -> SignedIn:
    await make_account(api.app.state.onebox, "owner@example.com")
    return await sign_in(api.client, "owner@example.com")


async def test_a_share_opens_signed_out_until_revoked(
    api: AppUnderTest, visitor: httpx.AsyncClient
) -> None:
    owner = await _owner(api)
    shared = await import_file(api.client, branched_file(), owner.headers())
    private = await import_file(
        api.client, conversation_file([], title="Private plans"), owner.headers()
    )
    path = f"/api/conversations/{shared['id']}/shares"
    created = await api.client.post(path, headers=owner.headers())
    assert created.status_code == 201, created.text
    share = created.json()
    token = share["token"]
    assert len(token) >= 43
    assert share["path"] == f"/s/{token}"
    assert token.startswith(share["prefix"])

    listed = (await api.client.get(path)).json()
    assert [s["id"] for s in listed] == [share["id"]]
    assert "token" not in listed[0]

    page = await visitor.get(f"/s/{token}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src" not in csp  # no script may run at all
    assert page.headers["x-robots-tag"] == "noindex, nofollow"
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    body = page.text
    assert '<meta name="robots" content="noindex, nofollow">' in body
    assert "<strong>Onebox</strong>" in body  # the renderer's Markdown
    assert "A self-hosted chat [1]." in body
    assert "An old answer." not in body  # another branch
    assert "guide.md" in body
    assert "Snippet of guide.md" in body
    assert "other.md" in body  # retrieved: listed, not marked cited
    assert "owner@example.com" not in body
    assert "Private plans" not in body
    assert shared["id"] not in body
    assert "doc-1" not in body
    assert "collection-1" not in body
    assert not re.search(r"https?://", body)  # nothing fetched from anywhere

    assert (await visitor.get(path)).status_code == 401  # the API stays private
    assert (await visitor.get(f"/api/conversations/{private['id']}/export")).status_code == 401

    revoked = await api.client.delete(f"{path}/{share['id']}", headers=owner.headers())
    assert revoked.status_code == 204
    gone = await visitor.get(f"/s/{token}")
    assert gone.status_code == 404
    assert "Link not found" in gone.text
    assert "A self-hosted chat" not in gone.text
    assert gone.headers["x-robots-tag"] == "noindex, nofollow"
    assert (await api.client.get(path)).json() == []


@pytest.mark.parametrize("token", ["nope", "A" * 43, "x" * 500, "%00" * 20, "a.b"])
async def test_unknown_tokens_are_a_404_page(visitor: httpx.AsyncClient, token: str) -> None:
    response = await visitor.get(f"/s/{token}")
    assert response.status_code in (400, 404)
    if response.status_code == 404:
        assert "default-src 'none'" in response.headers["content-security-policy"]


async def test_a_share_shows_the_branch_as_it_was_shared(api: AppUnderTest) -> None:
    conversation = (await api.client.post("/api/conversations", json={})).json()
    path = f"/api/conversations/{conversation['id']}"
    empty = await api.client.post(f"{path}/shares")
    assert empty.status_code == 400  # nothing to share yet
    await api.client.post(f"{path}/messages", json={"content": "first words"})
    token = (await api.client.post(f"{path}/shares")).json()["token"]
    await api.client.post(f"{path}/messages", json={"content": "later words"})
    page = (await api.client.get(f"/s/{token}")).text
    assert "first words" in page
    assert "later words" not in page
    unknown = await api.client.post(f"{path}/shares", json={"message_id": "nope"})
    assert unknown.status_code == 404
    # Deleting the conversation ends its links.
    assert (await api.client.delete(path)).status_code == 204
    assert (await api.client.get(f"/s/{token}")).status_code == 404


async def test_a_shared_page_is_inert(api: AppUnderTest) -> None:
    imported = await import_file(
        api.client,
        conversation_file(
            [
                message("1", None, "user", XSS, 1),
                message(
                    "2",
                    "1",
                    "assistant",
                    f"[x](javascript:alert(1)) {XSS}",
                    2,
                    sources=[{**source(1, XSS), "heading": XSS, "snippet": XSS}],
                ),
            ],
            title=XSS,
        ),
    )
    share = (await api.client.post(f"/api/conversations/{imported['id']}/shares")).json()
    page = (await api.client.get(share["path"])).text
    assert not re.search(r"<(script|img)\b", page)
    assert "javascript:" not in " ".join(re.findall(r'href="[^"]*"', page))
    assert "&lt;script&gt;" in page


async def test_only_the_owner_manages_shares(api: AppUnderTest, visitor: httpx.AsyncClient) -> None:
    owner = await _owner(api)
    await make_account(api.app.state.onebox, "other@example.com")
    other = await sign_in(visitor, "other@example.com")
    mine = await import_file(api.client, branched_file(), owner.headers())
    path = f"/api/conversations/{mine['id']}/shares"
    share = (await api.client.post(path, headers=owner.headers())).json()
    assert (await visitor.post(path, headers=other.headers())).status_code == 404
    assert (await visitor.get(path)).status_code == 404
    assert (
        await visitor.delete(f"{path}/{share['id']}", headers=other.headers())
    ).status_code == 404
    assert (await visitor.get(f"/api/conversations/{mine['id']}/export")).status_code == 404
    assert (await visitor.get(share["path"])).status_code == 200  # the link itself still works
