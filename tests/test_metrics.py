"""GET /metrics after real requests through the real app: chat turns through the web door and
/v1 with the fake model, HTTP requests by route template and status, the token, request ids
and the access log, and the admin System report. Metrics belong to the process, so every
check compares a scrape before with a scrape after."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Histogram
from sqlalchemy import select

from onebox.app import create_app
from onebox.core.logging import JsonFormatter
from onebox.core.metrics import HistogramSeries
from onebox.usage.models import UsageRecord
from tests.accounts import make_account, sign_in
from tests.conftest import AppUnderTest, api_settings
from tests.metrics_helpers import Samples, scrape, total, value
from tests.sse import parse_events

pytestmark = pytest.mark.anyio

MODEL = "fake-echo"
V1 = "/v1/chat/completions"
MESSAGES_ROUTE = "/api/conversations/{conversation_id}/messages"


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def total_delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return total(after, name, **labels) - total(before, name, **labels)


async def test_chat_turns_move_the_metrics(api: AppUnderTest) -> None:
    client = api.client
    before = await scrape(client)

    conversation = (await client.post("/api/conversations", json={})).json()
    response = await client.post(
        f"/api/conversations/{conversation['id']}/messages", json={"content": "hello metrics"}
    )
    assert response.status_code == 200, response.text
    done = next(e.data for e in parse_events(response.text) if e.name == "done")
    prompt = done["message"]["prompt_tokens"]
    completion = done["message"]["completion_tokens"]
    # The conversation's title, asked of the model after the first reply: its tokens count.
    state = api.app.state.onebox
    await asyncio.gather(*list(state.generations.titles.tasks))
    await state.usage.flush()
    async with state.sessionmaker() as session:
        title = (
            await session.scalars(select(UsageRecord).where(UsageRecord.source == "title"))
        ).one()
    assert title.status == "complete"
    assert title.user_id is not None
    assert title.prompt_tokens > 0
    assert title.completion_tokens > 0
    prompt += title.prompt_tokens
    completion += title.completion_tokens

    for stream in (False, False, True):
        body: dict[str, Any] = {
            "model": MODEL,
            "messages": [{"role": "user", "content": "count these four words"}],
            "stream": stream,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        response = await client.post(V1, json=body)
        assert response.status_code == 200, response.text
        if stream:
            chunks = [
                json.loads(line.removeprefix("data: "))
                for line in response.text.splitlines()
                if line.startswith("data: {")
            ]
            usage = next(chunk["usage"] for chunk in chunks if chunk.get("usage"))
        else:
            usage = response.json()["usage"]
        prompt += usage["prompt_tokens"]
        completion += usage["completion_tokens"]
    assert (await client.get("/no/such/page")).status_code == 404
    bad = await client.post(V1, json={"model": MODEL, "messages": []})
    assert bad.status_code == 400

    after = await scrape(client)
    turns = 4
    assert delta(before, after, "onebox_chat_requests_total", model=MODEL, door="ui",
                 status="complete") == 1  # fmt: skip
    assert delta(before, after, "onebox_chat_requests_total", model=MODEL, door="api",
                 status="complete") == 3  # fmt: skip
    assert delta(before, after, "onebox_chat_requests_total", model=MODEL, door="title",
                 status="complete") == 1  # fmt: skip
    for histogram in (
        "onebox_time_to_first_token_seconds",
        "onebox_e2e_request_latency_seconds",
        "onebox_request_queue_time_seconds",
    ):
        assert delta(before, after, f"{histogram}_count", model=MODEL) == turns, histogram
        assert delta(before, after, f"{histogram}_sum", model=MODEL) > 0 or "queue" in histogram
        inf = delta(before, after, f"{histogram}_bucket", model=MODEL, le="+Inf")
        assert inf == turns
    # Every reply streamed several chunks: the gaps between them.
    assert delta(before, after, "onebox_inter_token_latency_seconds_count", model=MODEL) >= turns
    assert delta(before, after, "onebox_prompt_tokens_total", model=MODEL) == prompt
    assert delta(before, after, "onebox_generation_tokens_total", model=MODEL) == completion
    assert value(after, "onebox_requests_running", model=MODEL) == 0
    assert value(after, "onebox_requests_waiting", model=MODEL) == 0

    http = "onebox_http_requests_total"
    assert delta(before, after, http, method="POST", route=V1, status="200") == 3
    assert delta(before, after, http, method="POST", route=V1, status="400") == 1
    assert delta(before, after, http, method="POST", route=MESSAGES_ROUTE, status="200") == 1
    assert delta(before, after, http, method="GET", route="unmatched", status="404") == 1
    assert delta(before, after, http, method="GET", route="/metrics", status="200") == 1
    duration = "onebox_http_request_duration_seconds_count"
    assert delta(before, after, duration, method="POST", route=V1) == 4
    # No per-conversation or per-user series: routes are templates, users are never labels.
    for name, labels in after:
        label_names = {key for key, _ in labels}
        assert not label_names & {"user", "user_id", "email"}, name
        assert conversation["id"] not in str(labels), name


async def test_metrics_token(tmp_path: Path) -> None:
    settings = api_settings(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'm.db'}", metrics_token="scrape-me-" + "x" * 20
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            missing = await client.get("/metrics")
            assert missing.status_code == 401
            assert missing.json()["error"]["type"] == "authentication_error"
            assert missing.headers["www-authenticate"] == "Bearer"
            wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            samples = await scrape(client, token="scrape-me-" + "x" * 20)
            assert "onebox_http_requests_total" in {name for name, _ in samples}


async def test_request_id_is_accepted_or_made_and_echoed(api: AppUnderTest) -> None:
    client = api.client
    sent = await client.get("/healthz", headers={"X-Request-ID": "trace-01.ab:cd"})
    assert sent.headers["x-request-id"] == "trace-01.ab:cd"
    for bad in ("has spaces in it", "x" * 129, "semi;colon", ""):
        made = await client.get("/healthz", headers={"X-Request-ID": bad})
        assert made.headers["x-request-id"] != bad
        assert len(made.headers["x-request-id"]) == 32
    first = (await client.get("/nowhere")).headers["x-request-id"]
    second = (await client.post(V1, json={})).headers["x-request-id"]
    assert first != second


@pytest.fixture
def access_lines() -> Iterator[io.StringIO]:
    """What the root JSON handler would print, for every logger, while the test runs."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


