"""The fake upstream server process: ``serve`` and the command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Callable

from onebox.testing.fake_upstream.handlers import _Connection
from onebox.testing.fake_upstream.replies import DEFAULT_FAULT_TOKENS, DEFAULT_TOKENS, FAIL_MODES
from onebox.testing.fake_upstream.state import Options, _State


async def serve(host: str, port: int, options: Options) -> None:
    """Serve until SIGINT/SIGTERM."""
    options.validate()
    state = _State(options)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Connection(state), host, port, backlog=4096, reuse_address=True
    )
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return None
    return uvloop.new_event_loop


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m onebox.testing.fake_upstream",
        description="A deterministic fake OpenAI-compatible server for tests and benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ttft-ms", type=float, default=0.0, help="delay before the first token")
    parser.add_argument(
        "--tokens-per-second", type=float, default=0.0, help="decode speed; 0 = no delay"
    )
    parser.add_argument("--tokens", type=int, default=DEFAULT_TOKENS, help="reply length")
    parser.add_argument("--fail-mode", choices=FAIL_MODES, default="none")
    parser.add_argument(
        "--fail-count",
        type=int,
        default=None,
        help="status/slow modes: first K requests fail (default all); "
        f"midstream/stall: tokens sent before the fault (default {DEFAULT_FAULT_TOKENS})",
    )
    parser.add_argument("--model", default=None, help="only accept this model name")
    parser.add_argument("--api-key", default=None, help="require this Bearer key on /v1/")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    options = Options(
        ttft_ms=args.ttft_ms,
        tokens_per_second=args.tokens_per_second,
        tokens=args.tokens,
        fail_mode=args.fail_mode,
        fail_count=args.fail_count,
        model=args.model,
        api_key=args.api_key,
    )
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(serve(args.host, args.port, options))
