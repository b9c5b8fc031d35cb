"""The website widget in headless Debian Chromium, embedded the way a customer's site does.

The host pages come from their own loopback server (another port: another origin) with a
strict Content-Security-Policy that allows scripts and connections only from Onebox, and
styles only from the host itself. The live Onebox server runs the real app (ingestion, the
local embedding model, the vector index) with the ``fake-cite`` model, which answers with
the first sentence of passage 1 and cites it.
"""

from __future__ import annotations

import html
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from onebox.core.settings import Settings
from onebox.llm.fake import FakeProvider
from tests.browser import PageProblems, expect, launch_browser, new_page
from tests.conftest import LiveServer, free_port, run_live_server

pytestmark = pytest.mark.browser

SCREENSHOTS = Path("/tmp")
INGEST_TIMEOUT_S = 180  # parsing + embedding on a CPU; the first run loads the model
XSS_TITLE = "<img src=x onerror=alert(1)>.md"
KESTREL = (
    "# Birds <script>alert(2)</script>\n\n"
    "Kestrels hover motionless over meadows while hunting voles <img src=y onerror=alert(3)>.\n"
    "They nest on ledges and in old crows' nests.\n"
)
GUIDE = (
    "<!doctype html><html><head><title>Kettle guide</title></head><body><main>"
    "<h1>Kettle care</h1><p>Descale the kettle every four weeks with white vinegar.</p>"
    "<p>Rinse it twice before boiling water again.</p></main></body></html>"
)
HOSTILE_CSS = """
* { all: unset !important; }
html, body, main, p, h1 { display: block !important; }
onebox-widget { display: none !important; opacity: 0 !important; }
#overlay {
  display: block !important; position: fixed !important; inset: 0 !important;
  z-index: 2147483647 !important; background: rgba(200, 0, 0, 0.15) !important;
}
.ob-launcher, .ob-panel { background: rgb(1, 2, 3) !important; }
"""
SITE_CSS = "body { font-family: serif; margin: 2rem; }\n.ob-launcher { color: rgb(9, 9, 9); }\n"


# ------------------------------------------------------------------------ host sites


@dataclass
class Site:
    url: str
    server: ThreadingHTTPServer

    def page(self, key: str, *, hostile: bool = False, **data: str) -> str:
        """The site's page with the widget; ``data`` become the script's data- attributes."""
        query = {"key": key, **({"hostile": "1"} if hostile else {}), **data}
        return f"{self.url}/page.html?{urlencode(query)}"


def _host_handler(onebox: str) -> type[BaseHTTPRequestHandler]:
    policy = (
        f"default-src 'none'; script-src {onebox}; connect-src {onebox}; style-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'"
    )

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def _send(self, status: int, content_type: str, body: str, csp: bool = False) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            if csp:
                self.send_header("Content-Security-Policy", policy)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if parts.path == "/guide.html":
                self._send(200, "text/html; charset=utf-8", GUIDE)
            elif parts.path == "/site.css":
                self._send(200, "text/css", SITE_CSS)
            elif parts.path == "/hostile.css":
                self._send(200, "text/css", HOSTILE_CSS)
            elif parts.path == "/favicon.ico":
                self._send(204, "image/x-icon", "")
            elif parts.path in {"/page.html", "/other.html"}:
                self._send(200, "text/html; charset=utf-8", _host_page(onebox, parts, query), True)
            else:
                self._send(404, "text/plain", "not found")

    return Handler


def _host_page(onebox: str, parts: Any, query: dict[str, str]) -> str:
    key = html.escape(query.get("key", ""), quote=True)
    hostile = query.get("hostile") == "1"
    data = "".join(
        f' {html.escape(name)}="{html.escape(value, quote=True)}"'
        for name, value in query.items()
        if name.startswith("data-") and name != "data-key"
    )
    other = "/other.html" if parts.path == "/page.html" else "/page.html"
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Acme</title>"
        "<link rel='stylesheet' href='/site.css'>"
        + ("<link rel='stylesheet' href='/hostile.css'>" if hostile else "")
        + "</head><body><main><h1>Acme docs</h1><p>Welcome to our site.</p>"
        f"<p><a id='next' href='{other}?{html.escape(parts.query, quote=True)}'>Next page</a></p>"
        "<button class='ob-launcher' id='host-button' type='button'>Host button</button></main>"
        + ("<div id='overlay'></div>" if hostile else "")
        + f"<script src='{onebox}/widget.js' data-key='{key}'{data} async></script>"
        "</body></html>"
    )


