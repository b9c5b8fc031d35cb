"""Parsing never freezes the server: hostile and heavy documents are read in sandbox
processes while a real uvicorn server on loopback keeps answering ``/healthz``. Each such
document fails alone with its reason, and an ordinary one uploaded beside them is ready.

Before the sandbox, parsing ran on the event loop: the inflated PDF froze ``/healthz`` for
minutes, the nested HTML for tens of seconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from onebox.core.settings import Settings
from onebox.llm.fake import FakeProvider
from onebox.testing.fake_upstream import start_fake_upstream
from tests import documents_samples as samples
from tests.conftest import LiveServer, run_live_server
from tests.documents_helpers import by_name, create_collection, upload, wait_for_documents

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(240)]

MB = 1024 * 1024
HEALTH_BOUND = 1.0  # seconds; generous: the old code froze for tens of seconds


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    # Embeddings from the fake upstream (a real HTTP server in its own process): the server
    # is ready at once instead of after loading the local model.
    with start_fake_upstream() as upstream:
        yield from run_live_server(
            Settings(
                _env_file=None,  # type: ignore[call-arg]
                data_dir=tmp_path / "live",
                llm_provider="fake",
                model_name="fake-echo",
                embedding_provider="openai",
                embedding_base_url=upstream.url,
                # Tight enough that the heavy PDF below crosses it on any machine.
                parse_cpu_seconds=1,
                parse_wall_seconds=120,
            ),
            FakeProvider(model_name="fake-echo", context_size=4096),
        )


async def _watch_health(client: httpx.AsyncClient, latencies: list[float]) -> None:
    while True:
        started = time.perf_counter()
        response = await client.get("/healthz", timeout=30)
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 200
        await asyncio.sleep(0.02)


async def test_server_stays_responsive_while_hostile_documents_fail_alone(
    server: LiveServer,
) -> None:
    files = [
        # 16 MB of drawing instructions in a small file: over the per-page cap.
        ("bomb.pdf", samples.pdf_with_inflated_page(16 * MB)),
        # 100,000 nested elements: over the depth cap.
        ("deep.html", samples.nested_html(100_000)),
        # Under the cap, but seconds of CPU time to read: over the 1 s CPU limit.
        ("heavy.pdf", samples.pdf_with_inflated_page(3 * MB + MB // 2)),
        ("notes.md", b"# Notes\n\nThe Vardo pump must never run dry for more than ten seconds."),
    ]
    latencies: list[float] = []
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=60) as client,
        httpx.AsyncClient(base_url=server.url) as health,
    ):
        watcher = asyncio.ensure_future(_watch_health(health, latencies))
        try:
            collection = await create_collection(client)
            response = await upload(client, collection["id"], files)
            assert response.status_code == 202, response.text
            items = by_name(
                await wait_for_documents(client, collection["id"], expected=4, max_wait=180)
            )
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    assert len(latencies) >= 20
    assert max(latencies) < HEALTH_BOUND, f"/healthz took {max(latencies):.2f} s"

    assert items["notes.md"]["status"] == "ready"
    assert items["notes.md"]["chunk_count"] == 1
    reasons = {name: items[name]["error"] for name in ("bomb.pdf", "deep.html", "heavy.pdf")}
    assert all(items[name]["status"] == "failed" for name in reasons)
    assert reasons["bomb.pdf"] == (
        "bomb.pdf: page 1 inflates to more than 4 MB of drawing instructions, the limit per "
        "page (reading its text would take minutes); the file was refused"
    )
    assert reasons["deep.html"] == (
        "deep.html nests its HTML elements more than 512 levels deep, the limit (parsing "
        "time grows with the square of the depth); the file was refused"
    )
    assert reasons["heavy.pdf"] == (
        "heavy.pdf could not be read: it used more than 1 s of CPU time, the limit for one "
        "task, and was stopped"
    )
    # Each failed once, for good: a file over a limit is not retried.
    assert all(items[name]["job"]["attempts"] == 1 for name in reasons)
