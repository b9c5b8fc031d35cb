"""Property-based tests of the whole HTTP API against its own OpenAPI document.

Schemathesis reads ``/openapi.json`` from a real server on loopback (SQLite and
PostgreSQL) and sends every operation generated requests, valid and invalid, as a
signed-in administrator with an API key; a share of them name resources that exist (a
collection with a ready document, a conversation, a key, a job...). Every answer must be
no server error and must match what the document declares: the status code, the content
type, the headers and the body schema; a request the document calls invalid must be
refused. Examples are bounded and derandomized, so a run is repeatable and fits CI.

Only ``POST /api/collections/{collection_id}/urls`` is left out: it fetches URLs off the box.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from onebox.app import create_app
from onebox.core.settings import Settings
from onebox.llm.fake import FakeProvider
from tests.accounts import PASSWORD
from tests.conftest import _truncate_postgres, run_live_server

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

# Enough for CI on 2 cores (about a minute); set the variable higher for a deeper hunt.
EXAMPLES_PER_OPERATION = int(os.environ.get("ONEBOX_CONFORMANCE_EXAMPLES", "40"))
ADMIN_EMAIL = "admin@example.com"
OFF_THE_BOX = {("POST", "/api/collections/{collection_id}/urls")}


def invalid_request_refused(ctx: Any, response: Any, case: Any) -> bool | None:
    """Schemathesis's negative-data check, with 413 counted as a refusal too: an invalid body
    that is also too large is refused by the size limit before it is parsed."""
    if response.status_code == 413:
        return None
    return negative_data_rejection(ctx, response, case)  # type: ignore[no-any-return]


# What the document promises: no 5xx, and status, content type, headers and body as declared;
# and a request the document calls invalid is refused (4xx), never taken.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    invalid_request_refused,
]


def documented_operations() -> list[tuple[str, str]]:
    """(METHOD, path) of every operation, read from the app's document (no server needed)."""
    settings_ = Settings(_env_file=None, llm_provider="fake")  # type: ignore[call-arg]
    paths = create_app(settings_).openapi()["paths"]
    operations = [
        (method.upper(), path)
        for path, item in paths.items()
        for method in item
        if (method.upper(), path) not in OFF_THE_BOX
    ]
    # Deletions last, so the other operations still find the resources to work on.
    return sorted(operations, key=lambda operation: (operation[0] == "DELETE", operation))


@dataclass
class Target:
    url: str
    headers: dict[str, str]
    # Path parameters naming resources that exist, by parameter name.
    existing: dict[str, str] = field(default_factory=dict)
    schema: Any = None