async def test_access_log_is_one_json_line_without_contents(
    api: AppUnderTest, access_lines: io.StringIO
) -> None:
    secret_words = "purple-elephant-dances"
    response = await api.client.post(
        V1,
        json={"model": MODEL, "messages": [{"role": "user", "content": secret_words}]},
        headers={"X-Request-ID": "access-log-test"},
    )
    assert response.status_code == 200, response.text  # the fake model echoes the words
    refused = await api.client.post(
        V1,
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": "Bearer obx_not-a-real-key"},
    )
    assert refused.status_code == 401
    records = [json.loads(line) for line in access_lines.getvalue().splitlines()]
    access = [r for r in records if r["logger"] == "onebox.access"]
    assert [r["status"] for r in access] == [200, 401]
    line = access[0]
    assert line["request_id"] == "access-log-test"
    assert line["route"] == V1
    assert line["status"] == 200
    assert line["method"] == "POST"
    assert line["duration_ms"] > 0
    assert {"time", "level", "message", "path", "client"} <= set(line)
    everything = access_lines.getvalue()
    assert secret_words not in everything
    assert "not-a-real-key" not in everything


def test_bucketed_series_flush_like_direct_observations() -> None:
    registry = CollectorRegistry()
    bounds = (0.01, 0.1, 1.0)
    direct = Histogram("direct_seconds", "d", ["m"], registry=registry, buckets=bounds)
    buffered = Histogram("buffered_seconds", "b", ["m"], registry=registry, buckets=bounds)
    series = HistogramSeries(buffered.labels("x"), bounds)
    values = [0.0, 0.01, 0.0100001, 0.05, 0.1, 0.5, 1.0, 3.0, 1e9, float("nan")]
    for observed in values:
        if observed == observed:
            direct.labels("x").observe(observed)
        series.observe(observed)
    assert not any(
        s.value
        for f in registry.collect()
        if f.name == "buffered_seconds"
        for s in f.samples
        if not s.name.endswith("_created")
    )  # nothing reaches prometheus_client before the flush
    series.flush()
    series.flush()  # a second flush adds nothing

    def samples(name: str) -> dict[tuple[str, str], float]:
        return {
            (s.name.removeprefix(name), s.labels.get("le", "")): s.value
            for f in registry.collect()
            if f.name == name
            for s in f.samples
            if not s.name.endswith("_created")
        }

    assert samples("direct_seconds") == samples("buffered_seconds")