def _serve_site(onebox: str) -> Iterator[Site]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _host_handler(onebox))
    thread = threading.Thread(target=server.serve_forever, name="host-site", daemon=True)
    thread.start()
    try:
        yield Site(f"http://127.0.0.1:{server.server_address[1]}", server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_browser()


@pytest.fixture(scope="module")
def onebox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("widget-ui") / "live"
    yield from run_live_server(
        Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=data_dir,
            llm_provider="fake",
            model_name="fake-cite",
            fetch_allow_private=True,  # the host site (with the URL document) is on loopback
        ),
        FakeProvider(model_name="fake-cite", context_size=8192, token_delay=0.04, cite=True),
    )


@pytest.fixture(scope="module")
def site(onebox: LiveServer) -> Iterator[Site]:
    """The customer's site: an allowed origin."""
    yield from _serve_site(onebox.url)


@pytest.fixture(scope="module")
def stranger(onebox: LiveServer) -> Iterator[Site]:
    """Another site, which no key allows."""
    yield from _serve_site(onebox.url)


@pytest.fixture(scope="module")
def owner(onebox: LiveServer, site: Site) -> Iterator[httpx.Client]:
    """The key owner's API client (single-user mode: the local user), with two documents
    ready: an upload with markup in its name and text, and a web page from the site."""
    with httpx.Client(base_url=onebox.url, timeout=30) as client:
        collection = client.post("/api/collections", json={"name": "Help center"}).json()
        uploaded = client.post(
            f"/api/collections/{collection['id']}/documents",
            files=[("files", (XSS_TITLE, KESTREL.encode()))],
        )
        assert uploaded.status_code == 202, uploaded.text
        fetched = client.post(
            f"/api/collections/{collection['id']}/urls", json={"url": f"{site.url}/guide.html"}
        )
        assert fetched.status_code == 202, fetched.text
        deadline = time.monotonic() + INGEST_TIMEOUT_S
        while True:
            items = client.get(f"/api/collections/{collection['id']}/documents").json()["items"]
            if len(items) == 2 and all(item["status"] == "ready" for item in items):
                break
            assert time.monotonic() < deadline, f"documents not ready: {items}"
            time.sleep(0.25)
        yield client


def widget_key(owner: httpx.Client, site: Site, **fields: Any) -> dict[str, Any]:
    body = {"name": "Acme help", "allowed_origins": [site.url], "collections": ["Help center"]}
    response = owner.post("/api/widget/keys", json={**body, **fields})
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture
def problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def visitor(browser: Any, site: Site, problems: PageProblems) -> Iterator[Any]:
    with new_page(browser, site.url, problems, handle_dialogs=True) as page:
        yield page
    assert problems.dialogs == [], f"a dialog opened: {problems.dialogs}"


# ----------------------------------------------------------------------------- helpers


def open_widget(page: Any) -> Any:
    launcher = page.get_by_test_id("widget-launcher")
    expect(launcher).to_be_visible()
    expect(page.locator("onebox-widget")).to_have_attribute("data-state", "ready")
    if page.get_by_test_id("widget-panel").is_hidden():
        launcher.click()
    panel = page.get_by_test_id("widget-panel")
    expect(panel).to_be_visible()
    return panel


def ask(page: Any, question: str) -> Any:
    """Asks through the widget; returns the new answer's locator (still streaming)."""
    answers = page.locator('[data-testid="widget-message"][data-role="assistant"]')
    before = answers.count()
    box = page.get_by_test_id("widget-input")
    box.fill(question)
    box.press("Enter")
    expect(answers).to_have_count(before + 1)
    return answers.nth(before)


