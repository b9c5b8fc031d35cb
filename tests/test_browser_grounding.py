"""The grounded answer in headless Chromium: the quoted support and "Reading N passages…"
show before the first token; once done, answer sentences link to their passages (hover and
focus highlight the source card, a click opens the passage); all of it survives a reload.
The fake model cites: it answers with the first sentence of passage 1 and "[1]"."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from onebox.core.settings import Settings
from onebox.llm.fake import FakeProvider
from tests.browser import ASSISTANT, PageProblems, expect, launch_browser, new_page, open_app, send
from tests.conftest import LiveServer, run_live_server
from tests.test_browser_documents import pick_collection

pytestmark = pytest.mark.browser

POLICY = (
    "# Backup policy\n\n## Retention\n\n"
    "Deleted backups are kept for a retention period of 28 days, then purged for good.\n"
    "Backups run every night at two in the morning.\n"
)
INGEST_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_browser()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from run_live_server(
        Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=tmp_path_factory.mktemp("grounding-ui") / "live",
            llm_provider="fake",
            model_name="fake-echo",
        ),
        FakeProvider(model_name="fake-echo", context_size=8192, token_delay=0.25, cite=True),
    )


def _ingest(url: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        collection = client.post("/api/collections", json={"name": "Policies"}).json()
        files = [("files", ("policy.md", POLICY.encode()))]
        response = client.post(f"/api/collections/{collection['id']}/documents", files=files)
        assert response.status_code == 202, response.text
        for _ in range(INGEST_TIMEOUT_S * 5):
            items = client.get(f"/api/collections/{collection['id']}/documents").json()["items"]
            if items and items[0]["status"] == "ready":
                return
            time.sleep(0.2)
        raise AssertionError("the document was not ingested")


def test_support_quote_and_sentence_links(browser: Any, server: LiveServer) -> None:
    _ingest(server.url)
    problems = PageProblems()
    with new_page(browser, server.url, problems, height=900) as page:
        open_app(page)
        page.evaluate(
            """() => {
                window.__early = {support: false, reading: false};
                new MutationObserver(() => {
                    const rows = document.querySelectorAll('[data-testid="message"][data-role="assistant"]');
                    const row = rows[rows.length - 1];
                    if (!row || row.dataset.status !== "streaming") return;
                    const body = row.querySelector('[data-testid="message-body"]');
                    const typed = body && !body.querySelector('[data-testid="reading"]') && body.textContent;
                    if (typed) return;
                    if (row.querySelector('[data-testid="support-quote"]')) window.__early.support = true;
                    if (row.querySelector('[data-testid="reading"]')) window.__early.reading = true;
                }).observe(document.body, {subtree: true, childList: true, characterData: true});
            }"""
        )
        pick_collection(page, "Policies")
        reply = send(page, "How long are deleted backups kept?")
        page.wait_for_function("() => window.__early.support && window.__early.reading")
        expect(reply).to_have_attribute("data-status", "complete", timeout=60_000)

        quote = reply.get_by_test_id("support-quote")
        expect(quote).to_have_count(1)
        expect(quote).to_contain_text("28 days")
        expect(reply.get_by_test_id("support-link")).to_contain_text("[1] policy.md")

        sentence = reply.get_by_test_id("grounded-sentence")
        expect(sentence.first).to_contain_text("28 days")
        expect(sentence.first).to_have_attribute("data-number", "1")
        card = reply.locator('[data-testid="sources-used"] [data-testid="source-card"]')
        sentence.first.hover()
        expect(card).to_have_class(re.compile(r"\bis-highlighted\b"))
        page.mouse.move(0, 0)
        expect(card).not_to_have_class(re.compile(r"\bis-highlighted\b"))
        sentence.first.focus()
        expect(card).to_have_class(re.compile(r"\bis-highlighted\b"))
        page.keyboard.press("Enter")
        dialog = page.get_by_test_id("passage-dialog")
        expect(dialog).to_be_visible()
        expect(dialog.get_by_test_id("passage-text")).to_contain_text("28 days")
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()

        reply.get_by_test_id("support-link").click()
        expect(dialog).to_be_visible()
        expect(dialog.get_by_test_id("passage-document")).to_have_text("policy.md")
        page.keyboard.press("Escape")

        page.reload()
        page.wait_for_selector("html[data-ready='true']")
        stored = page.locator(ASSISTANT).last
        expect(stored.get_by_test_id("support-quote")).to_contain_text("28 days")
        expect(stored.get_by_test_id("grounded-sentence").first).to_contain_text("28 days")
        problems.assert_clean()
