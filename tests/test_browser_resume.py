"""The reply outlives the page, in headless Chromium: a reload mid-stream reattaches to the
running reply and shows it complete, a dropped network resumes from the last event, and
Stop works on a reattached reply."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from onebox.core.settings import Settings
from onebox.llm.fake import FakeProvider
from tests.browser import ASSISTANT, PageProblems, expect, launch_browser, new_page, open_app, send
from tests.conftest import LiveServer, run_live_server

pytestmark = pytest.mark.browser

MESSAGE = '[data-testid="message"]'
BODY = '[data-testid="message-body"]'
WORDS = " ".join(f"w{i}" for i in range(80))  # 81 chunks, 60 ms apart: about 5 s


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_browser()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from run_live_server(
        Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=tmp_path_factory.mktemp("browser-resume"),
            llm_provider="fake",
            model_name="fake-echo",
        ),
        FakeProvider(model_name="fake-echo", context_size=4096, token_delay=0.06),
    )


@pytest.fixture
def problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def page(browser: Any, server: LiveServer, problems: PageProblems) -> Iterator[Any]:
    with new_page(browser, server.url, problems) as page:
        yield page


class DroppingProxy:
    """A TCP relay in front of the server whose open connections can be cut at once (a
    dropped network: Chromium's offline mode spares a response already streaming)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def drop(self) -> None:
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.listener.close()
        self.drop()


def streaming_with_text(page: Any, text: str) -> None:
    """Waits until the newest reply is streaming and shows ``text`` (not yet the end)."""
    page.wait_for_function(
        """(text) => {
            const rows = document.querySelectorAll('[data-testid="message"][data-role="assistant"]');
            const row = rows[rows.length - 1];
            const body = row && row.querySelector('[data-testid="message-body"]');
            return body && row.dataset.status === "streaming" && body.textContent.includes(text)
                && !body.textContent.includes("w79");
        }""",
        arg=text,
    )


def conversation_id(page: Any) -> str:
    page.wait_for_url(re.compile(r"/c/[^/]+$"))
    return str(page.url.rsplit("/c/", 1)[1])


def stored_messages(server: LiveServer, conversation: str) -> list[dict[str, Any]]:
    detail = httpx.get(f"{server.url}/api/conversations/{conversation}").json()
    assert detail["generating"] is None
    return list(detail["messages"])


def test_reload_mid_stream_reattaches_and_the_reply_completes(
    page: Any, server: LiveServer, problems: PageProblems
) -> None:
    open_app(page)
    send(page, WORDS)
    streaming_with_text(page, "w5")
    conversation = conversation_id(page)

    page.reload()
    page.wait_for_selector("html[data-ready='true']")
    reply = page.locator(ASSISTANT)
    expect(page.locator(MESSAGE)).to_have_count(2)
    # Reattached: still streaming, Stop on offer, the text replayed from the start.
    streaming_with_text(page, "Echo: w0 w1")
    expect(page.get_by_test_id("stop")).to_be_visible()
    expect(reply).to_have_attribute("data-status", "complete", timeout=20_000)
    expect(reply.locator(BODY)).to_have_text(f"Echo: {WORDS}")
    expect(page.locator(MESSAGE)).to_have_count(2)
    expect(page.get_by_test_id("send")).to_be_visible()

    messages = stored_messages(server, conversation)
    assert [m["status"] for m in messages] == ["complete", "complete"]
    assert messages[1]["content"] == f"Echo: {WORDS}"
    problems.assert_clean()


def test_a_dropped_connection_resumes_from_the_last_event(
    browser: Any, server: LiveServer, problems: PageProblems
) -> None:
    proxy = DroppingProxy(int(server.url.rsplit(":", 1)[1]))
    resumed: list[str | None] = []
    try:
        with new_page(browser, proxy.url, problems) as page:
            page.on(
                "request",
                lambda r: (
                    resumed.append(r.headers.get("last-event-id")) if "/events" in r.url else None
                ),
            )
            open_app(page)
            reply = send(page, WORDS)
            streaming_with_text(page, "w3")
            proxy.drop()  # every connection, the streaming one included, is cut
            expect(reply).to_have_attribute("data-status", "complete", timeout=20_000)
            expect(reply.locator(BODY)).to_have_text(f"Echo: {WORDS}")
    finally:
        proxy.close()
    # It came back with GET .../events from the last event it had, not from the start.
    assert resumed, "the stream was never resumed"
    assert all(int(value or 0) > 3 for value in resumed), resumed
    # Chromium logs the response that was cut; nothing else may go wrong.
    problems.errors = [e for e in problems.errors if "ERR_INCOMPLETE_CHUNKED_ENCODING" not in e]
    problems.assert_clean()


def test_stop_works_on_a_reattached_reply(
    page: Any, server: LiveServer, problems: PageProblems
) -> None:
    open_app(page)
    send(page, WORDS)
    streaming_with_text(page, "w3")
    conversation = conversation_id(page)
    page.reload()
    page.wait_for_selector("html[data-ready='true']")
    streaming_with_text(page, "w5")
    page.get_by_test_id("stop").click()
    reply = page.locator(ASSISTANT)
    expect(reply).to_have_attribute("data-status", "partial")
    expect(reply.locator(".message-marker")).to_contain_text("Stopped")
    expect(page.get_by_test_id("send")).to_be_visible()
    shown = reply.locator(BODY).text_content() or ""
    assert shown.startswith("Echo: w0 w1")
    assert "w79" not in shown
    stored = stored_messages(server, conversation)[1]
    assert stored["status"] == "partial"
    assert stored["content"].startswith("Echo: w0 w1")
    problems.assert_clean()
