"""The chat screen's finish in headless Debian chromium: the first load's requests, the
greeting's place, one focus ring, touch targets on a phone, the theme (no flash), the skip
link, keyboard shortcuts and their sheet, and attaching files from the message box until
the next answer cites them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from onebox.core.settings import Settings
from onebox.llm.fake import FakeProvider
from tests.browser import ASSISTANT, PageProblems, expect, launch_browser, new_page, open_app, send
from tests.conftest import LiveServer, run_live_server

pytestmark = pytest.mark.browser

INGEST_TIMEOUT_MS = 120_000  # parsing + embedding on a CPU; the first run loads the model
OWL_MD = (
    "# Owl notes\n\n## Hearing\n\n"
    "Barn owls find mice in total darkness by the sound of their steps alone.\n"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_browser()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Single-user mode, the real ingestion and embedding model, the fake echo model."""
    yield from run_live_server(
        Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=tmp_path_factory.mktemp("quality") / "live",
            llm_provider="fake",
            model_name="fake-echo",
        ),
        FakeProvider(model_name="fake-echo", context_size=8192, token_delay=0.02),
    )


@pytest.fixture
def problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def page(browser: Any, server: LiveServer, problems: PageProblems) -> Iterator[Any]:
    with new_page(browser, server.url, problems) as page:
        yield page
    problems.assert_clean()


def api_requests(page: Any) -> list[str]:
    """Records the path of every /api request the page makes from now on."""
    seen: list[str] = []

    def record(request: Any) -> None:
        path = re.sub(r"^https?://[^/]+", "", request.url)
        if path.startswith("/api/"):
            seen.append(f"{request.method} {path}")

    page.on("request", record)
    return seen


def box(locator: Any) -> dict[str, float]:
    found = locator.bounding_box()
    assert found is not None, "not on screen"
    return dict(found)


# ------------------------------------------------------------------------------- tests


def test_the_first_load_asks_the_api_at_most_three_times(page: Any) -> None:
    seen = api_requests(page)
    open_app(page)
    page.wait_for_load_state("networkidle")
    assert seen == ["GET /api/bootstrap"]

    reply = send(page, "hello there")
    expect(reply).to_have_attribute("data-status", "complete")
    conversation = page.url.rsplit("/c/", 1)[1]

    seen.clear()
    page.reload()
    page.wait_for_selector("html[data-ready='true']")
    expect(page.locator(ASSISTANT)).to_have_count(1)
    page.wait_for_load_state("networkidle")
    assert seen == ["GET /api/bootstrap", f"GET /api/conversations/{conversation}"]
    assert len(seen) <= 3
    # The sidebar, the model picker and the collection picker were filled from it.
    expect(page.get_by_test_id("conversation-item")).not_to_have_count(0)
    expect(page.get_by_test_id("model-picker")).to_have_value("fake-echo")


def test_the_greeting_is_centred_over_the_message_box_with_one_focus_ring(page: Any) -> None:
    open_app(page)
    greeting = box(page.locator("#empty-state h2"))
    composer = box(page.locator(".composer-box"))
    greeting_centre = greeting["x"] + greeting["width"] / 2
    composer_centre = composer["x"] + composer["width"] / 2
    assert abs(greeting_centre - composer_centre) <= 2, (greeting, composer)

    composer_area = page.get_by_test_id("composer")
    expect(composer_area).to_be_focused()
    rings = page.wait_for_function(
        """() => {
            const area = document.getElementById("composer");
            const ring = (node) => {
                const style = getComputedStyle(node);
                const outline = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0;
                return outline || style.boxShadow.includes("0px 0px 0px 3px");
            };
            const box = ring(area.closest(".composer-box"));  // once its transition is over
            return box && {area: ring(area), box};
        }"""
    ).json_value()
    assert rings == {"area": False, "box": True}


