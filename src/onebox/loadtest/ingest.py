"""``onebox bench ingest``: upload generated documents to a running Onebox through its API
and time them until they are indexed."""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from onebox.loadtest.http import Client
from onebox.loadtest.stats import distribution
from onebox.loadtest.workloads import make_prompt

POLL_INTERVAL = 0.25
PAGE = 500  # the documents list's largest page
DONE = {"ready", "failed"}


class BenchError(Exception):
    """The target answered something the benchmark cannot go on from."""


async def call(client: Client, method: str, path: str, payload: object = None) -> Any:
    """A JSON API call; raises :class:`BenchError` with the server's message on failure."""
    body = b"" if payload is None else json.dumps(payload).encode()
    raw = client.raw_request(
        method, path, body, "application/json" if payload is not None else None
    )
    exchange = await client.send(raw, keep_body=True)
    text = bytes(exchange.body or b"")
    if not exchange.ok:
        detail = exchange.error or f"HTTP {exchange.status}: {text[:300].decode(errors='replace')}"
        raise BenchError(f"{method} {path}: {detail}")
    return json.loads(text) if text else None


async def resolve_collection(client: Client, wanted: str) -> dict[str, Any]:
    """A collection by id or name."""
    listed = await call(client, "GET", "/api/collections")
    for collection in listed["items"]:
        if wanted in (collection["id"], collection["name"]):
            return dict(collection)
    raise BenchError(f"no collection {wanted!r} on {client.origin.host_header}")


def document_text(index: int, words: int, rng: random.Random, run: str) -> str:
    """A Markdown document of about ``words`` words in paragraphs under headings; ``run``
    makes it unique, so a repeated run is not deduplicated away."""
    parts = [f"# Bench document {index} ({run})\n"]
    written = 0
    section = 0
    while written < words:
        section += 1
        parts.append(f"\n## Section {section}\n")
        for _ in range(3):
            size = min(60, max(1, words - written))
            parts.append("\n" + make_prompt(size, rng).capitalize() + ".\n")
            written += size
            if written >= words:
                break
    return "".join(parts)


def multipart(files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = f"onebox-bench-{secrets.token_hex(8)}"
    chunks = []
    for name, data in files:
        chunks.append(
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
                f'filename="{name}"\r\nContent-Type: text/markdown\r\n\r\n'
            ).encode()
            + data
            + b"\r\n"
        )
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


@dataclass
class IngestPlan:
    documents: int = 50
    words: int = 800
    batch: int = 10  # files per upload request
    concurrency: int = 2  # upload requests in flight
    collection: str | None = None  # an existing one (kept); None: a new one (deleted after)
    keep: bool = False
    timeout: float = 600.0  # for everything to be indexed
    seed: int = 0


Progress = Callable[[int, int, int], None]  # uploaded, ready, failed


async def run_ingest(
    client: Client, plan: IngestPlan, progress: Progress | None = None
) -> dict[str, Any]:
    if plan.documents < 1 or plan.batch < 1 or plan.concurrency < 1 or plan.words < 1:
        raise ValueError("documents, words, batch and concurrency must be at least 1")
    if plan.collection:
        collection = await resolve_collection(client, plan.collection)
        owned = False
    else:
        name = f"onebox-bench-{secrets.token_hex(4)}"
        collection = await call(client, "POST", "/api/collections", {"name": name})
        owned = True
    try:
        return await _ingest(client, plan, collection["id"], progress)
    finally:
        if owned and not plan.keep:
            await call(client, "DELETE", f"/api/collections/{collection['id']}")


async def _ingest(
    client: Client, plan: IngestPlan, collection_id: str, progress: Progress | None
) -> dict[str, Any]:
    rng = random.Random(plan.seed)  # noqa: S311 - document text, not secrets
    run = secrets.token_hex(4)
    texts = [
        (f"bench-{run}-{i:05d}.md", document_text(i, plan.words, rng, run).encode())
        for i in range(plan.documents)
    ]
    batches = [texts[i : i + plan.batch] for i in range(0, len(texts), plan.batch)]
    uploaded_at: dict[str, float] = {}
    state = {"uploaded": 0, "ready": 0, "failed": 0}

    def report() -> None:
        if progress is not None:
            progress(state["uploaded"], state["ready"], state["failed"])

    gate = asyncio.Semaphore(plan.concurrency)
    path = f"/api/collections/{collection_id}/documents"

    async def upload(files: list[tuple[str, bytes]]) -> None:
        body, content_type = multipart(files)
        async with gate:
            sent = time.perf_counter()
            result = await call_raw(client, client.raw_request("POST", path, body, content_type))
        for document in result["documents"]:
            uploaded_at[document["id"]] = sent
        state["uploaded"] += len(result["documents"])
        report()

    begin = time.perf_counter()
    await asyncio.gather(*(upload(files) for files in batches))
    uploaded = time.perf_counter()
    finished = await _wait_indexed(client, path, uploaded_at, state, report, plan.timeout)
    last_ready = max((at for at, _ in finished.values()), default=uploaded)
    ready = {i: v for i, v in finished.items() if v[1]["status"] == "ready"}
    failed = {i: v for i, v in finished.items() if v[1]["status"] != "ready"}
    chunks = sum(int(document["chunk_count"]) for _, document in ready.values())
    indexed = max(last_ready - begin, 1e-9)
    return {
        "collection_id": collection_id,
        "documents": plan.documents,
        "uploaded": len(uploaded_at),
        "ready": len(ready),
        "failed": len(failed),
        "failures": sorted({str(document.get("error")) for _, document in failed.values()})[:5],
        "chunks": chunks,
        "upload_s": uploaded - begin,
        "indexed_s": indexed,
        "documents_per_s": len(ready) / indexed,
        "chunks_per_s": chunks / indexed,
        "time_to_ready_ms": distribution(
            (at - uploaded_at[doc_id]) * 1000 for doc_id, (at, _) in ready.items()
        ),
        "poll_interval_s": POLL_INTERVAL,
    }


async def call_raw(client: Client, raw: bytes) -> Any:
    exchange = await client.send(raw, keep_body=True)
    text = bytes(exchange.body or b"")
    if not exchange.ok:
        detail = exchange.error or f"HTTP {exchange.status}: {text[:300].decode(errors='replace')}"
        raise BenchError(f"upload: {detail}")
    return json.loads(text)


async def _wait_indexed(
    client: Client,
    path: str,
    wanted: dict[str, float],
    state: dict[str, int],
    report: Callable[[], None],
    limit: float,
) -> dict[str, tuple[float, dict[str, Any]]]:
    """Polls the collection's documents until every uploaded one is ready or failed: for
    each, when it was first seen done, and its row."""
    finished: dict[str, tuple[float, dict[str, Any]]] = {}
    deadline = time.perf_counter() + limit
    while len(finished) < len(wanted):
        if time.perf_counter() > deadline:
            raise BenchError(
                f"{len(wanted) - len(finished)} documents were not indexed within {limit:g} s"
            )
        seen = time.perf_counter()
        offset = 0
        while True:
            page = await call(client, "GET", f"{path}?limit={PAGE}&offset={offset}")
            for document in page["items"]:
                if (
                    document["id"] in wanted
                    and document["id"] not in finished
                    and document["status"] in DONE
                ):
                    finished[document["id"]] = (seen, document)
            if page.get("next_offset") is None:
                break
            offset = int(page["next_offset"])
        state["ready"] = sum(1 for _, d in finished.values() if d["status"] == "ready")
        state["failed"] = len(finished) - state["ready"]
        report()
        if len(finished) < len(wanted):
            await asyncio.sleep(POLL_INTERVAL)
    return finished
