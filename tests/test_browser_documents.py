"""End-to-end tests of the Documents UI in headless Debian Chromium.

They drive the real page against a live server running the real app (background ingestion,
the local embedding model, the embedded vector index) with the deterministic fake chat
model, which replies ``"Echo: " + message``: a question that ends in "[1]" gets an answer
that cites source 1.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from onebox.core.settings import Settings
from onebox.llm.fake import FakeProvider
from tests.browser import ASSISTANT, PageProblems, expect, launch_browser, new_page, open_app, send
from tests.conftest import LiveServer, run_live_server

pytestmark = pytest.mark.browser

SCREENSHOTS = Path("/tmp")

INGEST_TIMEOUT_MS = 120_000  # parsing + embedding on a CPU, first run loads the model
BODY = '[data-testid="message-body"]'

ZEBRAFISH_MD = (
    "# Zebrafish field notes\n\n"
    "## Migration\n\n"
    "Zebrafish migrate upstream every spring to spawn in shallow, warm water.\n"
    "The shoals travel at dawn and rest in the reeds at noon.\n"
)
TEA_TXT = "Green tea is steeped at eighty degrees for two minutes, never boiling.\n"
EVIL_NAME = "<img src=x onerror=alert(1)>.md"
EVIL_TEXT = (
    "# Kestrel <script>alert(2)</script>\n\n"
    "Kestrels hover <b>motionless</b> over meadows <img src=y onerror=alert(3)> "
    "while hunting voles. <script>alert(4)</script>\n"
)
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_browser()


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One live server for the module: loading the embedding model takes seconds."""
    data_dir = tmp_path_factory.mktemp("documents-ui") / "live"
    yield from run_live_server(
        Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=data_dir,
            llm_provider="fake",
            model_name="fake-echo",
        ),
        FakeProvider(model_name="fake-echo", context_size=8192, token_delay=0.02),
    )


@pytest.fixture
def problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def page(browser: Any, docs_server: LiveServer, problems: PageProblems) -> Iterator[Any]:
    with new_page(browser, docs_server.url, problems, height=900) as page:
        yield page


# ----------------------------------------------------------------------------- helpers


def open_documents(page: Any) -> Any:
    page.get_by_test_id("open-documents").click()
    panel = page.get_by_test_id("panel-documents")
    expect(panel).to_be_visible()
    expect(page.get_by_test_id("panel-title")).to_have_text("Documents")
    return panel


def create_collection(page: Any, name: str, description: str = "") -> Any:
    """Creates a collection in the panel; returns its (selected) detail section."""
    page.get_by_test_id("collection-name").fill(name)
    page.get_by_test_id("collection-description").fill(description)
    page.get_by_test_id("collection-create").click()
    row = page.locator('[data-testid="collection-row"]', has_text=name)
    expect(row).to_have_count(1)
    expect(row).to_have_class(re.compile(r"\bis-selected\b"))
    detail = page.get_by_test_id("collection-detail")
    expect(detail.get_by_test_id("collection-title")).to_have_text(name)
    return detail


def drop_files(page: Any, files: list[dict[str, str]]) -> None:
    """Drags files onto the drop zone: dragenter (checks the highlight), then drop."""
    zone = page.get_by_test_id("drop-zone")
    transfer = page.evaluate_handle(
        """(files) => {
            const transfer = new DataTransfer();
            for (const f of files) transfer.items.add(new File([f.text], f.name, {type: f.type}));
            return transfer;
        }""",
        files,
    )
    zone.dispatch_event("dragenter", {"dataTransfer": transfer})
    zone.dispatch_event("dragover", {"dataTransfer": transfer})
    expect(zone).to_have_class(re.compile(r"\bis-dragover\b"))
    zone.dispatch_event("drop", {"dataTransfer": transfer})
    expect(zone).not_to_have_class(re.compile(r"\bis-dragover\b"))


def watch_progress(page: Any) -> None:
    """Records every document status and whether the upload bar showed, as they happen."""
    page.evaluate(
        """() => {
            window.__seen = {statuses: [], uploadBar: false, stages: []};
            const look = () => {
                for (const row of document.querySelectorAll('[data-testid="document-row"]')) {
                    window.__seen.statuses.push(row.dataset.filename + ":" + row.dataset.status);
                    const stage = row.querySelector('[data-testid="document-progress"]');
                    if (stage) window.__seen.stages.push(row.dataset.filename);
                }
                const bar = document.querySelector('[data-testid="upload-progress"]');
                if (bar && !bar.hidden) window.__seen.uploadBar = true;
            };
            new MutationObserver(look).observe(document.body, {
                subtree: true, childList: true, attributes: true,
            });
        }"""
    )