def test_touch_targets_are_44_px_on_a_phone(browser: Any, server: LiveServer) -> None:
    problems = PageProblems()
    with new_page(browser, server.url, problems, width=390, height=844) as page:
        open_app(page)
        reply = send(page, "short one")
        expect(reply).to_have_attribute("data-status", "complete")
        page.locator("#menu-toggle").click()
        expect(page.locator("#app")).to_have_class(re.compile(r"\bsidebar-open\b"))
        small = page.evaluate(
            """() => {
                const selectors = [
                    "#menu-toggle", "#sidebar-close", "#new-chat", "#open-documents",
                    ".conversation-link", ".conversation-action", "#account-button", "#attach",
                ];
                const out = [];
                for (const selector of selectors) {
                    const nodes = document.querySelectorAll(selector);
                    if (!nodes.length) out.push(`${selector}: missing`);
                    for (const node of nodes) {
                        const r = node.getBoundingClientRect();
                        if (r.width < 44 || r.height < 44) out.push(`${selector}: ${r.width}x${r.height}`);
                    }
                }
                return out;
            }"""
        )
        assert small == []
    problems.assert_clean()


def test_theme_follows_the_choice_from_the_first_frame(page: Any) -> None:
    # Records the theme before the first frame is painted, on every load.
    page.add_init_script(
        """requestAnimationFrame(() => {
            window.__firstFrame = {
                theme: document.documentElement.dataset.theme,
                bg: getComputedStyle(document.documentElement).getPropertyValue("--bg").trim(),
            };
        });"""
    )
    page.emulate_media(color_scheme="light")
    open_app(page)
    assert page.evaluate("window.__firstFrame") == {"theme": "light", "bg": "#ffffff"}

    page.get_by_test_id("account-menu").click()
    dark = page.get_by_test_id("theme-dark")
    expect(page.get_by_test_id("theme-system")).to_have_attribute("aria-checked", "true")
    dark.click()
    expect(dark).to_have_attribute("aria-checked", "true")
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(29, 32, 38)"

    page.reload()
    page.wait_for_selector("html[data-ready='true']")
    assert page.evaluate("window.__firstFrame") == {"theme": "dark", "bg": "#1d2026"}
    assert page.evaluate("localStorage.getItem('onebox-theme')") == "dark"

    # "System" forgets the choice and follows the system again, live.
    page.get_by_test_id("account-menu").click()
    page.get_by_test_id("theme-system").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    page.emulate_media(color_scheme="dark")
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    assert page.evaluate("localStorage.getItem('onebox-theme')") is None


def test_skip_link_and_keyboard_shortcuts(page: Any) -> None:
    open_app(page)
    ctrl = "Meta" if page.evaluate("/Mac|iPhone|iPad/.test(navigator.platform)") else "Control"

    # The skip link is the first stop, shows when focused and lands in the message box.
    first = "document.querySelector('a[href], button, input, select, textarea, [tabindex]')"
    assert page.evaluate(f"{first}.dataset.testid") == "skip-link"
    skip = page.get_by_test_id("skip-link")
    expect(skip).not_to_be_in_viewport()
    skip.focus()
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("composer")).to_be_focused()
    assert page.url.endswith("/")

    # "?" outside a text field opens the sheet, a labelled modal dialog; Escape closes it.
    page.get_by_test_id("new-chat").focus()
    page.keyboard.press("?")
    sheet = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(sheet).to_be_visible()
    expect(sheet).to_contain_text("New chat")
    expect(sheet.locator("kbd")).not_to_have_count(0)
    page.keyboard.press("Escape")
    expect(sheet).to_be_hidden()
    # In the message box "?" is just a character.
    page.get_by_test_id("composer").focus()
    page.keyboard.press("?")
    expect(sheet).to_be_hidden()
    expect(page.get_by_test_id("composer")).to_have_value("?")
    page.get_by_test_id("composer").fill("")
    page.get_by_test_id("open-shortcuts").click()
    expect(sheet).to_be_visible()
    page.get_by_test_id("shortcuts-close").click()
    expect(sheet).to_be_hidden()

    # Esc stops a reply being generated.
    long_question = "Tell me everything " + " ".join(f"w{i}" for i in range(150))
    reply = send(page, long_question)
    expect(page.get_by_test_id("stop")).to_be_visible()
    expect(reply.get_by_test_id("message-body")).to_contain_text("Echo: Tell me")
    page.keyboard.press("Escape")
    expect(reply).to_have_attribute("data-status", "partial")
    assert page.url.rsplit("/", 2)[-2] == "c"

    # Ctrl/⌘+K: the sidebar's search box, or its conversations when it has none.
    page.keyboard.press(f"{ctrl}+k")
    focused = page.evaluate(
        "document.activeElement.closest('#sidebar') !== null"
        " && (document.activeElement.matches('input, .conversation-link, #new-chat'))"
    )
    assert focused
    # Shift+Esc: back to the message box.
    page.keyboard.press("Shift+Escape")
    expect(page.get_by_test_id("composer")).to_be_focused()
    # Ctrl/⌘+Shift+O: a new chat.
    page.keyboard.press(f"{ctrl}+Shift+O")
    page.wait_for_url(re.compile(r"/$"))
    expect(page.locator("#empty-state")).to_be_visible()
    expect(page.get_by_test_id("composer")).to_be_focused()


