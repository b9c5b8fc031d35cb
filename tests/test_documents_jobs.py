"""Ingestion jobs: URLs and sitemaps fetched by the worker, slow sites failing alone, and
jobs interrupted by a crash resumed by the next start."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from onebox.app import create_app
from onebox.core.db import utcnow
from onebox.core.settings import Settings
from onebox.documents.models import Collection, Document, DocumentBlob
from onebox.jobs.models import Job, JobStatus
from onebox.llm.fake import FakeProvider
from tests.conftest import api_settings
from tests.documents_helpers import by_name, create_collection, settled, wait_for_documents

pytestmark = pytest.mark.anyio

PAGES = {
    "/guide.html": b"<html><head><title>Guide</title></head><body><nav>menu</nav>"
    b"<h1>Kettle guide</h1><p>Descale the Ostrava kettle every fortnight with citric acid.</p>"
    b"<script>alert(1)</script></body></html>",
    "/faq.html": b"<html><body><h2>FAQ</h2><p>The warranty covers the heating plate for "
    b"three years.</p></body></html>",
}


class _Site(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow.html":
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.end_headers()
            for _ in range(50):  # drips one byte a second: longer than the fetch deadline
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(1)
            return
        if self.path == "/sitemap.xml":
            base = f"http://127.0.0.1:{self.server.server_address[1]}"
            body = (
                '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                + "".join(f"<url><loc>{base}{p}</loc></url>" for p in PAGES)
                + "</urlset>"
            ).encode()
            self._send(body, "application/xml")
            return
        if self.path in PAGES:
            self._send(PAGES[self.path], "text/html; charset=utf-8")
            return
        if self.path == "/loop.html":
            self.send_response(302)
            self.send_header("location", "/loop.html")
            self.send_header("content-length", "0")
            self.end_headers()
            return
        self.send_response(404)
        self.end_headers()

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return api_settings(
        tmp_path,
        database_url,
        fetch_allow_private=True,  # the test site is on loopback
        fetch_timeout_seconds=1.5,
        job_max_attempts=2,
        job_retry_base_seconds=0.05,
    )


async def test_pages_and_sitemaps_are_fetched_by_the_worker(api, site: str) -> None:  # type: ignore[no-untyped-def]
    client = api.client
    collection = await create_collection(client)
    one = await client.post(
        f"/api/collections/{collection['id']}/urls", json={"url": f"{site}/guide.html"}
    )
    assert one.status_code == 202, one.text
    items = await wait_for_documents(client, collection["id"], expected=1)
    assert items[0]["status"] == "ready", items
    assert items[0]["filename"] == f"{site}/guide.html"
    assert items[0]["media_type"] == "text/html"

    both = await client.post(
        f"/api/collections/{collection['id']}/urls",
        json={"url": f"{site}/sitemap.xml", "sitemap": True},
    )
    assert both.status_code == 202, both.text
    assert [d["filename"] for d in both.json()["documents"]] == [f"{site}/faq.html"]
    assert both.json()["duplicates"][0]["filename"] == f"{site}/guide.html"
    await wait_for_documents(client, collection["id"], expected=2)

    found = await client.post(
        "/api/search",
        json={"query": "how often to descale", "collection_ids": [collection["id"]]},
    )
    top = found.json()["sources"][0]
    assert top["document"] == f"{site}/guide.html"
    assert "alert" not in top["snippet"]
    assert "menu" not in top["snippet"]


async def test_slow_site_fails_alone_and_the_worker_goes_on(api, site: str) -> None:  # type: ignore[no-untyped-def]
    client = api.client
    collection = await create_collection(client)
    path = f"/api/collections/{collection['id']}/urls"
    assert (await client.post(path, json={"url": f"{site}/slow.html"})).status_code == 202
    assert (await client.post(path, json={"url": f"{site}/faq.html"})).status_code == 202
    items = by_name(await wait_for_documents(client, collection["id"], expected=2, max_wait=30))
    slow = items[f"{site}/slow.html"]
    assert slow["status"] == "failed"
    assert "respond" in slow["error"] or "time" in slow["error"], slow["error"]
    assert slow["job"]["attempts"] == 2  # a network failure is retried, then given up
    assert items[f"{site}/faq.html"]["status"] == "ready"
    missing = await client.post(path, json={"url": f"{site}/nope.html"})
    assert missing.status_code == 202
    items = by_name(await wait_for_documents(client, collection["id"], expected=3, max_wait=30))
    assert "404" in items[f"{site}/nope.html"]["error"]
    assert items[f"{site}/nope.html"]["job"]["attempts"] == 1  # a 404 is not retried


async def test_a_redirect_loop_fails_at_once(api, site: str) -> None:  # type: ignore[no-untyped-def]
    collection = await create_collection(api.client)
    path = f"/api/collections/{collection['id']}/urls"
    assert (await api.client.post(path, json={"url": f"{site}/loop.html"})).status_code == 202
    [item] = await wait_for_documents(api.client, collection["id"], expected=1, max_wait=30)
    assert item["status"] == "failed"
    assert "redirected more than" in item["error"]
    assert item["job"]["attempts"] == 1  # following the loop again cannot end differently


async def test_a_job_cut_off_by_a_crash_resumes_on_the_next_start(settings: Settings) -> None:
    text = b"The lighthouse keeper winds the clockwork lamp at dusk."
    first = create_app(settings, provider=FakeProvider(model_name="fake-echo", context_size=4096))
    async with first.router.lifespan_context(first):
        state = first.state.onebox
        async with state.sessionmaker() as session:
            collection = Collection(owner_id=state.local_user_id, name="crash")
            session.add(collection)
            await session.flush()
            document = Document(
                collection_id=collection.id, owner_id=state.local_user_id,
                filename="lamp.txt", source="upload", media_type="text/plain",
                size_bytes=len(text), content_hash=hashlib.sha256(text).hexdigest(),
                status="processing",
            )  # fmt: skip
            session.add(document)
            await session.flush()
            session.add(DocumentBlob(document_id=document.id, data=text))
            # As a worker left it when the machine died mid-job: its lease has run out.
            session.add(
                Job(
                    kind="ingest_document", owner_id=state.local_user_id,
                    subject_id=document.id, payload={"document_id": document.id},
                    status=JobStatus.RUNNING, attempts=1, worker="dead-host:1",
                    lease_expires_at=utcnow() - timedelta(seconds=1),
                )
            )  # fmt: skip
            await session.commit()
            job_id = await _only_job_id(state)
    second = create_app(settings, provider=FakeProvider(model_name="fake-echo", context_size=4096))
    async with second.router.lifespan_context(second):
        transport = httpx.ASGITransport(app=second)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            deadline = time.monotonic() + 60
            while True:
                items = (await client.get(f"/api/collections/{collection.id}/documents")).json()[
                    "items"
                ]
                if settled(items[0]) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
        assert items[0]["status"] == "ready", items
        assert items[0]["job"]["id"] == job_id
        assert items[0]["job"]["status"] == "done"


async def _only_job_id(state) -> str:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    async with state.sessionmaker() as session:
        return str((await session.execute(select(Job.id))).scalar_one())