def watch_statuses(page: Any) -> None:
    """Records every status an answer goes through, from inside the shadow root."""
    page.evaluate(
        """() => {
            window.__statuses = [];
            const root = document.querySelector("onebox-widget").shadowRoot;
            new MutationObserver(() => {
                for (const m of root.querySelectorAll('[data-role="assistant"]'))
                    window.__statuses.push(m.dataset.status);
            }).observe(root, {subtree: true, childList: true, attributes: true});
        }"""
    )


# ------------------------------------------------------------------------------- tests


def test_a_visitor_gets_a_streamed_answer_with_sources_that_survives_reloads(
    visitor: Any, owner: httpx.Client, site: Site, problems: PageProblems
) -> None:
    key = widget_key(owner, site, appearance={"greeting": "Hello from Acme!"})
    visitor.goto(site.page(key["secret"], **{"data-title": "Acme help"}))
    panel = open_widget(visitor)
    expect(visitor.get_by_test_id("widget-title")).to_have_text("Acme help")  # data- wins
    expect(visitor.get_by_test_id("widget-greeting")).to_have_text("Hello from Acme!")

    watch_statuses(visitor)
    answer = ask(visitor, "How do kestrels hunt for voles?")
    expect(answer).to_have_attribute("data-status", "complete")
    assert "streaming" in visitor.evaluate("window.__statuses")
    expect(answer.get_by_test_id("widget-text")).to_have_text(
        re.compile(r"^According to the documents, .*Kestrels hover motionless.* \[1\]$")
    )
    source = answer.get_by_test_id("widget-source")
    expect(source).to_have_count(1)
    expect(source).to_have_attribute("data-number", "1")
    # Markup in the title and the snippet is text: shown as written, never run.
    expect(source.get_by_test_id("widget-source-title")).to_have_text(
        f"{XSS_TITLE} · Birds <script>alert(2)</script>"  # the file name, then its heading
    )
    expect(source.get_by_test_id("widget-source-snippet")).to_contain_text("Kestrels hover")
    shadow_images = visitor.evaluate(
        "document.querySelector('onebox-widget').shadowRoot.querySelectorAll('img, script').length"
    )
    assert shadow_images == 0

    web = ask(visitor, "How often should I descale the kettle?")
    expect(web).to_have_attribute("data-status", "complete")
    link = web.locator("a.ob-source-title")
    expect(link).to_have_attribute("href", f"{site.url}/guide.html")
    expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    visitor.screenshot(path=str(SCREENSHOTS / "onebox-widget.png"))

    # Reload, then another page of the site: the same conversation, reopened.
    visitor.reload()
    panel = open_widget(visitor)
    messages = panel.get_by_test_id("widget-message")
    expect(messages).to_have_count(4)
    expect(messages.nth(0)).to_have_text("How do kestrels hunt for voles?")
    expect(messages.nth(3).locator("a.ob-source-title")).to_have_count(1)
    visitor.locator("#next").click()
    visitor.wait_for_url(re.compile(r"/other\.html"))
    panel = open_widget(visitor)
    expect(panel.get_by_test_id("widget-message")).to_have_count(4)

    # The widget's styles stay inside: the host's own ".ob-launcher" keeps the host's look.
    host_button = visitor.locator("#host-button").evaluate(
        "n => { const s = getComputedStyle(n); return [s.color, s.borderTopLeftRadius, s.position] }"
    )
    assert host_button == ["rgb(9, 9, 9)", "0px", "static"], host_button

    # The owner reads it, read-only, under the key.
    listed = owner.get(f"/api/widget/keys/{key['key']['id']}/conversations").json()["items"]
    assert [item["message_count"] for item in listed] == [4]
    problems.assert_clean()


