"""The first *open* position of a stream buffer, found without trying every rule everywhere.

A position ``a`` is open when some rule's prefix closure (:mod:`onebox.guard._rx`) matches
all of ``buf[a:]``: the reference answer is ``WORD_START(?:P1|...|Pn)\\Z`` searched from the
start, but sre tries every alternative at every word start, the bulk of the stream
redactor's cost. This module finds the same position with two exact shortcuts:

* an alternative is tried only where its rule's first character (``Node.first``) stands:
  written ``F(?<=(?=P\\Z)[\\s\\S])`` it starts with a character test, which sre's branch
  skips in one step (the empty match at the very end gets an alternative of its own);
* the search starts late. A prefix-closure match from ``a`` consumes ``buf[a:]`` to the end,
  so, bar an open look-ahead window of at most ``overhang() - 1`` characters at the end, all
  of it lies in what the rule consumes (``Node.chars``); it is at most ``max_len()`` long;
  and its first characters follow ``Node.head``. Rules are grouped into a few *reaches*
  whose characters rarely run long in prose (no spaces, or no small letters); each gives
  the earliest start those facts allow - from the run of its characters at the end of the
  reversed buffer, and from a search for a rare stretch of its head - and the search
  begins at the earliest of them.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass

from onebox.guard._rx import Chars, Node, Seq

SHORT = 24  # below this many characters a plain search beats working out the bounds
_MAX_SKIP = 16  # a head this short may be skipped to reach characters that run short
_RARE = 16  # a head character class matching at most this many ASCII characters is rare
_PEEK = 128  # characters reversed at first; most runs end well within them
_ASCII = [chr(code) for code in range(128)]


def one_of(chars: Chars | None) -> str:
    """One regex character test from one-character regexes (sre merges the plain ones)."""
    if chars is None:
        return r"[\s\S]"
    if not chars:
        return "(?!)"
    return next(iter(chars)) if len(chars) == 1 else "(?:" + "|".join(sorted(chars)) + ")"


def at_first_char(node: Node, body: str) -> str:
    """``body`` tried only where ``node`` can start; finds the non-empty matches only."""
    return f"{one_of(node.first())}(?<=(?={body})[\\s\\S])"


def _ascii_count(chars: Chars) -> int:
    test = re.compile(one_of(chars))
    return sum(1 for ch in _ASCII if test.fullmatch(ch))


def _lacks(chars: Chars, sample: str) -> bool:
    test = re.compile(one_of(chars))
    return not any(test.fullmatch(ch) for ch in sample)


def _runs_short(chars: Chars) -> bool:
    """Whether a run of these characters stays short in prose: no spaces, or no small letters."""
    return _lacks(chars, " \t\n") or _lacks(chars, string.ascii_lowercase)


@dataclass(frozen=True, slots=True)
class _Reach:
    """Where a prefix-closure match of some rules may start, at the earliest."""

    length: int  # a match is at most this long
    run: re.Pattern[str] | None  # what they consume past `skip`, matched on the reversed end
    window: int  # characters at the end that may be an open look-ahead window instead
    skip: int  # how many leading characters may lie outside `run`
    gate: re.Pattern[str] | None = None  # a rare stretch of the head, from offset `gate_at`
    gate_at: int = 0
    head: int = 0

    def earliest(self, buf: str, tail: _Reversed, start: int) -> int:
        end = len(buf)
        lo = max(start, end - self.length)
        if self.run is not None:
            lo = max(lo, end - self.skip - tail.run(self.run, self.window, self.length))
        if self.gate is not None and lo <= end - self.head:
            # a match that has its whole head has the gate stretch at offset `gate_at`
            hit = self.gate.search(buf, lo + self.gate_at)
            shorter = end - self.head + 1
            lo = max(lo, shorter if hit is None else min(shorter, hit.start() - self.gate_at))
        return lo


class _Reversed:
    """The end of a buffer from ``start`` on, reversed (lazily) as far as runs need it."""

    __slots__ = ("buf", "rev", "start")

    def __init__(self, buf: str, start: int) -> None:
        self.buf = buf
        self.start = start
        self.rev: str | None = None

    def run(self, chars: re.Pattern[str], skip: int, limit: int) -> int:
        """How far from the end a run of ``chars`` reaches, skipping the last ``skip``."""
        end = len(self.buf)
        if self.rev is None:
            self.rev = self.buf[max(self.start, end - _PEEK) :][::-1]
        while True:
            found = chars.match(self.rev, skip, limit)
            assert found is not None  # a run may be empty
            if found.end() < len(self.rev) or len(self.rev) >= min(limit, end - self.start):
                return found.end()
            self.rev = self.buf[max(self.start, end - limit) :][::-1]


def _split(node: Node) -> tuple[int, Chars]:
    """``(skip, chars)``: past the first ``skip`` characters a match consumes only ``chars``;
    the shortest skip after which those characters run short, else all of them."""
    if isinstance(node, Seq):
        skip = 0
        for index, item in enumerate(node.items):
            if skip > _MAX_SKIP:
                break
            rest = frozenset().union(*(later.chars() for later in node.items[index:]))
            if _runs_short(rest):
                return skip, rest
            skip += item.consumed()
    return 0, node.chars()


def _gate(node: Node) -> tuple[re.Pattern[str] | None, int]:
    """The head from its rarest character class on, if that class is rare."""
    head = node.head()
    counts = [_ascii_count(chars) for chars in head]
    if not counts or min(counts) > _RARE:
        return None, 0
    at = counts.index(min(counts))
    return re.compile("".join(one_of(chars) for chars in head[at:])), at


def _reaches(nodes: Sequence[Node]) -> list[_Reach]:
    """Rules whose characters run short share a reach (one for those without spaces, one for
    those without small letters); each other rule gets its own, tried first: a key block in
    progress is found at once by its gate, and then the others need not be asked."""
    shared: dict[bool, list[Node]] = {True: [], False: []}  # keyed by "no spaces"
    own: list[_Reach] = []
    for node in nodes:
        skip, chars = _split(node)
        window = max(node.overhang() - 1, 0)
        if skip == 0 and _runs_short(chars):
            shared[_lacks(chars, " \t\n")].append(node)
            continue
        gate, at = _gate(node)
        # a gate alone is cheaper than a long run (and found at once in the rule's own match)
        run = None if gate is not None and skip == 0 else re.compile(f"{one_of(chars)}*")
        own.append(_Reach(node.max_len(), run, window, skip, gate, at, len(node.head())))
    shared_reaches = [
        _Reach(
            max(node.max_len() for node in group),
            re.compile(f"{one_of(frozenset().union(*(node.chars() for node in group)))}*"),
            max(max(node.overhang() - 1, 0) for node in group),
            0,
        )
        for group in shared.values()
        if group
    ]
    return own + shared_reaches


class OpenFinder:
    """``first_open(buf, start)`` equals the start of ``reference`` searched from ``start``
    (or ``len(buf)`` when it finds nothing)."""

    __slots__ = ("_reaches", "_search", "pattern", "reference")

    def __init__(self, nodes: Sequence[Node], word_start: str) -> None:
        prefixes = [node.prefix().replace("(?P<v>", "(?:") for node in nodes]
        self.reference = re.compile(f"{word_start}(?:{'|'.join(prefixes)})\\Z")
        tried = [at_first_char(n, f"{p}\\Z") for n, p in zip(nodes, prefixes, strict=True)]
        at_end = f"(?![\\s\\S])(?:{'|'.join(prefixes)})"
        self.pattern = "|".join([*tried, at_end])  # an open position, after word_start
        self._search = re.compile(f"{word_start}(?:{self.pattern})").search
        self._reaches = _reaches(nodes)

    def first_open(self, buf: str, start: int, held: bool = False) -> int:
        """``held``: much of ``buf[start:]`` was held before the latest text arrived, so a long
        match (a key block) is likely in progress, and the plain pattern runs it fastest."""
        end = len(buf)
        if held and self.reference.match(buf, start):
            return start
        if end - start > SHORT:
            tail = _Reversed(buf, start)
            lo = end
            for reach in self._reaches:
                lo = min(lo, reach.earliest(buf, tail, start))
                if lo == start:
                    break
            start = lo
        found = self._search(buf, start)
        return end if found is None else found.start()
