"""The helpers that start and stop servers for the tests and benchmarks, on real processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from onebox.testing.ready import stop_server, wait_until_ready
from tests.conftest import free_port


def _file_server(root: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "-d", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return f"http://127.0.0.1:{port}", process


def test_waits_for_the_given_path_and_not_for_a_missing_one(tmp_path: Path) -> None:
    (tmp_path / "liveliness").write_text("ok")
    url, process = _file_server(tmp_path)
    try:

        def alive() -> bool:
            return process.poll() is None

        assert wait_until_ready(url, timeout=20, alive=alive, path="/liveliness")
        started = time.monotonic()
        assert not wait_until_ready(url, timeout=0.5, alive=alive)  # no /readyz here: 404
        assert time.monotonic() - started >= 0.5
    finally:
        stop_server(process)
    assert process.returncode == -signal.SIGTERM


def test_a_dead_server_is_not_waited_for(tmp_path: Path) -> None:
    url, process = _file_server(tmp_path)
    stop_server(process)
    started = time.monotonic()
    assert not wait_until_ready(url, timeout=30, alive=lambda: process.poll() is None)
    assert time.monotonic() - started < 5


def test_a_server_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    stubborn = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('up', flush=True)\n"
        "time.sleep(120)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", stubborn], stdout=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stdout.readline() == b"up\n"
    started = time.monotonic()
    stop_server(process, grace=0.5)
    assert process.returncode == -signal.SIGKILL
    assert 0.5 <= time.monotonic() - started < 10
    process.stdout.close()
