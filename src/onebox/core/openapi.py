"""The OpenAPI document as the app really answers.

FastAPI describes what it sees: its own routes, their models, and its validation error
(``HTTPValidationError``), which this app never sends. ``install_openapi`` completes the
document once, for every router at once:

* bare Starlette routes built as :class:`DocumentedRoute` (the ``/v1`` hot path) are added
  with the operation they carry;
* schemas referred to through :func:`model_schema` (bodies a route parses itself) land in
  ``components/schemas``;
* every operation lists the errors the shared machinery can answer, each with the one error
  shape of ``core/errors.py`` (:class:`ErrorResponse`): 400 everywhere (NUL in the URL, bad
  JSON), 401/403/404/409/429/503 on the API, 413/415 on API bodies, and 422 where FastAPI
  validates parameters or the body.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from starlette.routing import BaseRoute, Route

REF_TEMPLATE = "#/components/schemas/{model}"
_ERROR_REF = REF_TEMPLATE.format(model="ErrorResponse")
# Where model_schema parks the definitions a reference needs until the document is built.
_PENDING_SCHEMAS = "x-onebox-schemas"
_BODY_METHODS = {"post", "put", "patch"}
_HTTP_METHODS = {"get", "head", "post", "put", "patch", "delete", "options", "trace"}

ERROR_DESCRIPTIONS = {
    400: "Bad request: a value the server cannot use, invalid JSON, or NUL in the URL",
    401: "No valid credentials: sign in, or send 'Authorization: Bearer <key>'",
    403: "Not allowed: missing CSRF token, not an administrator, or the key's limits",
    404: "Not found (or not yours)",
    409: "Conflicts with the current state (a name in use, a reply already running)",
    413: "The request body is larger than the server accepts",
    415: "Wrong Content-Type for the body (JSON, or multipart/form-data for uploads)",
    422: "A parameter or body field fails validation",
    429: "Rate limit or quota reached; see the Retry-After header where sent",
    502: "The upstream model answered with an error",
    503: "A backend (database, model, index, upstream) is unavailable",
    504: "The upstream model did not answer in time",
}


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """Every error the API answers: the same keys as OpenAI's, so SDKs read them alike."""

    error: ErrorDetail


class DocumentedRoute(Route):
    """A Starlette route that speaks ASGI itself and still appears in the OpenAPI
    document: ``operations`` maps a lower-case method to its OpenAPI operation object."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: Sequence[str],
        operations: dict[str, dict[str, Any]],
    ) -> None:
        super().__init__(path, endpoint=endpoint, methods=list(methods))
        self.operations = operations


def model_schema(model: type[BaseModel], mode: str = "validation") -> dict[str, Any]:
    """A ``$ref`` to ``model`` for use anywhere in an operation (``openapi_extra`` or a
    :class:`DocumentedRoute`); its definitions move into the components once the document
    is built."""
    schema = model.model_json_schema(ref_template=REF_TEMPLATE, mode=mode)  # type: ignore[arg-type]
    definitions = schema.pop("$defs", {})
    return {
        "$ref": REF_TEMPLATE.format(model=model.__name__),
        _PENDING_SCHEMAS: {model.__name__: schema, **definitions},
    }


def json_body(model: type[BaseModel], description: str | None = None) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads and validates its JSON body itself."""
    body: dict[str, Any] = {
        "required": True,
        "content": {"application/json": {"schema": model_schema(model)}},
    }
    if description:
        body["description"] = description
    return {"requestBody": body}


def documented_error(status: int, description: str | None = None) -> dict[str, Any]:
    return {
        "description": description or ERROR_DESCRIPTIONS.get(status, "Error"),
        "content": {"application/json": {"schema": {"$ref": _ERROR_REF}}},
    }


def install_openapi(app: FastAPI, *, api_prefixes: tuple[str, ...]) -> None:
    """Make ``app.openapi()`` return the completed document (built once, then cached)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            complete_document(document, app.routes, api_prefixes)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete_document(
    document: dict[str, Any], routes: Iterable[BaseRoute], api_prefixes: tuple[str, ...]
) -> None:
    paths: dict[str, dict[str, Any]] = document.setdefault("paths", {})
    for route in routes:
        if isinstance(route, DocumentedRoute):
            paths.setdefault(route.path, {}).update(route.operations)
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    _hoist_pending(paths, schemas)
    schemas.update(_own_schemas(ErrorResponse))
    for path, item in paths.items():
        for method, operation in item.items():
            if method in _HTTP_METHODS:
                _declare_errors(path, method, operation, api_prefixes)
    # FastAPI's validation error shape is never sent (core/errors.py answers instead).
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    document["paths"] = dict(sorted(paths.items()))


def _declare_errors(
    path: str, method: str, operation: dict[str, Any], api_prefixes: tuple[str, ...]
) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    statuses = {400}
    if path.startswith(api_prefixes):
        statuses |= {401, 403, 404, 409, 429, 503}
        if method in _BODY_METHODS:
            statuses |= {413, 415}
    if "422" in responses:  # FastAPI validates this operation's parameters or body
        statuses.add(422)
        responses["422"] = documented_error(422)
    for status in sorted(statuses):
        responses.setdefault(str(status), documented_error(status))
    operation["responses"] = dict(sorted(responses.items()))


def _own_schemas(model: type[BaseModel]) -> dict[str, Any]:
    return dict(model_schema(model, mode="serialization")[_PENDING_SCHEMAS])


def _same_shape(first: dict[str, Any], second: dict[str, Any]) -> bool:
    """One model described by FastAPI and by pydantic (they differ in defaults shown)."""
    return bool(
        first.get("properties", {}).keys() == second.get("properties", {}).keys()
        and set(first.get("required", ())) == set(second.get("required", ()))
        and first.get("type") == second.get("type")
    )


def _hoist_pending(node: Any, schemas: dict[str, Any]) -> None:
    if isinstance(node, dict):
        pending = node.pop(_PENDING_SCHEMAS, None)
        if pending:
            for name, schema in pending.items():
                if name not in schemas:
                    schemas[name] = schema
                elif not _same_shape(schemas[name], schema):
                    raise RuntimeError(f"Two different OpenAPI schemas are named {name!r}")
        for value in node.values():
            _hoist_pending(value, schemas)
    elif isinstance(node, list):
        for value in node:
            _hoist_pending(value, schemas)
