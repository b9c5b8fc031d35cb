"""Launching the fake upstream from tests and benchmarks: :func:`start_fake_upstream`."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO, Any

import httpx

from onebox.testing.fake_upstream.state import Options
from onebox.testing.ready import stop_server


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass
class FakeUpstream:
    """A running fake upstream process. ``url`` is the OpenAI base URL (ends in ``/v1``)."""

    host: str
    port: int
    process: subprocess.Popen[bytes] = field(repr=False)
    _client: httpx.Client = field(
        default_factory=lambda: httpx.Client(timeout=5), init=False, repr=False
    )

    @property
    def root(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.root}/v1"

    def _get(self, path: str) -> Any:
        response = self._client.get(f"{self.root}{path}")
        response.raise_for_status()
        return response.json()

    def _post(self, path: str, payload: object = None) -> Any:
        response = self._client.post(f"{self.root}{path}", json=payload)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, int]:
        return dict(self._get("/_stats"))

    def reset(self) -> dict[str, int]:
        return dict(self._post("/_reset"))

    def configure(self, **options: Any) -> dict[str, Any]:
        """Change options at runtime (same names as :func:`start_fake_upstream`); resets the
        injected-failure budget."""
        return dict(self._post("/_config", options))

    def last_request(self) -> Any:
        """The body of the last chat completion request, as JSON."""
        return self._get("/_last_request")

    async def astats(self) -> dict[str, int]:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(f"{self.root}/_stats")
            response.raise_for_status()
            return dict(response.json())


def _command(host: str, port: int, options: dict[str, Any]) -> list[str]:
    command = [sys.executable, "-m", "onebox.testing.fake_upstream", "--host", host]
    command += ["--port", str(port)]
    for name, value in options.items():
        if name not in {item.name for item in fields(Options)}:
            raise TypeError(f"start_fake_upstream() got an unknown option {name!r}")
        if value is not None:
            command += [f"--{name.replace('_', '-')}", str(value)]
    return command


@contextlib.contextmanager
def start_fake_upstream(
    host: str = "127.0.0.1", startup_timeout: float = 20.0, **options: Any
) -> Iterator[FakeUpstream]:
    """Run the fake upstream in a subprocess on a free port until the block exits.

    Options: ``ttft_ms``, ``tokens_per_second``, ``tokens``, ``fail_mode``, ``fail_count``,
    ``model``, ``api_key`` (as on the command line).
    """
    source_root = str(Path(__file__).resolve().parents[3])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source_root, env.get("PYTHONPATH")]))
    last_error = "no attempt"
    for _ in range(3):  # another process may grab the free port before the child binds it
        port = _free_port(host)
        log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
        process = subprocess.Popen(
            _command(host, port, options), stdout=subprocess.DEVNULL, stderr=log, env=env
        )
        upstream = FakeUpstream(host=host, port=port, process=process)
        try:
            if _wait_healthy(upstream, startup_timeout):
                yield upstream
                return
            log.seek(0)
            last_error = log.read().decode(errors="replace")[-2000:] or "no output"
        finally:
            upstream._client.close()
            stop_server(process, grace=5)
            log.close()
    raise RuntimeError(f"the fake upstream did not start: {last_error}")


def _wait_healthy(upstream: FakeUpstream, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if upstream.process.poll() is not None:
            return False
        try:
            if upstream._client.get(f"{upstream.root}/health", timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    return False