def _wait_ready(client: httpx.Client, collection_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        items = client.get(f"/api/collections/{collection_id}/documents").json()["items"]
        if items and items[0]["status"] in {"ready", "failed"}:
            return dict(items[0])
        time.sleep(0.2)
    raise AssertionError("the sample document was not ingested in time")


def _prepare(url: str) -> Target:
    """The first account, made as a fresh install makes it (single-user mode on loopback),
    an API key made from its signed-in session, and one of each resource."""
    with httpx.Client(base_url=url, timeout=30) as client:
        created = client.post(
            "/api/admin/users",
            json={"email": ADMIN_EMAIL, "password": PASSWORD, "role": "admin"},
        )
        assert created.status_code == 201, created.text
        login = client.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": PASSWORD})
        assert login.status_code == 200, login.text
        client.headers["x-csrf-token"] = login.json()["csrf_token"]
        key = client.post("/api/keys", json={"name": "schemathesis"})
        assert key.status_code == 201, key.text
        # Keys and accounts the generated requests may revoke or disable (not the caller's).
        spare_key = client.post("/api/keys", json={"name": "spare"}).json()["key"]
        spare_user = client.post(
            "/api/admin/users", json={"email": "spare@example.com", "password": PASSWORD}
        ).json()
        collection = client.post("/api/collections", json={"name": "Notes"}).json()
        upload = client.post(
            f"/api/collections/{collection['id']}/documents",
            files=[("files", ("notes.md", b"# Notes\n\nOnebox answers from documents.\n"))],
        )
        assert upload.status_code == 202, upload.text
        document = _wait_ready(client, collection["id"])
        search = client.post(
            "/api/search", json={"query": "documents", "collection_ids": [collection["id"]]}
        )
        assert search.status_code == 200, search.text
        sources = search.json()["sources"]
        conversation = client.post("/api/conversations", json={}).json()
        jobs = client.get("/api/jobs").json()["items"]
        existing = {
            "collection_id": collection["id"],
            "document_id": document["id"],
            "conversation_id": conversation["id"],
            "key_id": spare_key["id"],
            "user_id": spare_user["id"],
            "model_id": "fake-echo",
        }
        if sources:
            existing["chunk_id"] = sources[0]["chunk_id"]
        if jobs:
            existing["job_id"] = jobs[0]["id"]
        return Target(url, {"authorization": f"Bearer {key.json()['secret']}"}, existing)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    directory = tmp_path_factory.mktemp(f"conformance-{request.param}")
    if request.param == "sqlite":
        database_url = f"sqlite+aiosqlite:///{directory / 'onebox.db'}"
    else:
        database_url = request.getfixturevalue("postgres_url")
        asyncio.run(_truncate_postgres(database_url))
    server_settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=directory / "data",
        database_url=database_url,
        llm_provider="fake",
        model_name="fake-echo",
        max_request_bytes=64 * 1024,
    )
    provider = FakeProvider(model_name="fake-echo", context_size=4096)
    for live in run_live_server(server_settings, provider):
        prepared = _prepare(live.url)
        prepared.schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
        yield prepared


def _cases(operation: Any, target: Target) -> st.SearchStrategy[Any]:
    """Valid and invalid requests, and valid ones naming resources and models that exist."""
    names = {parameter.name for parameter in operation.path_parameters}
    existing = {name: value for name, value in target.existing.items() if name in names}

    def name_existing_model(case: Any) -> Any:
        if isinstance(case.body, dict) and "model" in case.body:
            if case.path == "/v1/chat/completions":
                case.body["model"] = target.existing["model_id"]
            else:  # each model catalogue has its own names; the default is one that exists
                del case.body["model"]
        return case

    return st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=existing).map(
            name_existing_model
        ),
    )


def _known_good(method: str, path: str, target: Target) -> list[dict[str, Any]]:
    """Requests that must succeed, sent on every run so each kind of success answer
    (JSON, event streams, sources, base64 vectors) is checked against the document."""
    existing = target.existing
    ask = [{"role": "user", "content": "What do the notes say?"}]
    model = existing["model_id"]
    bodies: dict[tuple[str, str], list[dict[str, Any]]] = {
        ("POST", "/v1/chat/completions"): [
            {"body": {"model": model, "messages": ask}},
            {
                "body": {
                    "model": model,
                    "messages": ask,
                    "stream": True,
                    "stream_options": {"include_usage": True},
                }
            },
            {"body": {"model": model, "messages": ask, "collections": [existing["collection_id"]]}},
            {
                "body": {
                    "model": model,
                    "messages": ask,
                    "stream": True,
                    "collections": [existing["collection_id"]],
                }
            },
        ],
        ("POST", "/v1/embeddings"): [
            {"body": {"input": "notes"}},
            {"body": {"input": ["a", "b"], "encoding_format": "base64"}},
        ],
        ("POST", "/api/conversations/{conversation_id}/messages"): [
            {
                "path_parameters": {"conversation_id": existing["conversation_id"]},
                "body": {"content": "hello"},
            },
        ],
    }
    return bodies.get((method, path), [])


@pytest.mark.parametrize(("method", "path"), documented_operations())
def test_operation_keeps_its_documented_promises(method: str, path: str, target: Target) -> None:
    operation = target.schema[path][method]
    known_good = [operation.Case(**request) for request in _known_good(method, path, target)]
    for case in known_good:
        response = case.call_and_validate(
            base_url=target.url, headers=target.headers, checks=CHECKS
        )
        assert response.status_code == 200, response.text

    @given(case=_cases(operation, target))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        case.call_and_validate(base_url=target.url, headers=target.headers, checks=CHECKS)

    run()
