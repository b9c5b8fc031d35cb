"""Waiting for a freshly started server, and stopping it (tests and benchmarks)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import httpx


def wait_until_ready(
    url: str,
    *,
    timeout: float = 60.0,
    alive: Callable[[], bool] = lambda: True,
    path: str = "/readyz",
) -> bool:
    """Polls ``{url}{path}`` (Onebox's readiness by default) until it answers 200 (True), or
    until ``timeout`` passes or ``alive()`` says the server died (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            if httpx.get(f"{url}{path}", timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    return False


def stop_server(process: subprocess.Popen[bytes], grace: float = 60.0) -> None:
    """Asks the server to stop (SIGTERM: a graceful shutdown) and kills it after ``grace``
    seconds."""
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
