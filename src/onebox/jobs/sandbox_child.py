"""The child side of ``jobs/sandbox.py``: a fresh interpreter that runs one task at a time
under its own resource limits. Run as ``python -m onebox.jobs.sandbox_child``; it speaks
length-prefixed pickles on its stdin and stdout and never prints to them.

Limits: ``RLIMIT_CPU`` is set before each task to the CPU time used so far plus the task's
allowance (the kernel then kills the process with SIGXCPU, even inside C code); ``RLIMIT_AS``
caps the address space at what the warmed-up interpreter uses plus the memory allowance, so
an allocation beyond it raises MemoryError. The parent enforces the wall clock.
"""

from __future__ import annotations

import importlib
import math
import os
import pickle
import resource
import signal
import struct
import sys
import traceback
from typing import IO, Any

HEADER = struct.Struct(">Q")


def send(stream: IO[bytes], message: object) -> None:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(HEADER.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def receive(stream: IO[bytes]) -> Any:
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        raise EOFError
    (size,) = HEADER.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        raise EOFError
    return pickle.loads(payload)  # noqa: S301 - from our own parent, over a private pipe


def address_space_bytes() -> int:
    """This process's virtual memory size (Linux); 0 where it cannot be read."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def cpu_seconds_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _set_soft_limit(kind: int, soft: int) -> None:
    _, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(kind, (soft, hard))


def _limit_cpu(allowance: int) -> None:
    _set_soft_limit(resource.RLIMIT_CPU, math.ceil(cpu_seconds_used()) + allowance)


def _limit_memory(allowance: int) -> None:
    baseline = address_space_bytes()
    if allowance <= 0 or baseline == 0:
        # Without /proc (not Linux) the cap cannot be placed above what is already mapped.
        print("onebox sandbox: no memory cap on this platform", file=sys.stderr)
        return
    _set_soft_limit(resource.RLIMIT_AS, baseline + allowance)


def _failure(exc: BaseException) -> tuple[str, BaseException, str]:
    text = "".join(traceback.format_exception(exc))
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own bytes
    except Exception:
        # Not every exception survives pickling; its type and message still do.
        exc = RuntimeError(f"{type(exc).__name__}: {exc}")
    return "error", exc, text


def serve(inbox: IO[bytes], outbox: IO[bytes]) -> None:
    config = receive(inbox)
    for module in config["preload"]:
        importlib.import_module(module)
    # A CPU-limit kill must not leave a core file behind.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _limit_memory(int(config["memory_bytes"]))
    send(outbox, ("ready", os.getpid()))
    while True:
        try:
            function, args, cpu_seconds = receive(inbox)
        except EOFError:
            return  # the parent closed the pipe: shut down
        _limit_cpu(int(cpu_seconds))
        try:
            outcome: tuple[Any, ...] = ("ok", function(*args))
            send(outbox, outcome)
        except MemoryError:
            outcome = ("memory",)
        except BaseException as exc:
            outcome = _failure(exc)
        else:
            continue
        try:
            send(outbox, outcome)
        except MemoryError:
            send(outbox, ("memory",))
        if outcome[0] == "memory":
            # The heap is in an unknown state after an allocation failed: start afresh.
            return


def main() -> None:
    # The parent decides when this process ends (it closes the pipe or kills it); Ctrl-C
    # in a terminal reaches the whole process group and must not abort a task halfway.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inbox = os.fdopen(os.dup(0), "rb")
    outbox = os.fdopen(os.dup(1), "wb")
    # Stray prints from libraries must not corrupt the protocol: stdout becomes stderr.
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    with inbox, outbox:
        serve(inbox, outbox)


if __name__ == "__main__":
    main()
