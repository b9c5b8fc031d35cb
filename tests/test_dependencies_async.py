"""Every dependency of every route is a coroutine (or async generator) function: FastAPI
runs a plain ``def`` dependency in its thread pool, a thread hop on every request."""

from __future__ import annotations

import inspect
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from onebox.app import create_app
from onebox.core.settings import Settings


def _sync_calls(dependant: Dependant, path: str) -> list[str]:
    found = []
    for dependency in dependant.dependencies:
        call: Any = dependency.call
        if not (inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)):
            found.append(f"{path}: {getattr(call, '__qualname__', call)!s}")
        found += _sync_calls(dependency, path)
    return found


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif (included := getattr(route, "original_router", None)) is not None:
            found += _api_routes(included.routes)  # an included router, kept as it was
    return found


def test_no_route_depends_on_a_plain_function(tmp_path: Any) -> None:
    app = create_app(Settings(_env_file=None, data_dir=tmp_path))
    routes = _api_routes(app.routes)
    assert len(routes) > 20
    sync = [s for route in routes for s in _sync_calls(route.dependant, route.path)]
    assert sync == []
