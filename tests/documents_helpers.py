"""Helpers for document tests: upload through the real API and wait for the jobs."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

FINAL = {"ready", "failed"}
JOB_FINAL = {"done", "failed"}


def settled(item: dict[str, Any]) -> bool:
    """The document is final and so is its job (it is marked done just after)."""
    job = item.get("job")
    return item["status"] in FINAL and (job is None or job["status"] in JOB_FINAL)


async def create_collection(
    client: httpx.AsyncClient, name: str = "Handbook", headers: dict[str, str] | None = None
) -> dict[str, Any]:
    response = await client.post("/api/collections", json={"name": name}, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def upload(
    client: httpx.AsyncClient,
    collection_id: str,
    files: list[tuple[str, bytes]],
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return await client.post(
        f"/api/collections/{collection_id}/documents",
        files=[("files", (name, data)) for name, data in files],
        headers=headers,
    )


async def wait_for_documents(
    client: httpx.AsyncClient, collection_id: str, *, expected: int, max_wait: float = 60
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + max_wait
    while True:
        response = await client.get(f"/api/collections/{collection_id}/documents")
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        if len(items) >= expected and all(settled(item) for item in items):
            return items
        if time.monotonic() > deadline:
            raise AssertionError(f"documents not settled in {max_wait} s: {items}")
        await asyncio.sleep(0.1)


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["filename"]: item for item in items}
