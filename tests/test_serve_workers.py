"""``onebox serve --workers N``: what several processes may share, refused clearly when they
cannot, and a real two-worker server (PostgreSQL 18 with pgvector, Redis counters) taking
uploads, searches and chat through ``onebox bench``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from onebox.core.settings import Settings
from onebox.serving import workers_problems
from onebox.testing.fake_upstream import FakeUpstream, start_fake_upstream
from onebox.testing.ready import wait_until_ready
from tests.conftest import free_port
from tests.pg18 import pg18_url  # noqa: F401 - a fixture
from tests.test_rate_limits_api import REDIS_URL, _redis_ping

SRC = str(Path(__file__).resolve().parents[1] / "src")


def onebox_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEBOX_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))
    return {**env, "ONEBOX_LLM_PROVIDER": "fake", "ONEBOX_LOG_LEVEL": "WARNING", **extra}


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def test_one_worker_may_use_everything_in_process() -> None:
    assert workers_problems(settings(), 1) == []


def test_several_workers_need_shared_index_and_counters() -> None:
    problems = workers_problems(settings(), 2)
    assert len(problems) == 2
    assert "Qdrant Edge" in problems[0]
    assert "memory://" in problems[1]
    local = settings(vector_backend="qdrant", qdrant_url=":memory:")
    assert "local mode" in workers_problems(local, 4)[0]
    shared = settings(
        vector_backend="qdrant", qdrant_url="http://qdrant:6333", rate_limit_storage=REDIS_URL
    )
    assert workers_problems(shared, 4) == []
    assert (
        workers_problems(settings(vector_backend="pgvector", rate_limit_storage=REDIS_URL), 2) == []
    )


def test_serve_refuses_workers_it_cannot_run(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "onebox", "serve", "--workers", "3", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, env=onebox_env(), check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "3 workers cannot share this configuration" in result.stderr
    assert "ONEBOX_VECTOR_BACKEND=pgvector" in result.stderr
    assert "redis://" in result.stderr
    assert not (tmp_path / "onebox.db").exists()  # refused before touching anything


# --- a real two-worker server ----------------------------------------------------------


async def _admin(url: str, statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture
def database(pg18_url: str) -> Iterator[str]:  # noqa: F811
    name = f"onebox_workers_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(pg18_url, f'CREATE DATABASE "{name}"'))
    base, _, query = pg18_url.partition("?")
    url = base.rsplit("/", 1)[0] + f"/{name}?{query}"
    yield url.replace("postgresql://", "postgresql+asyncpg://", 1)
    asyncio.run(_admin(pg18_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _fetch_jobs_and_chunks(url: str) -> tuple[list[tuple[str, str, int]], int]:
    import asyncpg

    connection = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        jobs = await connection.fetch("SELECT kind, status, attempts FROM jobs")
        stored = await connection.fetchval("SELECT count(*) FROM chunks")
    finally:
        await connection.close()
    return [(row["kind"], row["status"], row["attempts"]) for row in jobs], int(stored)


@pytest.fixture
def embeddings() -> Iterator[FakeUpstream]:
    with start_fake_upstream() as fake:
        yield fake


def workers_of(pid: int) -> list[int]:
    """The worker processes a uvicorn supervisor spawned (not multiprocessing's helpers)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            command = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in command:
                found.append(int(child))
    return found


def bench(url: str, out: Path, *args: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-m", "onebox", "bench", *args, "--url", url, "--json", str(out)],
        capture_output=True, text=True, timeout=180, env=onebox_env(), check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return dict(json.loads(out.read_text()))


@pytest.mark.timeout(300)
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")
def test_two_workers_share_one_port_and_each_job_runs_once(
    database: str, embeddings: FakeUpstream, tmp_path: Path
) -> None:
    try:
        _redis_ping(REDIS_URL)
    except OSError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    port = free_port()
    env = onebox_env(
        ONEBOX_DATABASE_URL=database,
        ONEBOX_VECTOR_BACKEND="pgvector",
        ONEBOX_RATE_LIMIT_STORAGE=REDIS_URL,
        ONEBOX_EMBEDDING_PROVIDER="openai",
        ONEBOX_EMBEDDING_BASE_URL=embeddings.url,
        ONEBOX_CHUNK_SIZE="400",
        ONEBOX_CHUNK_OVERLAP="50",
    )
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "onebox", "serve", "--workers", "2", "--port", str(port),
         "--data-dir", str(tmp_path / "data")],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        ready = wait_until_ready(url, timeout=180, alive=lambda: server.poll() is None)
        assert ready, (tmp_path / "serve.log").read_text()[-3000:]
        assert len(workers_of(server.pid)) == 2

        ingest = bench(
            url, tmp_path / "ingest.json", "ingest",
            "--documents", "8", "--words", "200", "--batch", "2", "--keep",
        )  # fmt: skip
        summary = ingest["summary"]
        assert isinstance(summary, dict)
        assert (summary["ready"], summary["failed"]) == (8, 0)
        # Every job ran exactly once: the chunks stored are the chunks the documents report.
        jobs, stored = asyncio.run(_fetch_jobs_and_chunks(database))
        assert [(s, a) for kind, s, a in jobs if kind == "ingest_document"] == [("done", 1)] * 8
        # Each ready document queued its sentence vectors, run (or waiting) once at most.
        follow_ups = [(s, a) for kind, s, a in jobs if kind == "embed_sentences"]
        assert len(follow_ups) == 8
        assert all(a <= 1 and s in ("queued", "running", "done") for s, a in follow_ups), follow_ups
        assert stored == summary["chunks"]

        searched = bench(
            url, tmp_path / "retrieve.json", "retrieve", "--collection", str(summary["collection_id"]),
            "--concurrency", "4", "--requests", "20",
        )  # fmt: skip
        chatted = bench(
            url, tmp_path / "chat.json", "chat",
            "--concurrency", "4", "--requests", "20", "--max-tokens", "8",
        )  # fmt: skip
        for report in (searched, chatted):
            result = report["summary"]
            assert isinstance(result, dict)
            assert (result["completed"], result["failed"]) == (20, 0)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
            log.close()
    assert server.returncode == 0, (tmp_path / "serve.log").read_text()[-3000:]
