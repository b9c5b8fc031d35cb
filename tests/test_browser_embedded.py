"""The chat UI once with the real embedded model (SmolLM2-135M through llama.cpp), not the
fake: a reply streams and renders, survives a reload mid-stream, and regenerating it makes a
second version behind the "2/2" version switcher."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from onebox.core.settings import Settings
from onebox.llm.llamacpp import LlamaCppProvider
from tests.browser import ASSISTANT, PageProblems, expect, launch_browser, new_page, open_app, send
from tests.conftest import LiveServer, run_live_server

pytestmark = [pytest.mark.browser, pytest.mark.model]

BODY = '[data-testid="message-body"]'
REPLY_SECONDS = 120_000  # ms: two cores shared with the rest of the suite


@pytest.fixture(scope="module")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path_factory.mktemp("embedded-ui"),
        context_size=2048,
        max_tokens=48,
        auto_titles=False,  # one model, one reply at a time: keep it for the test's turns
    )
    yield from run_live_server(settings, LlamaCppProvider.from_settings(settings))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_browser()


@pytest.fixture
def problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def page(browser: Any, model_server: LiveServer, problems: PageProblems) -> Iterator[Any]:
    with new_page(browser, model_server.url, problems) as page:
        yield page


def test_the_embedded_model_streams_reattaches_and_regenerates(
    page: Any, problems: PageProblems
) -> None:
    open_app(page)
    reply = send(page, "Name three colours of the rainbow.")
    expect(reply.locator(BODY)).not_to_be_empty(timeout=REPLY_SECONDS)

    # A reload while the model may still be writing: the reply is reattached, not cut.
    page.reload()
    page.wait_for_selector("html[data-ready='true']")
    reply = page.locator(ASSISTANT).last
    expect(reply).to_have_attribute("data-status", "complete", timeout=REPLY_SECONDS)
    first_text = reply.locator(BODY).inner_text()
    assert first_text.strip()
    assert "```" not in first_text  # rendered, never raw fences

    reply.get_by_role("button", name="Regenerate reply").click()
    again = page.locator(ASSISTANT).last
    expect(again.get_by_test_id("branch-position")).to_have_text("2/2", timeout=REPLY_SECONDS)
    expect(again).to_have_attribute("data-status", "complete", timeout=REPLY_SECONDS)
    assert again.locator(BODY).inner_text().strip()

    again.get_by_role("button", name="Previous version").click()
    expect(page.locator(ASSISTANT).last.get_by_test_id("branch-position")).to_have_text("1/2")
    problems.assert_clean()