async def test_system_report_is_for_admins(api: AppUnderTest) -> None:
    client = api.client
    first = await client.get("/api/admin/system")  # single-user mode: the local admin
    assert first.status_code == 200, first.text
    response = await client.post(
        V1, json={"model": MODEL, "messages": [{"role": "user", "content": "one two three"}]}
    )
    generated = response.json()["usage"]["completion_tokens"]
    await asyncio.sleep(0.05)
    report = (await client.get("/api/admin/system")).json()
    assert report["totals"]["generation_tokens"] - first.json()["totals"]["generation_tokens"] == (
        generated
    )
    assert report["points"], report
    point = report["points"][-1]
    assert point["tokens_per_second"] > 0
    assert point["p95_latency_seconds"] is not None
    assert {"error_rate", "queue_depth", "running", "requests_per_second"} <= set(point)
    assert report["models"] == [{"name": MODEL, "provider": "fake"}]
    assert report["resident_memory_bytes"] > 10_000_000

    state = api.app.state.onebox
    await make_account(state, "boss@example.com", admin=True)
    await make_account(state, "user@example.com")
    assert (await client.get("/api/admin/system")).status_code == 401
    await sign_in(client, "user@example.com")
    assert (await client.get("/api/admin/system")).status_code == 403


class _UpstreamHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[str | None] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        self.rfile.read(length)
        type(self).seen.append(self.headers.get("x-request-id"))
        body = (
            b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'
            b'data: {"choices":[{"index":0,"delta":{"content":" there"},"finish_reason":"stop"}]}'
            b"\n\ndata: [DONE]\n\n"
        )
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def capturing_upstream() -> Iterator[tuple[str, list[str | None]]]:
    """A real HTTP server on loopback speaking just enough of the OpenAI stream, keeping
    the X-Request-ID of each request."""
    _UpstreamHandler.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _UpstreamHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", _UpstreamHandler.seen
    finally:
        server.shutdown()
        server.server_close()


async def test_request_id_travels_upstream(
    tmp_path: Path, capturing_upstream: tuple[str, list[str | None]]
) -> None:
    url, seen = capturing_upstream
    models = tmp_path / "models.yaml"
    models.write_text(
        f"default_model: up\nmodels:\n  - name: up\n    provider: openai\n"
        f"    upstream_url: {url}\n    upstream_model: whatever\n"
    )
    settings = api_settings(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'u.db'}", models_file=models
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.post(
                V1,
                json={"model": "up", "messages": [{"role": "user", "content": "hi"}]},
                headers={"X-Request-ID": "up-stream-42"},
            )
            assert response.status_code == 200, response.text
            assert response.json()["choices"][0]["message"]["content"] == "Hi there"
            assert response.headers["x-request-id"] == "up-stream-42"
            made = await client.post(
                V1, json={"model": "up", "messages": [{"role": "user", "content": "hi"}]}
            )
            samples = await scrape(client)
    assert seen == ["up-stream-42", made.headers["x-request-id"]]
    assert value(samples, "onebox_upstream_up", model="up") == 1
    assert value(samples, "onebox_upstream_consecutive_failures", model="up") == 0
