"""Documents, collections, passages and jobs are private: another account cannot list,
read, search, attach, delete or retrieve from them — and keys only read their allow-list."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.accounts import SignedIn, make_account, sign_in
from tests.conftest import AppUnderTest
from tests.documents_helpers import create_collection, upload, wait_for_documents

pytestmark = pytest.mark.anyio

SECRET = b"The merger code name is Bluefinch and it closes on the ninth of March."


@pytest.fixture
async def intruder_client(api: AppUnderTest) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://onebox.test") as client:
        yield client


async def _two_users(api: AppUnderTest, other: httpx.AsyncClient) -> tuple[SignedIn, SignedIn]:
    state = api.app.state.onebox
    await make_account(state, "owner@example.com")
    await make_account(state, "intruder@example.com")
    return await sign_in(api.client, "owner@example.com"), await sign_in(
        other, "intruder@example.com"
    )


async def test_documents_are_private(api: AppUnderTest, intruder_client: httpx.AsyncClient) -> None:
    owner, intruder = await _two_users(api, intruder_client)
    collection = await create_collection(api.client, "Board", headers=owner.headers())
    cid = collection["id"]
    uploaded = await upload(api.client, cid, [("merger.txt", SECRET)], headers=owner.headers())
    document = uploaded.json()["documents"][0]
    await wait_for_documents(api.client, cid, expected=1)
    source = (
        await api.client.post(
            "/api/search", json={"query": "merger code name", "collection_ids": [cid]},
            headers=owner.headers(),
        )
    ).json()["sources"][0]  # fmt: skip

    h = intruder.headers()
    attempts = [
        ("GET", f"/api/collections/{cid}", None),
        ("PATCH", f"/api/collections/{cid}", {"name": "mine"}),
        ("DELETE", f"/api/collections/{cid}", None),
        ("GET", f"/api/collections/{cid}/documents", None),
        ("POST", f"/api/collections/{cid}/urls", {"url": "https://example.com/"}),
        ("GET", f"/api/documents/{document['id']}", None),
        ("DELETE", f"/api/documents/{document['id']}", None),
        ("POST", f"/api/documents/{document['id']}/retry", None),
        ("GET", f"/api/chunks/{source['chunk_id']}", None),
        ("POST", "/api/search", {"query": "merger", "collection_ids": [cid]}),
        ("POST", "/api/conversations", {"collection_ids": [cid]}),
    ]
    job_id = document["job"]["id"]
    attempts.append(("GET", f"/api/jobs/{job_id}", None))
    for method, path, body in attempts:
        response = await intruder_client.request(method, path, json=body, headers=h)
        assert response.status_code == 404, (method, path, response.text)
    assert (await intruder_client.get("/api/jobs")).json()["items"] == []
    mine = (await api.client.get("/api/jobs")).json()["items"]
    assert [job["id"] for job in mine] == [job_id]
    assert (await api.client.get(f"/api/jobs/{job_id}")).json()["status"] == "done"
    sneaky = await upload(intruder_client, cid, [("x.txt", b"hello there")], headers=h)
    assert sneaky.status_code == 404
    assert (await intruder_client.get("/api/collections")).json()["items"] == []

    # A conversation of the intruder's own cannot be pointed at the collection either.
    mine = (await intruder_client.post("/api/conversations", json={}, headers=h)).json()
    patched = await intruder_client.patch(
        f"/api/conversations/{mine['id']}", json={"collection_ids": [cid]}, headers=h
    )
    assert patched.status_code == 404

    # Same collection name, other owner: retrieval stays inside the caller's own data.
    own = await create_collection(intruder_client, "Board", headers=h)
    await upload(intruder_client, own["id"], [("mine.txt", b"Nothing to see.")], headers=h)
    await wait_for_documents(intruder_client, own["id"], expected=1)
    found = await intruder_client.post(
        "/api/search", json={"query": "merger Bluefinch", "collection_ids": ["Board"]}, headers=h
    )
    assert found.status_code == 200
    assert all(s["document"] == "mine.txt" for s in found.json()["sources"])

    kept = (await api.client.get(f"/api/collections/{cid}")).json()
    assert kept["name"] == "Board"
    assert kept["document_count"] == 1


async def test_index_filter_is_part_of_the_query(api: AppUnderTest) -> None:
    client = api.client
    first = await create_collection(client, "first")
    second = await create_collection(client, "second")
    await upload(client, first["id"], [("merger.txt", SECRET)])
    await upload(client, second["id"], [("other.txt", b"Weather report: rain in the north.")])
    await wait_for_documents(client, first["id"], expected=1)
    await wait_for_documents(client, second["id"], expected=1)
    state = api.app.state.onebox
    vector = (await state.embedder.embed(["merger code name Bluefinch"], kind="query"))[0]
    hits = await state.index.search(
        dense=vector, text="merger Bluefinch", collection_ids=[second["id"]], limit=10
    )
    assert hits, "the allowed collection's passage is still found"
    assert {hit.collection_id for hit in hits} == {second["id"]}


async def test_api_key_reads_only_its_collections(api: AppUnderTest) -> None:
    state = api.app.state.onebox
    await make_account(state, "keys@example.com")
    signed = await sign_in(api.client, "keys@example.com")
    allowed = await create_collection(api.client, "public-docs", headers=signed.headers())
    hidden = await create_collection(api.client, "hr", headers=signed.headers())
    key = (
        await api.client.post(
            "/api/keys", json={"collections": ["public-docs"]}, headers=signed.headers()
        )
    ).json()["secret"]
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://onebox.test") as bare:
        auth = {"authorization": f"Bearer {key}"}
        body = {"model": "fake-echo", "messages": [{"role": "user", "content": "hi"}]}
        ok = await bare.post("/v1/chat/completions", json={**body, "collections": ["public-docs"]},
                             headers=auth)  # fmt: skip
        assert ok.status_code == 200, ok.text
        denied = await bare.post("/v1/chat/completions", json={**body, "collections": ["hr"]},
                                 headers=auth)  # fmt: skip
        assert denied.status_code == 403
        assert "may not read collection" in denied.json()["error"]["message"]
        search = await bare.post(
            "/api/search", json={"query": "x", "collection_ids": [hidden["id"]]}, headers=auth
        )
        assert search.status_code == 403
        search = await bare.post(
            "/api/search", json={"query": "x", "collection_ids": [allowed["id"]]}, headers=auth
        )
        assert search.status_code == 200


async def test_hydrating_hits_keeps_only_the_allowed_collections(api: AppUnderTest) -> None:
    """An index that drifted from the database (a hit the search filter should have dropped)
    still never surfaces a passage from a collection the caller did not ask for."""
    from onebox.documents.repository import DocumentRepository

    kept = await create_collection(api.client, "Kept")
    other = await create_collection(api.client, "Other")
    await upload(api.client, kept["id"], [("kept.txt", b"Lighthouses are lit at dusk.")])
    await upload(api.client, other["id"], [("other.txt", SECRET)])
    await wait_for_documents(api.client, kept["id"], expected=1)
    await wait_for_documents(api.client, other["id"], expected=1)

    async def chunk_ids(collection_id: str, query: str) -> list[str]:
        response = await api.client.post(
            "/api/search", json={"query": query, "collection_ids": [collection_id]}
        )
        return [source["chunk_id"] for source in response.json()["sources"]]

    ours = await chunk_ids(kept["id"], "lighthouses")
    theirs = await chunk_ids(other["id"], "merger code name")
    assert ours
    assert theirs
    async with api.app.state.onebox.sessionmaker() as session:
        found = await DocumentRepository(session).chunks_with_documents(ours + theirs, [kept["id"]])
    assert set(found) == set(ours)
    assert all(chunk.collection_id == kept["id"] for chunk, _ in found.values())
