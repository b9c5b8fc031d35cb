"""A private ``redis-server`` for tests that take Redis down (the machine's shared Redis must
stay up for everyone else): started on a free loopback port, killed, restarted on that port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.conftest import free_port


class RedisServer:
    def __init__(self, binary: str, port: int) -> None:
        self.binary = binary
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart, empty: nothing is persisted) and wait until it answers PING."""
        assert self.process is None, "already running"
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if self._answers():
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def kill(self) -> None:
        """An outage: SIGKILL, so open connections are reset rather than closed politely."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=15)
            self.process = None

    def pause(self) -> None:
        """A Redis that stops answering: connections stay open, nothing comes back."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), 0.5) as probe:
                probe.sendall(b"PING\r\n")
                return probe.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server not installed (required when CI is set)")
        pytest.skip("redis-server not installed")
    server = RedisServer(binary, free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()  # SIGKILL ends a paused (SIGSTOPped) server too
