"""The OpenAPI document tells the truth about the app, the docs page is served from the box,
and a 405 names every method a path takes. None of this needs the lifespan (no database or
model): routing, the document and the docs page are answered before any of it is used."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from onebox.app import create_app
from onebox.core.settings import Settings

pytestmark = pytest.mark.anyio

ERROR_REF = "#/components/schemas/ErrorResponse"
BODY_METHODS = {"post", "put", "patch"}


@pytest.fixture
def app() -> FastAPI:
    return create_app(Settings(_env_file=None, llm_provider="fake"))  # type: ignore[call-arg]


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://onebox.test") as client:
        yield client


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    ]


def test_chat_completions_are_documented_with_their_body_and_both_answers(app: FastAPI) -> None:
    spec = app.openapi()
    operation = spec["paths"]["/v1/chat/completions"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ChatCompletionRequest"}
    request = spec["components"]["schemas"]["ChatCompletionRequest"]
    assert {"model", "messages", "stream", "collections"} <= set(request["properties"])
    assert request["properties"]["messages"]["items"] == {
        "$ref": "#/components/schemas/ChatCompletionMessage"
    }
    answers = operation["responses"]["200"]["content"]
    assert answers["application/json"]["schema"] == {"$ref": "#/components/schemas/ChatCompletion"}
    event = answers["text/event-stream"]["schema"]
    assert event["required"] == ["data"]
    assert {"429", "502", "503", "504"} <= set(operation["responses"])
    # Every reference resolves: nothing was left behind while moving definitions.
    for name in ("ChatCompletion", "ChatCompletionChunk", "TextPart", "StreamOptions"):
        assert name in spec["components"]["schemas"]
    assert "x-onebox-schemas" not in str(spec)


def test_embeddings_body_is_documented(app: FastAPI) -> None:
    spec = app.openapi()
    operation = spec["paths"]["/v1/embeddings"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/EmbeddingRequest"}
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/EmbeddingList"}
    text_input = spec["components"]["schemas"]["EmbeddingRequest"]["properties"]["input"]
    assert [branch["type"] for branch in text_input["anyOf"]] == ["string", "array"]


def test_every_operation_declares_its_errors_in_the_one_error_shape(app: FastAPI) -> None:
    spec = app.openapi()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    error = spec["components"]["schemas"]["ErrorResponse"]
    assert error["required"] == ["error"]
    detail = spec["components"]["schemas"]["ErrorDetail"]
    assert set(detail["properties"]) == {"message", "type", "param", "code"}
    for path, method, operation in operations(spec):
        responses = operation["responses"]
        expected = {"400"}
        if path.startswith(("/api/", "/v1/")):
            expected |= {"401", "403", "404", "409", "429", "503"}
            if method in BODY_METHODS:
                expected |= {"413", "415"}
        validated_by_fastapi = path not in {"/v1/chat/completions", "/v1/embeddings"}
        if validated_by_fastapi and (operation.get("parameters") or "requestBody" in operation):
            expected.add("422")
        assert expected <= set(responses), (method, path, sorted(responses))
        for status, response in responses.items():
            if status.startswith(("4", "5")) and path != "/readyz":
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": ERROR_REF}, (method, path, status)


def test_upload_and_readiness_are_documented(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    upload = paths["/api/collections/{collection_id}/documents"]["post"]["requestBody"]
    files = upload["content"]["multipart/form-data"]["schema"]["properties"]["files"]
    assert files["items"]["format"] == "binary"
    assert {"200", "503"} <= set(paths["/readyz"]["get"]["responses"])


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/conversations/some-id", "GET, PATCH, DELETE"),
        ("DELETE", "/api/conversations", "GET, POST"),
        ("GET", "/v1/chat/completions", "POST"),
        ("PUT", "/api/keys/some-id", "DELETE"),
        ("POST", "/healthz", "GET"),
    ],
)
async def test_method_not_allowed_names_every_method_of_the_path(
    client: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.json()["error"]["type"] == "method_not_allowed"


async def test_docs_page_loads_everything_from_the_box(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "<script>" not in page.text  # nothing inline
    assert "http://" not in page.text
    assert "https://" not in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"):
        response = await client.get(f"/docs/assets/{asset}")
        assert response.status_code == 200, asset
        assert len(response.content) > 1000
    assert (await client.get("/static/docs.js")).status_code == 200
    assert (await client.get("/docs/assets/redoc.standalone.js")).status_code == 404
    assert (await client.get("/docs/assets/..%2Fcore.py")).status_code == 404
    assert (await client.get("/redoc")).status_code == 404
    assert (await client.get("/openapi.json")).json()["info"]["title"] == "Onebox"