def document_row(page: Any, filename: str) -> Any:
    return page.locator(f'[data-testid="document-row"][data-filename="{filename}"]')


def pick_collection(page: Any, name: str) -> None:
    page.get_by_test_id("collections-button").click()
    popup = page.get_by_test_id("collections-popup")
    expect(popup).to_be_visible()
    option = popup.locator("label", has_text=name).get_by_test_id("collection-option")
    option.check()
    expect(page.get_by_test_id("active-collection").filter(has_text=name)).to_have_count(1)
    page.keyboard.press("Escape")
    expect(popup).to_be_hidden()
    expect(page.get_by_test_id("collections-button")).to_be_focused()


# ------------------------------------------------------------------------------- tests


def test_collections_upload_and_ingest(page: Any, problems: PageProblems) -> None:
    open_app(page)
    open_documents(page)
    expect(
        page.get_by_test_id("collections-table-empty").or_(page.get_by_test_id("collections-table"))
    ).to_be_visible()
    detail = create_collection(page, "Field notes", "Fish and tea")
    expect(detail.get_by_test_id("documents-empty")).to_be_visible()

    # Two files dropped at once: upload bar, then queued/processing rows, then ready.
    watch_progress(page)
    drop_files(
        page,
        [
            {"name": "zebrafish.md", "text": ZEBRAFISH_MD, "type": "text/markdown"},
            {"name": "tea.txt", "text": TEA_TXT, "type": "text/plain"},
        ],
    )
    expect(page.get_by_test_id("upload-added")).to_have_text(re.compile(r"^Added 2 documents"))
    for name in ("zebrafish.md", "tea.txt"):
        row = document_row(page, name)
        expect(row).to_have_attribute("data-status", "ready", timeout=INGEST_TIMEOUT_MS)
        expect(row.get_by_test_id("document-status")).to_have_text("Ready")
        expect(row.get_by_test_id("document-progress")).to_have_count(0)
        expect(row.locator("td").nth(3)).to_have_text(re.compile(r"^[1-9]\d*$"))  # passages
    seen = page.evaluate("window.__seen")
    assert seen["uploadBar"], "the upload progress bar never showed"
    pending = [s for s in seen["statuses"] if s.endswith((":queued", ":processing"))]
    assert pending, f"no queued/processing state was ever shown: {set(seen['statuses'])}"
    assert seen["stages"], "no progress bar was shown for a pending document"
    expect(detail.get_by_test_id("collection-counts")).to_have_text(
        re.compile(r"^2 documents · [1-9]\d* passages?$")
    )
    row = page.locator('[data-testid="collection-row"]', has_text="Field notes")
    expect(row.get_by_test_id("collection-documents")).to_have_text("2")
    page.screenshot(path=str(SCREENSHOTS / "onebox-documents.png"), full_page=True)

    # The same file again through the picker: reported as a duplicate, not added.
    page.get_by_test_id("file-input").set_input_files(
        {"name": "zebrafish.md", "mimeType": "text/markdown", "buffer": ZEBRAFISH_MD.encode()}
    )
    duplicates = page.get_by_test_id("upload-duplicates")
    expect(duplicates).to_contain_text("zebrafish.md")
    expect(page.get_by_test_id("upload-added")).to_have_count(0)
    expect(page.get_by_test_id("document-row")).to_have_count(2)

    # An unsupported file: a clear error naming it, nothing added.
    page.get_by_test_id("file-input").set_input_files(
        {"name": "photo.png", "mimeType": "image/png", "buffer": PNG_BYTES}
    )
    error = page.get_by_test_id("upload-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("Unsupported file type")
    expect(error).to_contain_text("photo.png")
    expect(page.get_by_test_id("document-row")).to_have_count(2)
    problems.forget_http(415)

    # A damaged zip is refused outright (422), with the reason.
    page.get_by_test_id("file-input").set_input_files(
        {"name": "bad.zip", "mimeType": "application/zip", "buffer": b"PK\x03\x04garbage"}
    )
    expect(error).to_contain_text("Could not read it")
    expect(error).to_contain_text("bad.zip")
    problems.forget_http(422)

    # A damaged PDF is accepted, then fails in the background: reason shown, Retry offered.
    page.get_by_test_id("file-input").set_input_files(
        {"name": "broken.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4\nnot a pdf"}
    )
    broken = document_row(page, "broken.pdf")
    expect(broken).to_have_attribute("data-status", "failed", timeout=INGEST_TIMEOUT_MS)
    expect(broken.get_by_test_id("document-status")).to_have_text("Failed")
    expect(broken.get_by_test_id("document-error")).to_contain_text("not a valid PDF")
    page.evaluate("window.__seen.statuses = []")
    with page.expect_response(lambda r: r.url.endswith("/retry")) as retried:
        broken.get_by_test_id("document-retry").click()
    assert retried.value.status == 202
    expect(broken).to_have_attribute("data-status", "failed", timeout=INGEST_TIMEOUT_MS)
    again = page.evaluate("window.__seen.statuses")
    assert "broken.pdf:queued" in again, f"Retry did not show the document queued: {again}"
    page.once("dialog", lambda dialog: dialog.accept())
    broken.get_by_test_id("document-delete").click()
    expect(broken).to_have_count(0)
    expect(page.get_by_test_id("document-row")).to_have_count(2)

    # Web pages: an address the server may not fetch is refused with its reason.
    page.get_by_test_id("url-input").fill("http://127.0.0.1/admin")
    page.get_by_test_id("url-sitemap").check()
    page.get_by_test_id("url-add").click()
    url_error = page.get_by_test_id("url-result").get_by_test_id("upload-error")
    expect(url_error).to_contain_text("Not allowed")
    expect(url_error).to_contain_text("127.0.0.1")
    problems.forget_http(400)

    # Rename, then a throwaway collection deleted after a confirmation.
    row.get_by_test_id("collection-rename").click()
    name_input = page.get_by_test_id("collection-edit-name")
    expect(name_input).to_be_focused()
    name_input.fill("Field notes 2024")
    page.get_by_test_id("collection-save").click()
    renamed = page.locator('[data-testid="collection-row"]', has_text="Field notes 2024")
    expect(renamed).to_have_count(1)
    expect(detail.get_by_test_id("collection-title")).to_have_text("Field notes 2024")

    create_collection(page, "Scratch")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator('[data-testid="collection-row"]', has_text="Scratch").get_by_test_id(
        "collection-delete"
    ).click()
    expect(page.locator('[data-testid="collection-row"]', has_text="Scratch")).to_have_count(0)
    expect(renamed).to_have_count(1)
    problems.assert_clean()


def test_chat_cites_sources_and_shows_passages(page: Any, problems: PageProblems) -> None:
    open_app(page)
    open_documents(page)
    create_collection(page, "Citations test")
    drop_files(
        page,
        [
            {"name": "zebrafish.md", "text": ZEBRAFISH_MD, "type": "text/markdown"},
            {"name": "tea.txt", "text": TEA_TXT, "type": "text/plain"},
        ],
    )
    for name in ("zebrafish.md", "tea.txt"):
        expect(document_row(page, name)).to_have_attribute(
            "data-status", "ready", timeout=INGEST_TIMEOUT_MS
        )
    page.get_by_test_id("panel-back").click()
    expect(page.get_by_test_id("panel-documents")).to_have_count(0)

    # Picked on a new chat: kept when the conversation is created by the first message.
    expect(page.get_by_test_id("collections-button")).to_have_text("Documents: none")
    pick_collection(page, "Citations test")
    expect(page.get_by_test_id("collections-button")).to_have_text("Documents: 1 collection")
    reply = send(
        page,
        "When do zebrafish migrate upstream to spawn in spring? Where do the zebrafish shoals "
        "rest at noon, when do zebrafish travel, and in which water do zebrafish spawn? [1]",
    )
    # The sources strip shows while the answer is still streaming.
    page.wait_for_function(
        """() => {
            const rows = document.querySelectorAll('[data-testid="message"][data-role="assistant"]');
            const row = rows[rows.length - 1];
            return row && row.dataset.status === "streaming"
                && row.querySelector('[data-testid="sources"] [data-testid="source-card"]');
        }"""
    )
    expect(reply).to_have_attribute("data-status", "complete")
    body = reply.locator(BODY)
    expect(body).to_contain_text("Echo: When do zebrafish migrate")

    citation = body.get_by_test_id("citation")
    expect(citation).to_have_count(1)
    expect(citation).to_have_text("1")
    expect(citation).to_have_attribute("aria-label", re.compile(r"^Source 1: zebrafish\.md"))
    assert citation.evaluate("el => el.parentElement.tagName") == "SUP"
    used = reply.get_by_test_id("sources-used")
    expect(used.get_by_test_id("source-card")).to_have_count(1)
    expect(used.get_by_test_id("source-document")).to_have_text("zebrafish.md")
    unused = reply.get_by_test_id("sources-unused")
    expect(unused).to_contain_text("Also retrieved (not cited)")
    assert unused.evaluate("el => el.open") is False
    expect(unused.get_by_test_id("source-document")).to_have_text("tea.txt")

    # The citation opens the exact passage.
    citation.click()
    dialog = page.get_by_test_id("passage-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_have_attribute("data-loaded", "true")
    expect(dialog.get_by_test_id("passage-document")).to_have_text("zebrafish.md")
    expect(dialog.get_by_test_id("passage-meta")).to_contain_text("Migration")
    expect(dialog.get_by_test_id("passage-text")).to_contain_text(
        "Zebrafish migrate upstream every spring"
    )
    expect(dialog.get_by_test_id("passage-text")).to_be_in_viewport()
    page.wait_for_timeout(200)  # the fade-in
    page.screenshot(path=str(SCREENSHOTS / "onebox-passage.png"))
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(citation).to_be_focused()
    page.screenshot(path=str(SCREENSHOTS / "onebox-sources.png"))

    # An uncited source opens too, from the collapsed list.
    unused.locator("summary").click()
    unused.get_by_test_id("source-card").click()
    expect(dialog.get_by_test_id("passage-document")).to_have_text("tea.txt")
    expect(dialog.get_by_test_id("passage-text")).to_contain_text("Green tea")
    dialog.get_by_test_id("passage-close").click()
    expect(dialog).to_be_hidden()

    # After a reload the stored message renders the same citations.
    conversation_url = page.url
    assert "/c/" in conversation_url
    page.reload()
    page.wait_for_selector("html[data-ready='true']")
    reply = page.locator(ASSISTANT).last
    expect(reply.locator(BODY).get_by_test_id("citation")).to_have_count(1)
    expect(reply.get_by_test_id("sources-used").get_by_test_id("source-document")).to_have_text(
        "zebrafish.md"
    )
    expect(page.get_by_test_id("active-collection")).to_have_text(re.compile("Citations test"))

    # Turning the collection off is saved (PATCH) and the next answer has no sources.
    with page.expect_response(
        lambda r: r.request.method == "PATCH" and "/api/conversations/" in r.url
    ) as patched:
        page.get_by_test_id("active-collection-remove").click()
    assert patched.value.ok
    expect(page.get_by_test_id("collections-button")).to_have_text("Documents: none")
    reply = send(page, "No documents now [1]")
    expect(reply).to_have_attribute("data-status", "complete")
    expect(reply.get_by_test_id("sources")).to_have_count(0)
    expect(reply.locator(BODY).get_by_test_id("citation")).to_have_count(0)
    problems.assert_clean()


def test_document_names_and_text_cannot_inject_markup(page: Any, problems: PageProblems) -> None:
    page.on("dialog", lambda dialog: (problems.dialogs.append(dialog.message), dialog.dismiss()))
    open_app(page)
    open_documents(page)
    create_collection(page, "<b>Bold</b> <img src=z onerror=alert(5)>")
    drop_files(page, [{"name": EVIL_NAME, "text": EVIL_TEXT, "type": "text/markdown"}])
    row = document_row(page, EVIL_NAME)
    expect(row).to_have_attribute("data-status", "ready", timeout=INGEST_TIMEOUT_MS)
    expect(row.get_by_test_id("document-name")).to_have_text(EVIL_NAME)
    page.get_by_test_id("panel-back").click()

    pick_collection(page, "<b>Bold</b>")
    reply = send(page, "How do kestrels hunt voles? [1]")
    expect(reply).to_have_attribute("data-status", "complete")
    expect(reply.get_by_test_id("sources-used").get_by_test_id("source-document")).to_have_text(
        EVIL_NAME
    )
    reply.locator(BODY).get_by_test_id("citation").click()
    dialog = page.get_by_test_id("passage-dialog")
    expect(dialog).to_have_attribute("data-loaded", "true")
    expect(dialog.get_by_test_id("passage-document")).to_have_text(EVIL_NAME)
    passage = dialog.get_by_test_id("passage-text")
    expect(passage).to_contain_text("Kestrels hover <b>motionless</b>")
    expect(passage).to_contain_text("<img src=y onerror=alert(3)>")
    expect(passage).to_contain_text("<script>alert(4)</script>")
    expect(dialog.get_by_test_id("passage-meta")).to_contain_text("<script>alert(2)</script>")

    # Nothing a document supplied became markup anywhere on the page.
    injected = page.locator("img, script:not([src]), b, iframe, svg:not(.icon)")
    assert injected.count() == 0, injected.evaluate_all("els => els.map(e => e.outerHTML)")
    page.keyboard.press("Escape")
    open_documents(page)
    expect(page.get_by_test_id("collection-open")).to_contain_text(["<b>Bold</b>"])
    assert injected.count() == 0
    page.wait_for_timeout(300)
    assert problems.dialogs == []
    problems.assert_clean()