def test_stop_keeps_the_partial_answer(
    visitor: Any, owner: httpx.Client, site: Site, onebox: LiveServer, problems: PageProblems
) -> None:
    key = widget_key(owner, site)
    visitor.goto(site.page(key["secret"]))
    open_widget(visitor)
    provider = onebox.provider
    assert isinstance(provider, FakeProvider)
    provider.token_delay = 0.4
    try:
        answer = ask(visitor, "How do kestrels hunt?")
        expect(visitor.get_by_test_id("widget-stop")).to_be_visible()
        expect(answer.get_by_test_id("widget-text")).to_contain_text("According")
        visitor.get_by_test_id("widget-stop").click()
        expect(answer).to_have_attribute("data-status", "partial")
        expect(answer).to_contain_text("Stopped.")
        expect(visitor.get_by_test_id("widget-send")).to_be_visible()
    finally:
        provider.token_delay = 0.04
    problems.assert_clean()


def test_a_site_the_key_does_not_allow_is_refused(
    browser: Any, owner: httpx.Client, site: Site, stranger: Site
) -> None:
    key = widget_key(owner, site)
    problems = PageProblems(expected=[403])
    with new_page(browser, stranger.url, problems, handle_dialogs=True) as page:
        page.goto(stranger.page(key["secret"]))
        open_widget(page)
        notice = page.get_by_test_id("widget-notice")
        expect(notice).to_have_attribute("data-kind", "refused")
        expect(notice).to_have_text("This chat isn't available on this website.")
        expect(page.get_by_test_id("widget-input")).to_be_disabled()
        expect(page.get_by_test_id("widget-message")).to_have_count(0)
        problems.assert_clean()
    listed = owner.get(f"/api/widget/keys/{key['key']['id']}/conversations").json()["items"]
    assert listed == []


def test_hostile_host_css_cannot_break_it_and_a_strict_csp_does_not_block_it(
    visitor: Any, owner: httpx.Client, site: Site, problems: PageProblems
) -> None:
    key = widget_key(owner, site, appearance={"color": "#0a7f5a", "position": "bottom-left"})
    visitor.goto(site.page(key["secret"], hostile=True))
    launcher = visitor.get_by_test_id("widget-launcher")
    expect(launcher).to_be_visible()
    style = launcher.evaluate(
        "n => { const s = getComputedStyle(n); return [s.position, s.backgroundColor, s.width,"
        " s.left, s.borderTopLeftRadius] }"
    )
    assert style == ["fixed", "rgb(10, 127, 90)", "56px", "20px", "50%"], style
    # The host's full-page overlay, at the highest z-index, does not cover it.
    panel = open_widget(visitor)  # a real click: fails if something else would take it
    answer = ask(visitor, "How do kestrels hunt?")
    expect(answer).to_have_attribute("data-status", "complete")
    expect(panel.get_by_test_id("widget-source")).to_have_count(1)
    font = panel.evaluate("n => getComputedStyle(n).fontSize")
    assert font == "14px"
    # The host's rule for ".ob-launcher" reaches its own button, not the widget's.
    host_button = visitor.locator("#host-button").evaluate(
        "n => getComputedStyle(n).backgroundColor"
    )
    assert host_button == "rgb(1, 2, 3)"

    # The policy really is strict: an inline <style> is refused on this page, while the
    # widget's constructed stylesheet (above) applies.
    blocked = visitor.evaluate(
        """async () => {
            const seen = new Promise(resolve =>
                document.addEventListener("securitypolicyviolation",
                    e => resolve(e.violatedDirective), {once: true}));
            const probe = document.createElement("div");
            probe.id = "probe";
            document.body.append(probe);
            const style = document.createElement("style");
            style.textContent = "#probe { outline: 7px solid red !important }";
            document.head.append(style);
            const directive = await seen;
            return [directive, getComputedStyle(probe).outlineWidth];
        }"""
    )
    assert blocked[0].startswith("style-src"), blocked
    assert blocked[1] != "7px"
    problems.errors = [e for e in problems.errors if "Content Security Policy" not in e]
    problems.assert_clean()


