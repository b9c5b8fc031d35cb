"""A small pool of child processes for CPU-heavy work on untrusted input (parsing uploads),
so it never runs on an event loop and one hostile file cannot take the process down.

Each task runs in a warm child (a fresh interpreter, started with ``sys.executable``, never
forked from this threaded process) under a CPU-time limit, a memory cap and a wall clock.
A task that crosses one fails alone with :class:`SandboxLimitError`; its child is killed and
a new one is started for the next task. Children are reused between tasks (the parsing
libraries are imported once) and started lazily, so an app that never ingests a document
never starts one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from onebox.jobs.base import PermanentJobError
from onebox.jobs.sandbox_child import HEADER

if TYPE_CHECKING:
    from onebox.core.settings import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")
LimitKind = Literal["cpu", "wall", "memory", "crash"]

# Like the job registry's targets, a name: imported in each child before its first task so
# the first document does not pay for it (and so the memory cap is measured after it).
INGESTION_PRELOAD = ("onebox.documents.ingestion.preparing",)
STARTUP_SECONDS = 60.0  # a child that cannot import its modules in this long is broken
CLOSE_GRACE_SECONDS = 5.0
MAX_TASKS_PER_CHILD = 500  # children are recycled now and then: heaps only grow
_MB = 1024 * 1024


class SandboxLimitError(PermanentJobError):
    """A task crossed a limit (or crashed its child); retrying the same input would too."""

    def __init__(self, kind: LimitKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class SandboxError(RuntimeError):
    """The pool itself could not run the task (a child failed to start): retryable."""


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    cpu_seconds: int
    wall_seconds: float
    memory_bytes: int  # address space a task may use beyond the warmed-up child's own

    @classmethod
    def from_settings(cls, settings: Settings) -> SandboxLimits:
        return cls(
            cpu_seconds=settings.parse_cpu_seconds,
            wall_seconds=settings.parse_wall_seconds,
            memory_bytes=settings.parse_memory_bytes,
        )


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class _Child:
    """One worker process and its pipes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.tasks = 0
        self.killed = False

    @property
    def alive(self) -> bool:
        return self.process.returncode is None and not self.killed

    async def send(self, message: object) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        stdin.write(HEADER.pack(len(payload)))
        stdin.write(payload)
        await stdin.drain()

    async def receive(self) -> Any:
        stdout = self.process.stdout
        assert stdout is not None
        (size,) = HEADER.unpack(await stdout.readexactly(HEADER.size))
        payload = await stdout.readexactly(size)
        return pickle.loads(payload)  # noqa: S301 - from our own child, over a private pipe

    async def kill(self) -> None:
        self.killed = True
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        await self._reap()

    async def stop(self) -> None:
        """Ask politely (end of input), then kill if it does not go."""
        stdin = self.process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
        await self.exited()
        await self.kill()

    async def exited(self) -> None:
        """Wait a little for the process to end by itself. A dead process must not be
        signalled: ``kill()`` reaps it early, and its exit status (which signal ended it)
        would be lost."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.process.wait()), CLOSE_GRACE_SECONDS)

    async def _reap(self) -> None:
        stdin = self.process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
        # Shielded: a second cancellation must not leave a zombie behind.
        await asyncio.shield(self.process.wait())


class SandboxPool:
    """Runs picklable top-level functions in child processes, ``size`` at a time."""

    def __init__(
        self,
        limits: SandboxLimits,
        *,
        size: int = 1,
        preload: Sequence[str] = (),
        max_tasks_per_child: int = MAX_TASKS_PER_CHILD,
    ) -> None:
        self.limits = limits
        self.size = size
        self.preload = tuple(preload)
        self.max_tasks_per_child = max_tasks_per_child
        self._slots = asyncio.Semaphore(size)
        self._idle: list[_Child] = []
        self._children: set[_Child] = set()
        self._retiring: set[asyncio.Task[None]] = set()
        self._closed = False

    @classmethod
    def for_ingestion(cls, settings: Settings) -> SandboxPool:
        """One child per concurrent job: each job parses at most one document at a time."""
        return cls(
            SandboxLimits.from_settings(settings),
            size=settings.worker_concurrency,
            preload=INGESTION_PRELOAD,
        )

    @property
    def processes(self) -> list[int]:
        """Process ids of the live children (for tests and diagnostics)."""
        return [c.process.pid for c in self._children if c.process.returncode is None]

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in a child; its exceptions are raised here. Raises
        SandboxLimitError when the task crossed a limit, SandboxError when no child could
        be started."""
        if self._closed:
            raise SandboxError("the sandbox pool is closed")
        async with self._slots:
            child = await self._checkout()
            try:
                reply = await asyncio.wait_for(
                    self._exchange(child, function, args), self.limits.wall_seconds
                )
                if reply[0] == "memory":
                    await child.stop()  # it exits by itself after saying so
            except TimeoutError:
                await child.kill()
                raise SandboxLimitError(
                    "wall",
                    f"it took longer than {_seconds(self.limits.wall_seconds)}, the time "
                    "limit for one task, and was stopped",
                ) from None
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                raise await self._died(child) from exc
            except BaseException:
                # Cancelled, or a reply that made no sense: the child's state is unknown.
                await child.kill()
                raise
            finally:
                self._checkin(child)
        return cast(T, self._outcome(child, reply))

    async def _exchange(
        self, child: _Child, function: Callable[..., Any], args: Sequence[Any]
    ) -> tuple[Any, ...]:
        child.tasks += 1
        await child.send((function, tuple(args), self.limits.cpu_seconds))
        reply = await child.receive()
        if not isinstance(reply, tuple) or not reply:
            raise SandboxError(f"unexpected reply from a sandbox process: {reply!r}")
        return reply

    def _outcome(self, child: _Child, reply: tuple[Any, ...]) -> Any:
        if reply[0] == "ok":
            return reply[1]
        if reply[0] == "memory":
            raise SandboxLimitError(
                "memory",
                f"it needed more than {self.limits.memory_bytes // _MB} MB of memory, the "
                "limit for one task, and was stopped",
            )
        if reply[0] == "error" and isinstance(reply[1], BaseException):
            exc = reply[1]
            exc.add_note(f"raised in sandbox process {child.process.pid}:\n{reply[2]}")
            raise exc
        raise SandboxError(f"unexpected reply from a sandbox process: {reply!r}")

    async def _died(self, child: _Child) -> Exception:
        if child.killed:
            return SandboxError("the sandbox pool was closed while the task ran")
        await child.exited()  # its output ended: it is dying, and how it died tells why
        await child.kill()
        code = child.process.returncode
        if code == -signal.SIGXCPU:
            return SandboxLimitError(
                "cpu",
                f"it used more than {_seconds(self.limits.cpu_seconds)} of CPU time, the "
                "limit for one task, and was stopped",
            )
        how = f"by {_signal_name(-code)}" if code is not None and code < 0 else f"(exit {code})"
        logger.warning("sandbox process %s stopped %s during a task", child.process.pid, how)
        return SandboxLimitError(
            "crash",
            f"the process handling it stopped unexpectedly {how}; the input may be damaged "
            f"or need more than the {self.limits.memory_bytes // _MB} MB memory limit",
        )

    async def _checkout(self) -> _Child:
        while self._idle:
            child = self._idle.pop()
            if child.alive:
                return child
            self._children.discard(child)
        return await self._start()

    def _checkin(self, child: _Child) -> None:
        if not child.alive:
            self._children.discard(child)
        elif child.tasks >= self.max_tasks_per_child or self._closed:
            self._children.discard(child)
            self._retire(child)
        else:
            self._idle.append(child)

    def _retire(self, child: _Child) -> None:
        task = asyncio.get_running_loop().create_task(child.stop(), name="sandbox-retire")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _start(self) -> _Child:
        env = dict(os.environ)
        # The child imports exactly the modules this process does (source trees, tests).
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "onebox.jobs.sandbox_child",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=env,
            )
        except OSError as exc:
            raise SandboxError(f"could not start a sandbox process: {exc}") from exc
        child = _Child(process)
        self._children.add(child)
        try:
            await child.send({"preload": self.preload, "memory_bytes": self.limits.memory_bytes})
            ready = await asyncio.wait_for(child.receive(), STARTUP_SECONDS)
        except BaseException as exc:
            await child.kill()
            self._children.discard(child)
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise SandboxError(
                f"a sandbox process failed to start (exit {process.returncode}): {exc!r}"
            ) from exc
        if not (isinstance(ready, tuple) and ready[0] == "ready"):
            await child.kill()
            self._children.discard(child)
            raise SandboxError(f"a sandbox process sent {ready!r} instead of ready")
        return child

    async def close(self) -> None:
        """Stops every child: idle ones are asked to exit, busy ones are killed (their
        tasks raise)."""
        self._closed = True
        idle, self._idle = self._idle, []
        busy = [child for child in self._children if child not in idle]
        self._children.clear()
        await asyncio.gather(
            *(child.stop() for child in idle),
            *(child.kill() for child in busy),
            *self._retiring,
            return_exceptions=True,
        )
