"""A long conversation opened by its URL, in headless Chromium: how long until it is
rendered and how many DOM nodes the page holds.

Onebox runs as its own process (``onebox serve``, the fake model) with a 150-turn
conversation (300 messages with paragraphs, lists and code blocks) stored through the API.
Each repetition opens ``/c/{id}`` in a fresh browser context (cold cache) and times, from
navigation start, the first animation frame where the newest reply is on screen and the
list is no longer busy; then, after half a second of quiet, it counts the page's DOM nodes
(elements, and all nodes) and the message rows holding content. Last, it scrolls up to
the first message and times that.

When ``ONEBOX_BENCH_UI_BASELINE`` names a git revision (default: the commit before paged,
windowed messages, when this checkout has it), the same page is measured on that
revision's code, started from ``git archive``, in the same run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.table import print_table
from onebox.testing.ready import stop_server, wait_until_ready

TURNS = 150
TARGET_MS = 300
TARGET_NODES = 1500
BASELINE = "10c7fc7"  # main just before this change
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip

RENDERED = """() => {
    const list = document.getElementById("message-list");
    const scroller = document.getElementById("messages");
    const rows = list ? list.querySelectorAll('[data-testid="message"]') : [];
    const last = rows.length ? rows[rows.length - 1] : null;
    const body = last && last.querySelector('[data-testid="message-body"]');
    const done = document.documentElement.dataset.ready === "true"
        && scroller.getAttribute("aria-busy") === "false"
        && body && body.textContent.includes("Echo: Question %d");
    if (done && !window.__rendered) window.__rendered = performance.now();
    return done;
}"""

COUNT = """() => {
    let nodes = 0;
    const walker = document.createTreeWalker(document, NodeFilter.SHOW_ALL);
    while (walker.nextNode()) nodes += 1;
    const rows = document.querySelectorAll('#message-list [data-testid="message"]');
    const built = [...rows].filter((row) => row.querySelector('[data-testid="message-body"]'));
    return {elements: document.getElementsByTagName("*").length, nodes, rows: rows.length,
            built: built.length};
}"""

DETAIL_TIMING = """() => {
    const entry = performance.getEntriesByType("resource")
        .filter((e) => e.name.endsWith("/api/conversations/%s")).pop();
    return [entry.startTime, entry.responseEnd];
}"""

TO_TOP = """async () => {
    const started = performance.now();
    const scroller = document.getElementById("messages");
    const first = () => {
        const row = document.querySelector('#message-list [data-testid="message"]');
        const body = row && row.querySelector('[data-testid="message-body"]');
        return body && body.textContent.startsWith("Question 0:");
    };
    while (!first() || document.querySelectorAll('#message-list [data-testid="message"]').length < %d) {
        scroller.scrollTop = 0;
        await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 16)));
        if (performance.now() - started > 30000) return null;
    }
    return performance.now() - started;
}"""


def _message(index: int) -> str:
    words = " ".join(f"word{index}_{n}" for n in range(45))
    return (
        f"Question {index}: {words}\n\n- first point about {index}\n- second point\n"
        f"- third point\n\n```python\nprint({index})\n```\n\nA closing sentence."
    )


def _port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _onebox(src: Path) -> Iterator[str]:
    """``onebox serve`` from ``src`` with the fake model and a fresh data directory."""
    with tempfile.TemporaryDirectory(prefix="onebox-ui-") as directory:
        port = _port()
        env = {
            **os.environ,
            "PYTHONPATH": str(src),
            "ONEBOX_LLM_PROVIDER": "fake",
            "ONEBOX_MODEL_NAME": "fake-echo",
            "ONEBOX_MAX_MESSAGE_CHARS": "20000",
            "ONEBOX_CONTEXT_SIZE": "1000000",  # keep the whole history: no trimming
        }
        log = Path(directory) / "server.log"  # a file: an undrained pipe would block it
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "onebox", "serve", "--port", str(port), "--host",
                 "127.0.0.1", "--data-dir", str(Path(directory) / "data")],
                env=env, stdout=subprocess.DEVNULL, stderr=sink, cwd=directory,
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            if not wait_until_ready(url, timeout=300, alive=lambda: process.poll() is None):
                raise RuntimeError(log.read_text(errors="replace")[-4000:])
            yield url
        finally:
            stop_server(process)


def _seed(url: str, turns: int) -> str:
    with httpx.Client(base_url=url, timeout=60) as client:
        cid = str(client.post("/api/conversations", json={"title": "Long chat"}).json()["id"])
        for index in range(turns):
            response = client.post(
                f"/api/conversations/{cid}/messages", json={"content": _message(index)}
            )
            response.raise_for_status()
    return cid


def _measure(browser: Any, url: str, cid: str, turns: int, repeats: int) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for attempt in range(repeats):
        context = browser.new_context(base_url=url, viewport={"width": 1280, "height": 820})
        try:
            page = context.new_page()
            page.goto(f"/c/{cid}")
            page.wait_for_function(RENDERED % (turns - 1), polling="raf", timeout=60_000)
            rendered = float(page.evaluate("window.__rendered"))
            start, end = page.evaluate(DETAIL_TIMING % cid)
            page.wait_for_timeout(500)
            counts = page.evaluate(COUNT)
            run: dict[str, Any] = {
                "rendered_ms": rendered,  # from navigation start (modules, sign-in, lists)
                "open_ms": rendered - start,  # from asking for the conversation
                "fetch_ms": end - start,  # the conversation's request and response
                "render_ms": rendered - end,  # from its response to the frame showing it
                **counts,
            }
            if attempt == 0:
                run["scroll_to_first_ms"] = page.evaluate(TO_TOP % (2 * turns))
                run["after_scroll"] = page.evaluate(COUNT)
            runs.append(run)
        finally:
            context.close()
    first = runs[0]
    return {
        "rendered_ms_median": statistics.median(r["rendered_ms"] for r in runs),
        "open_ms_median": statistics.median(r["open_ms"] for r in runs),
        "fetch_ms_median": statistics.median(r["fetch_ms"] for r in runs),
        "render_ms_median": statistics.median(r["render_ms"] for r in runs),
        "elements": statistics.median(r["elements"] for r in runs),
        "nodes": statistics.median(r["nodes"] for r in runs),
        "rows": first["rows"],
        "rows_built": first["built"],
        "scroll_to_first_ms": first.get("scroll_to_first_ms"),
        "nodes_after_scroll": first.get("after_scroll", {}).get("nodes"),
        "runs": runs,
    }


def _baseline_src(directory: Path) -> Path | None:
    revision = os.environ.get("ONEBOX_BENCH_UI_BASELINE", BASELINE)
    if not revision or shutil.which("git") is None:
        return None
    known = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-e", f"{revision}^{{commit}}"], check=False
    )
    if known.returncode != 0:
        return None
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision, "src"], check=True, capture_output=True
    )
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive.stdout, check=True)
    return directory / "src"


def run(quick: bool) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    turns = 40 if quick else TURNS
    repeats = 2 if quick else 5
    variants: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="onebox-ui-base-") as base_dir:
        sources: list[tuple[str, Path]] = [("paged + windowed", ROOT / "src")]
        baseline = _baseline_src(Path(base_dir))
        if baseline is not None:
            sources.insert(0, ("before (all messages)", baseline))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            try:
                for name, src in sources:
                    with _onebox(src) as url:
                        cid = _seed(url, turns)
                        variants[name] = _measure(browser, url, cid, turns, repeats)
            finally:
                browser.close()
    rows = [
        [name, v["rendered_ms_median"], v["open_ms_median"], v["fetch_ms_median"],
         v["render_ms_median"], v["elements"], v["nodes"], f"{v['rows_built']}/{v['rows']}",
         v["scroll_to_first_ms"], v["nodes_after_scroll"]]
        for name, v in variants.items()
    ]  # fmt: skip
    print(f"{turns} turns ({2 * turns} messages), {repeats} cold opens each, Chromium headless")
    print("ms, medians: page = navigation start to rendered; open = asking for the")
    print("conversation to rendered (fetch + render); render = its response to the frame")
    print_table(
        ["variant", "page", "open", "fetch", "render", "elements", "DOM nodes",
         "rows built/listed", "scroll to first", "nodes then"],
        rows,
    )  # fmt: skip
    ours = variants["paged + windowed"]
    print(
        f"target: open <= {TARGET_MS} ms and <= {TARGET_NODES} nodes: "
        f"{ours['open_ms_median']:.0f} ms, {ours['nodes']:.0f} nodes"
    )
    return {
        "turns": turns,
        "repeats": repeats,
        "target": {"open_ms": TARGET_MS, "nodes": TARGET_NODES},
        "met": ours["open_ms_median"] <= TARGET_MS and ours["nodes"] <= TARGET_NODES,
        "variants": variants,
    }