def test_the_launcher_waits_for_the_sites_appearance(
    visitor: Any, owner: httpx.Client, site: Site, problems: PageProblems
) -> None:
    key = widget_key(owner, site, appearance={"color": "#0a7f5a", "position": "bottom-left"})
    held: list[Any] = []
    visitor.route("**/widget/config", lambda route: held.append(route))  # answered below
    visitor.goto(site.page(key["secret"]))
    widget = visitor.locator("onebox-widget")
    expect(widget).to_have_attribute("data-state", "starting")
    launcher = visitor.get_by_test_id("widget-launcher")
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        visitor.wait_for_timeout(20)  # lets Playwright deliver the held request
    assert held, "the widget never asked for its config"
    expect(launcher).to_be_hidden()  # not in the default colour and corner meanwhile
    held[0].continue_()
    expect(widget).to_have_attribute("data-state", "ready")
    expect(launcher).to_be_visible()
    expect(launcher).to_have_css("background-color", "rgb(10, 127, 90)")
    expect(launcher).to_have_css("left", "20px")
    problems.assert_clean()


def test_the_rate_limit_reads_as_a_friendly_message(
    browser: Any, owner: httpx.Client, site: Site
) -> None:
    key = widget_key(owner, site, visitor_requests_per_minute=1)
    problems = PageProblems(expected=[429])
    with new_page(browser, site.url, problems, handle_dialogs=True) as page:
        page.goto(site.page(key["secret"]))
        open_widget(page)
        expect(ask(page, "How do kestrels hunt?")).to_have_attribute("data-status", "complete")
        page.get_by_test_id("widget-input").fill("And where do they nest?")
        page.get_by_test_id("widget-input").press("Enter")
        notice = page.get_by_test_id("widget-notice")
        expect(notice).to_have_attribute("data-kind", "rate-limit")
        expect(notice).to_have_text(
            re.compile(
                r"^You're asking faster than we can answer\. "
                r"Please try again in \d+ seconds?\.$"
            )
        )
        # The question was not asked: it is back in the box, and no empty answer is left.
        expect(page.get_by_test_id("widget-message")).to_have_count(2)
        expect(page.get_by_test_id("widget-input")).to_have_value("And where do they nest?")
        problems.assert_clean()


def test_an_unreachable_server_reads_as_offline(
    visitor: Any, owner: httpx.Client, site: Site, problems: PageProblems
) -> None:
    key = widget_key(owner, site)
    visitor.goto(site.page(key["secret"]))
    open_widget(visitor)
    visitor.route("**/widget/messages", lambda route: route.abort())
    visitor.get_by_test_id("widget-input").fill("Hello?")
    visitor.get_by_test_id("widget-input").press("Enter")
    notice = visitor.get_by_test_id("widget-notice")
    expect(notice).to_have_attribute("data-kind", "offline")
    expect(notice).to_contain_text("The assistant is offline right now.")
    problems.errors = [e for e in problems.errors if "net::ERR_FAILED" not in e]
    problems.assert_clean()


