"""A fake OpenAI-compatible upstream: a real HTTP server process, deterministic and fast.

Run it with ``python -m onebox.testing.fake_upstream --port 8001``, or from tests and
benchmarks with :func:`start_fake_upstream`, which launches it on a free port and waits
until it answers.

It speaks just enough of the OpenAI wire format for a gateway: ``POST /v1/chat/completions``
(streamed as ``text/event-stream`` or not), ``GET /v1/models``, ``POST /v1/embeddings`` and
``GET /health``. Test hooks: ``GET /_stats`` (counters), ``POST /_reset`` (zero them and the
injected-failure budget), ``POST /_config`` (change any option at runtime, same names as the
command line) and ``GET /_last_request`` (the last chat request body).

The reply is fixed by the request (see :func:`reply_words`)::

    words = ["Echo:", *last_user_message.split()] + ["tok{i}" for i in range(len, tokens)]
    words = words[:tokens]                       # --tokens, default 16
    emitted = words[:max_tokens]                 # max_tokens / max_completion_tokens
    deltas = [words[0], " " + words[1], " " + words[2], ...]

``finish_reason`` is ``"length"`` when ``max_tokens`` cut the reply short, else ``"stop"``;
a ``stop`` string found in the text cuts it just before the match (``"stop"``). Usage:
``prompt_tokens`` = sum over messages of (words in the content + 3);
``completion_tokens`` = number of content deltas.

Timing: headers go out at once; the role chunk and the first content chunk after
``--ttft-ms``; then one token every ``1 / --tokens-per-second`` seconds (0: no delay),
scheduled on absolute times so a busy server catches up by batching due tokens.

Fault injection (``--fail-mode``): ``status-500``, ``status-503``, ``status-429`` (with
``Retry-After: 1``) and ``slow-first-byte`` (no headers for an hour) hit the first
``--fail-count`` chat/embedding requests (default: all), then the server is healthy;
``midstream`` sends ``--fail-count`` tokens (default 3) and then closes the connection
without ending the chunked body; ``stall`` sends that many tokens and then goes silent
with the connection open.

It is a raw asyncio protocol on uvloop with the httptools parser: no framework, no task per
request, one timer per active stream, so it can feed a gateway benchmark on a small machine.
"""

from __future__ import annotations

from onebox.testing.fake_upstream.launcher import FakeUpstream, start_fake_upstream
from onebox.testing.fake_upstream.replies import (
    DEFAULT_EMBEDDING_DIMENSIONS,
    DEFAULT_FAULT_TOKENS,
    DEFAULT_TOKENS,
    FAIL_MODES,
    MAX_BODY_BYTES,
    SLOW_FIRST_BYTE_SECONDS,
    embedding_for,
    expected_reply,
    prompt_tokens_for,
    reply_deltas,
    reply_words,
)
from onebox.testing.fake_upstream.server import main, serve
from onebox.testing.fake_upstream.state import Options, Stats

__all__ = [
    "DEFAULT_EMBEDDING_DIMENSIONS",
    "DEFAULT_FAULT_TOKENS",
    "DEFAULT_TOKENS",
    "FAIL_MODES",
    "MAX_BODY_BYTES",
    "SLOW_FIRST_BYTE_SECONDS",
    "FakeUpstream",
    "Options",
    "Stats",
    "embedding_for",
    "expected_reply",
    "main",
    "prompt_tokens_for",
    "reply_deltas",
    "reply_words",
    "serve",
    "start_fake_upstream",
]
