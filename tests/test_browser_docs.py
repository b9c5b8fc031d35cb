"""The API reference at /docs in headless Debian Chromium: Swagger UI renders the whole
document from Onebox's own files, under the page's Content-Security-Policy, and not one
request leaves the box."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser import PageProblems, expect, launch_browser, new_page
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_browser()


def test_docs_render_offline_with_only_same_origin_requests(
    browser: Any, live_server: LiveServer
) -> None:
    problems = PageProblems()
    requested: list[str] = []
    with new_page(browser, live_server.url, problems) as page:
        page.on("request", lambda request: requested.append(request.url))
        response = page.goto("/docs")
        assert response is not None
        assert response.status == 200
        policy = response.headers["content-security-policy"]
        assert "script-src 'self';" in policy  # no inline or third-party script

        expect(page.locator(".swagger-ui .info .title")).to_contain_text("Onebox")
        # The bare ASGI hot path is documented like the framework's routes.
        chat = page.locator("#operations-openai-chat_completions_v1_chat_completions_post")
        expect(chat).to_be_visible()
        chat.locator(".opblock-summary").click()
        expect(chat.locator(".responses-table")).to_contain_text("text/event-stream")
        expect(page.locator(".opblock")).not_to_have_count(0)
        assert page.locator(".opblock").count() > 30

    origin = urlsplit(live_server.url)
    for url in requested:
        parts = urlsplit(url)
        assert parts.scheme in {"http", "data", "blob"}, url
        if parts.scheme == "http":
            assert (parts.hostname, parts.port) == (origin.hostname, origin.port), url
    assert f"{live_server.url}/openapi.json" in requested
    assert any(url.endswith("/docs/assets/swagger-ui-bundle.js") for url in requested)
    problems.assert_clean()


def test_redoc_is_not_served(browser: Any, live_server: LiveServer) -> None:
    problems = PageProblems(expected={404})
    with new_page(browser, live_server.url, problems) as page:
        response = page.goto("/redoc")
        assert response is not None
        assert response.status == 404
