"""A reply being generated is saved as it goes: ``kill -9`` of the server mid-stream loses at
most the last checkpoint interval, and the next message branches from what was saved."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from onebox.testing.fake_upstream import FakeUpstream, start_fake_upstream
from onebox.testing.ready import wait_until_ready
from tests.conftest import free_port

TOKENS_PER_SECOND = 25
CHECKPOINT_SECONDS = 0.5


@pytest.fixture
def slow_upstream() -> Iterator[FakeUpstream]:
    with start_fake_upstream(tokens=2000, tokens_per_second=TOKENS_PER_SECOND) as server:
        yield server


class Server:
    def __init__(self, tmp_path: Path, upstream: FakeUpstream) -> None:
        models = tmp_path / "models.yaml"
        models.write_text(
            f"default_model: up\nmodels:\n  - name: up\n    provider: openai\n"
            f"    upstream_url: {upstream.url}\n    upstream_model: fake\n"
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "ONEBOX_MODELS_FILE": str(models),
            "ONEBOX_EMBEDDING_PROVIDER": "openai",
            "ONEBOX_EMBEDDING_BASE_URL": upstream.url,
            "ONEBOX_REPLY_CHECKPOINT_SECONDS": str(CHECKPOINT_SECONDS),
        }
        self.data_dir = tmp_path / "data"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "onebox", "serve", "--port", str(self.port),
             "--data-dir", str(self.data_dir)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        assert wait_until_ready(self.url, alive=lambda: self.process is not None and
                                self.process.poll() is None)  # fmt: skip

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


def test_kill_9_mid_stream_keeps_the_reply_up_to_the_last_checkpoint(
    tmp_path: Path, slow_upstream: FakeUpstream
) -> None:
    server = Server(tmp_path, slow_upstream)
    server.start()
    try:
        conversation = httpx.post(f"{server.url}/api/conversations", json={}).json()
        seen: list[str] = []
        with httpx.stream(
            "POST",
            f"{server.url}/api/conversations/{conversation['id']}/messages",
            json={"content": "tell me a long story"},
            timeout=30,
        ) as response:
            assert response.status_code == 200
            started = time.monotonic()
            for line in response.iter_lines():
                if line.startswith("data:") and '"text"' in line:
                    seen.append(json.loads(line[5:])["text"])
                if time.monotonic() - started > 3 * CHECKPOINT_SECONDS + 1:
                    server.kill()
                    break
        seen_text = "".join(seen)
        assert len(seen) > TOKENS_PER_SECOND  # it streamed for a while before the crash

        server.start()
        stored = httpx.get(f"{server.url}/api/conversations/{conversation['id']}").json()
        user, reply = stored["messages"]
        assert reply["role"] == "assistant"
        assert reply["status"] == "partial"
        assert reply["parent_id"] == user["id"]
        assert seen_text.startswith(reply["content"])
        # At most the last interval (plus one in-flight save) is lost.
        lost_tokens = len(seen) - len(reply["content"].split())
        assert lost_tokens <= TOKENS_PER_SECOND * (2 * CHECKPOINT_SECONDS + 0.5)

        # The next message continues from the saved reply, not from a dangling question.
        with httpx.stream(
            "POST",
            f"{server.url}/api/conversations/{conversation['id']}/messages",
            json={"content": "go on"},
            timeout=30,
        ) as response:
            assert response.status_code == 200
            opening = next(line for line in response.iter_lines() if line.startswith("data:"))
            assert json.loads(opening[5:])["user_message"]["parent_id"] == reply["id"]
    finally:
        server.stop()