def test_the_owner_creates_a_widget_key_with_a_live_preview_and_reads_conversations(
    browser: Any, onebox: LiveServer, owner: httpx.Client, site: Site
) -> None:
    problems = PageProblems()
    with new_page(browser, onebox.url, problems, handle_dialogs=True, height=1000) as page:
        page.goto("/")
        page.wait_for_selector("html[data-ready='true']")
        page.get_by_test_id("account-menu").click()
        page.get_by_test_id("menu-keys").click()
        page.get_by_test_id("key-name").fill("Docs widget")
        page.get_by_test_id("key-kind").select_option("widget")
        page.get_by_test_id("key-origins").fill(site.url)
        page.locator("details.more-options > summary").click()
        page.get_by_test_id("key-collections").fill("Help center")

        preview = page.get_by_test_id("widget-preview")
        expect(preview.get_by_test_id("widget-panel")).to_be_visible()
        page.get_by_test_id("widget-title-input").fill("Docs <b>help</b>")
        expect(preview.get_by_test_id("widget-title")).to_have_text("Docs <b>help</b>")
        page.get_by_test_id("widget-suggestions-input").fill("Where is my order?\nPrices?")
        expect(preview.get_by_test_id("widget-suggestion")).to_have_count(2)
        page.get_by_test_id("widget-theme-input").select_option("dark")
        expect(preview.locator(".ob")).to_have_attribute("data-theme", "dark")
        page.get_by_test_id("widget-retain-input").uncheck()
        page.screenshot(path=str(SCREENSHOTS / "onebox-widget-keys.png"), full_page=True)

        page.get_by_test_id("key-create").click()
        snippet = page.get_by_test_id("widget-snippet")
        expect(snippet).to_have_text(
            re.compile(
                rf'^<script src="{re.escape(onebox.url)}/widget\.js" '
                r'data-key="obw_[A-Za-z0-9_-]+" async></script>$'
            )
        )
        secret = page.get_by_test_id("key-secret").text_content() or ""
        demo = page.get_by_test_id("widget-demo-link")
        expect(demo).to_have_attribute("href", f"/widget/demo?key={secret}")
        created = [k for k in owner.get("/api/keys").json() if k["name"] == "Docs widget"]
        assert len(created) == 1
        settings = owner.get(f"/api/widget/keys/{created[0]['id']}").json()
        assert settings["appearance"]["title"] == "Docs <b>help</b>"
        assert settings["appearance"]["suggestions"] == ["Where is my order?", "Prices?"]
        assert settings["policy"]["retain_conversations"] is False

        # The demo page (Onebox's own origin) embeds it with these settings.
        page.goto(f"/widget/demo?key={secret}")
        panel = open_widget(page)
        expect(page.get_by_test_id("widget-title")).to_have_text("Docs <b>help</b>")
        answer = ask(page, "How do kestrels hunt?")
        expect(answer).to_have_attribute("data-status", "complete")
        expect(panel.get_by_test_id("widget-source")).to_have_count(1)
        # Nothing kept on the server: the browser holds the conversation, across a reload.
        page.reload()
        panel = open_widget(page)
        expect(panel.get_by_test_id("widget-message")).to_have_count(2)
        expect(panel.get_by_test_id("widget-source")).to_have_count(1)
        follow_up = ask(page, "And where do they nest?")
        expect(follow_up).to_have_attribute("data-status", "complete")
        listed = owner.get(f"/api/widget/keys/{created[0]['id']}/conversations").json()
        assert listed["items"] == []
        page.get_by_test_id("widget-new").click()
        expect(panel.get_by_test_id("widget-message")).to_have_count(0)
        expect(panel.get_by_test_id("widget-suggestion")).to_have_count(2)

        # A kept conversation of another key, read in its owner's panel.
        kept = widget_key(owner, site)
        visitor = page.context.new_page()
        visitor.goto(site.page(kept["secret"]))
        open_widget(visitor)
        expect(ask(visitor, "Where do kestrels nest?")).to_have_attribute("data-status", "complete")
        visitor.close()
        page.goto("/")
        page.wait_for_selector("html[data-ready='true']")
        page.get_by_test_id("account-menu").click()
        page.get_by_test_id("menu-keys").click()
        row = page.locator(f'[data-testid="key-row"][data-id="{kept["key"]["id"]}"]')
        row.get_by_test_id("key-conversations").click()
        conversation = page.get_by_test_id("widget-conversation-row")
        expect(conversation).to_have_count(1)
        conversation.get_by_test_id("widget-conversation-read").click()
        transcript = page.get_by_test_id("widget-transcript-message")
        expect(transcript).to_have_count(2)
        expect(transcript.nth(0)).to_contain_text("Where do kestrels nest?")
        expect(page.get_by_test_id("widget-export-markdown")).to_have_attribute(
            "href", f"/api/widget/keys/{kept['key']['id']}/export?format=markdown"
        )
        page.screenshot(path=str(SCREENSHOTS / "onebox-widget-conversations.png"), full_page=True)
        problems.assert_clean()
