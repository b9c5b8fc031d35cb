"""What rendering a reply while it streams costs the server: the "render" frames of
``onebox.chat.rendering.LiveRender`` (at most every max(80 ms, 5 x the last render's cost))
against rendering after every delta (up to 6,000 characters), for replies of growing size (prose, Python code
blocks, inline and display LaTeX) arriving at a model's pace.

Time is simulated for the model (a token every 1/rate s) and measured for rendering: the
clock LiveRender reads is the simulated arrival time plus the real time spent since, so
its pacing sees the true cost of each frame. "share" is rendering time over the reply's
streaming time: the part of one event loop a reply takes for its frames.
"""

from __future__ import annotations

import time
from typing import Any

from bench.table import print_table
from onebox.chat.rendering import LiveRender, render_markdown, render_streaming
from onebox.llm.fake import _TOKEN

PARAGRAPH = (
    "The **area** of a disc of radius $r$ is $A = \\pi r^2$; see [the notes](https://a.example) "
    "and `area()` below, which also handles *negative* input.\n\n"
)
CODE = (
    "```python\ndef area(r: float) -> float:\n    # the disc\n"
    "    if r < 0:\n        raise ValueError(f'negative radius {r}')\n"
    "    return 3.14159 * r ** 2\n```\n\n"
)
DISPLAY = "$$\n\\int_0^{r} 2 \\pi t \\, dt = \\pi r^2\n$$\n\n"


def reply(chars: int) -> str:
    parts: list[str] = []
    while sum(map(len, parts)) < chars:
        parts += [PARAGRAPH, CODE.replace("disc", f"disc {len(parts)}"), DISPLAY]
    return "".join(parts)


def stream(text: str, rate: float, *, every_delta: bool) -> dict[str, Any]:
    arrival = [0.0, 0.0]  # simulated time of the current token, perf_counter then

    def clock() -> float:
        return arrival[0] + (time.perf_counter() - arrival[1])

    live = LiveRender(clock)
    simulated = render_s = worst = 0.0
    frames = 0
    so_far = ""
    for token in _TOKEN.findall(text):
        arrival[0], arrival[1] = simulated, time.perf_counter()
        started = time.perf_counter()
        so_far += token
        html = render_streaming(so_far) if every_delta else live.feed(token)
        cost = time.perf_counter() - started
        if html is not None:
            frames += 1
            render_s += cost
            worst = max(worst, cost)
        simulated += max(1 / rate, cost)
    started = time.perf_counter()
    render_markdown.cache_clear()
    render_markdown(text)  # the last frame: the stored message's html
    final = time.perf_counter() - started
    return {
        "frames": frames + 1,
        "mean_frame_ms": 1000 * render_s / max(frames, 1),
        "worst_frame_ms": 1000 * worst,
        "final_ms": 1000 * final,
        "share": (render_s + final) / simulated,
        "stream_s": simulated,
    }


def run(quick: bool) -> dict[str, Any]:
    sizes = (2_000, 6_000) if quick else (2_000, 6_000, 20_000)
    rates = (50.0,) if quick else (30.0, 100.0)
    rows: list[list[object]] = []
    results: list[dict[str, Any]] = []
    for chars in sizes:
        text = reply(chars)
        for rate in rates:
            paced = stream(text, rate, every_delta=False)
            # Rendering after every delta grows with the square of the reply: small ones only.
            naive = stream(text, rate, every_delta=True) if chars <= 6_000 else None
            results.append({"chars": len(text), "tokens_per_s": rate, "paced": paced,
                            "every_delta": naive})  # fmt: skip
            rows.append([
                len(text), rate, paced["frames"], paced["mean_frame_ms"], paced["worst_frame_ms"],
                f"{100 * paced['share']:.1f}%", naive["frames"] if naive else "-",
                f"{100 * naive['share']:.1f}%" if naive else "-",
            ])  # fmt: skip
    print_table(
        ["chars", "tok/s", "frames", "mean ms", "worst ms", "share", "every-delta frames",
         "every-delta share"],
        rows,
    )  # fmt: skip
    return {"runs": results}