def test_attached_files_are_indexed_and_cited_by_the_next_answer(
    page: Any, problems: PageProblems
) -> None:
    open_app(page)
    with page.expect_file_chooser() as chooser:
        page.get_by_test_id("attach").click()
    chooser.value.set_files(
        [{"name": "owls.md", "mimeType": "text/markdown", "buffer": OWL_MD.encode()}]
    )
    tray = page.get_by_test_id("attachments")
    expect(tray).to_be_visible()
    row = tray.get_by_test_id("attachment")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("owls.md")
    expect(row).to_have_attribute("data-status", "ready", timeout=INGEST_TIMEOUT_MS)
    expect(row.get_by_test_id("attachment-status")).to_contain_text("Ready")
    # The new chat now draws on the chat's own attachments collection.
    chip = page.get_by_test_id("active-collection")
    expect(chip).to_have_count(1)
    expect(chip).to_contain_text("Chat attachments")

    reply = send(page, "How do barn owls find mice? [1]")
    expect(reply).to_have_attribute("data-status", "complete")
    expect(reply.locator(".citation")).not_to_have_count(0)
    expect(reply.get_by_test_id("source-document").first).to_have_text("owls.md")

    # On a phone the citation and the chip's ✕ are 44 px targets (the chip stays small).
    page.set_viewport_size({"width": 390, "height": 844})
    for target in (
        reply.locator(".citation").first,
        page.get_by_test_id("active-collection-remove"),
    ):
        size = box(target)
        assert min(size["width"], size["height"]) >= 44, size
    assert box(chip)["height"] < 44
    page.set_viewport_size({"width": 1280, "height": 820})

    # A file dropped on the chat goes to the same collection, and is used from then on.
    transfer = page.evaluate_handle(
        """() => {
            const transfer = new DataTransfer();
            transfer.items.add(new File(["Herons stand still for hours."], "herons.txt", {type: "text/plain"}));
            return transfer;
        }"""
    )
    target = page.locator("#messages")
    target.dispatch_event("dragenter", {"dataTransfer": transfer})
    target.dispatch_event("dragover", {"dataTransfer": transfer})
    expect(page.locator("#composer-form")).to_have_class(re.compile(r"\bis-dragover\b"))
    target.dispatch_event("drop", {"dataTransfer": transfer})
    expect(page.locator("#composer-form")).not_to_have_class(re.compile(r"\bis-dragover\b"))
    herons = tray.get_by_test_id("attachment").filter(has_text="herons.txt")
    expect(herons).to_have_attribute("data-status", "ready", timeout=INGEST_TIMEOUT_MS)
    expect(chip).to_have_count(1)
    conversation = page.url.rsplit("/c/", 1)[1]
    detail = page.evaluate(f"fetch('/api/conversations/{conversation}').then(r => r.json())")
    collections = page.evaluate("fetch('/api/collections').then(r => r.json())")["items"]
    assert detail["collection_ids"] == [collections[0]["id"]]
    assert collections[0]["document_count"] == 2

    # Refused files say why, in the tray.
    page.get_by_test_id("attach-input").set_input_files(
        [
            {
                "name": "photo.png",
                "mimeType": "image/png",
                "buffer": b"\x89PNG\r\n\x1a\n" + b"\0" * 64,
            }
        ]
    )
    refused = tray.get_by_test_id("attachment").filter(has_text="photo.png")
    expect(refused).to_have_attribute("data-status", re.compile(r"^(skipped|failed)$"))
    expect(refused.get_by_test_id("attachment-status")).not_to_have_text(
        re.compile(r"^(Skipped|Failed)$")
    )
    for status in (415, 422):
        problems.forget_http(status)  # the refusal chromium logs; the tray explained it
