"""`onebox serve --workers N`: one port, N processes (what the compose app service runs),
migrated once before they start; refused with the single-process Edge index."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from onebox.testing.fake_upstream import start_fake_upstream
from onebox.testing.ready import wait_until_ready
from tests.conftest import free_port

pytestmark = pytest.mark.timeout(180)


def test_serve_with_two_worker_processes_on_one_port(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    with start_fake_upstream() as embeddings:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("ONEBOX_", "PROMETHEUS_"))},
            "ONEBOX_LLM_PROVIDER": "fake",
            "ONEBOX_EMBEDDING_PROVIDER": "openai",
            "ONEBOX_EMBEDDING_BASE_URL": embeddings.url,
            "ONEBOX_VECTOR_BACKEND": "qdrant",
            "ONEBOX_QDRANT_URL": ":memory:",
        }
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "onebox", "serve", "--workers", "2", "--port", str(port),
                 "--data-dir", str(tmp_path / "data")],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            ready = wait_until_ready(
                f"http://127.0.0.1:{port}", timeout=120, alive=lambda: process.poll() is None
            )
            assert ready, log.read_text()[-3000:]
            # Both worker processes finish their start-up (the parent migrated before them).
            deadline = time.monotonic() + 60
            text = log.read_text()
            while text.count("Application startup complete") < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
                text = log.read_text()
            assert text.count("Application startup complete") == 2, text[-3000:]
            assert '"level":"ERROR"' not in text, text[-3000:]
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)


def test_serve_workers_refuses_the_single_process_index(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "onebox", "serve", "--workers", "2", "--data-dir", str(tmp_path)],
        env={**os.environ, "ONEBOX_LLM_PROVIDER": "fake", "ONEBOX_VECTOR_BACKEND": "edge"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "ONEBOX_VECTOR_BACKEND" in result.stdout + result.stderr
