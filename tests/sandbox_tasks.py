"""Tasks for the sandbox tests; top-level so a child process can import them by name."""

from __future__ import annotations

import os
import signal
import time

from onebox.documents.ingestion.parsing import ParseError


def whoami(value: object) -> tuple[int, object]:
    return os.getpid(), value


def burn_cpu() -> None:
    total = 0
    while True:  # until the CPU limit stops the process
        total += 1


def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def allocate(megabytes: int) -> int:
    block = bytearray(megabytes * 1024 * 1024)
    return len(block)


def crash() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def refuse(message: str) -> None:
    raise ParseError(message)
