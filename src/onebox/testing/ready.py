"""Waiting for a freshly started Onebox server (tests and benchmarks)."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx


def wait_until_ready(
    url: str, *, timeout: float = 60.0, alive: Callable[[], bool] = lambda: True
) -> bool:
    """Polls ``{url}/readyz`` until it answers 200 (True), or until ``timeout`` passes or
    ``alive()`` says the server died (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    return False
