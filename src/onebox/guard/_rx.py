"""A tiny regex builder that emits a pattern together with its *prefix closure*.

Each node renders two regexes:

* ``full()`` - the pattern itself;
* ``prefix()`` - a pattern matching every string that is a prefix of something ``full()``
  could read (the characters it consumes plus what its look-aheads inspect). It may match
  more than that (an over-approximation is safe: it only costs hold-back), never less.

The streaming redactor uses the prefix closure to answer "could the text from position ``a``
to the end of the buffer still grow into a match?". Building both from one description
keeps them in step, which is what makes streaming output equal whole-text output.

Each node also describes, for bounding searches of its prefix closure (all over-approximations,
as one-character regexes): ``chars()`` - every character the two renderings consume, except a
look-ahead's window that ``prefix()`` leaves open, which is at most ``overhang() - 1``
characters at the very end of the match (a ``prefix()`` of a part only ever ends a match);
``first()`` - the first character of a non-empty match; ``head()`` - the character at each of
the first few offsets of any match.

Rules for patterns built here: only *negative* look-aheads (a negative look-ahead that is
cut short by the end of the buffer passes, which errs towards "still possible"); every
look-ahead states how many characters it may read (``reach``); look-behinds only at the
start of a pattern and at most a few characters wide; every repetition is bounded.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass

Chars = frozenset[str]  # one-character regexes; together they cover a set of characters


def _char(ch: str, ci: bool) -> str:
    return f"(?i:{re.escape(ch)})" if ci else re.escape(ch)


class Node(abc.ABC):
    @abc.abstractmethod
    def full(self) -> str:
        """The regex source of the pattern itself."""

    @abc.abstractmethod
    def prefix(self) -> str:
        """The regex source matching anything that could still grow into a match."""

    @abc.abstractmethod
    def consumed(self) -> int:
        """Upper bound on the characters a match consumes."""

    def overhang(self) -> int:
        """Upper bound on how far a look-ahead reads past the consumed characters."""
        return 0

    def min_consumed(self) -> int:
        """Lower bound on the characters a match consumes."""
        return 0

    def max_len(self) -> int:
        """Upper bound on the characters a match reads, look-ahead included."""
        return self.consumed() + self.overhang()

    def chars(self) -> Chars:
        """Covers every character either rendering consumes, bar a look-ahead's open window."""
        return frozenset()

    def first(self) -> Chars | None:
        """Covers the first character of any non-empty match of either rendering (None: any)."""
        return frozenset()

    def head(self) -> tuple[Chars, ...]:
        """``head()[i]`` covers character ``i`` of any match of either rendering long enough."""
        return ()


@dataclass(frozen=True, slots=True)
class Lit(Node):
    text: str
    ci: bool = False

    def full(self) -> str:
        body = re.escape(self.text)
        return f"(?i:{body})" if self.ci else body

    def prefix(self) -> str:
        out = ""
        for ch in reversed(self.text):
            out = f"(?:{re.escape(ch)}{out})?"
        return f"(?i:{out})" if self.ci else out

    def consumed(self) -> int:
        return len(self.text)

    def min_consumed(self) -> int:
        return len(self.text)

    def chars(self) -> Chars:
        return frozenset(self._chars())

    def first(self) -> Chars:
        return frozenset(self._chars()[:1])

    def head(self) -> tuple[Chars, ...]:
        return tuple(frozenset({char}) for char in self._chars())

    def _chars(self) -> list[str]:
        return [_char(ch, self.ci) for ch in self.text]


@dataclass(frozen=True, slots=True)
class Cls(Node):
    """A character class repeated ``lo`` to ``hi`` times."""

    cls: str
    lo: int = 1
    hi: int = 1

    def full(self) -> str:
        if self.lo == self.hi == 1:
            return self.cls
        return f"{self.cls}{{{self.lo},{self.hi}}}"

    def prefix(self) -> str:
        return f"{self.cls}{{0,{self.hi}}}"

    def consumed(self) -> int:
        return self.hi

    def min_consumed(self) -> int:
        return self.lo

    def chars(self) -> Chars:
        return frozenset({self.cls})

    def first(self) -> Chars:
        return frozenset({self.cls})

    def head(self) -> tuple[Chars, ...]:
        return (frozenset({self.cls}),) * self.lo


@dataclass(frozen=True, slots=True)
class Seq(Node):
    items: tuple[Node, ...]

    def full(self) -> str:
        return "".join(item.full() for item in self.items)

    def prefix(self) -> str:
        # P(x1 x2 .. xn) = x1 (x2 (.. xn | P(xn)) .. | P(x2)) | P(x1), tried longest first.
        acc = ""
        for item, is_open in zip(reversed(self.items), reversed(self._open()), strict=True):
            if isinstance(item, Ahead) and not is_open:
                acc = f"{item.full()}{acc}"
            else:
                acc = f"(?:{item.full()}{acc}|{item.prefix()})"
        return acc

    def _open(self) -> list[bool]:
        """Per item: a look-ahead whose window reaches past what the rest of the pattern
        consumes stays undecided until that window has arrived, so prefix() lets its window
        be anything; otherwise the rest covers it and it is checked as it stands."""
        flags: list[bool] = []
        rest = 0
        for item in reversed(self.items):
            flags.append(isinstance(item, Ahead) and rest < item.reach)
            rest += item.min_consumed()
        return flags[::-1]

    def consumed(self) -> int:
        return sum(item.consumed() for item in self.items)

    def min_consumed(self) -> int:
        return sum(item.min_consumed() for item in self.items)

    def overhang(self) -> int:
        return max(item.overhang() for item in self.items)

    def chars(self) -> Chars:
        return frozenset().union(*(item.chars() for item in self.items))

    def first(self) -> Chars | None:
        out: set[str] = set()
        for item, is_open in zip(self.items, self._open(), strict=True):
            if isinstance(item, Ahead) and not is_open:
                continue  # checked in place: it consumes nothing
            first = item.first()
            if first is None:
                return None
            out |= first
            if item.min_consumed() > 0:
                break
        return frozenset(out)

    def head(self) -> tuple[Chars, ...]:
        out: list[Chars] = []
        for item, is_open in zip(self.items, self._open(), strict=True):
            if isinstance(item, Ahead):
                if is_open:
                    break
                continue
            head = item.head()[: item.min_consumed()]
            out.extend(head)
            # past a part of varying width the offsets no longer line up, and past one with
            # a look-ahead inside, its prefix() may end the match with the look-ahead's window
            if len(head) < item.min_consumed() or item.consumed() != len(head) or item.overhang():
                break
        return tuple(out)


@dataclass(frozen=True, slots=True)
class Alt(Node):
    options: tuple[Node, ...]

    def full(self) -> str:
        return "(?:" + "|".join(option.full() for option in self.options) + ")"

    def prefix(self) -> str:
        return "(?:" + "|".join(option.prefix() for option in self.options) + ")"

    def consumed(self) -> int:
        return max(option.consumed() for option in self.options)

    def min_consumed(self) -> int:
        return min(option.min_consumed() for option in self.options)

    def overhang(self) -> int:
        return max(option.overhang() for option in self.options)

    def chars(self) -> Chars:
        return frozenset().union(*(option.chars() for option in self.options))

    def first(self) -> Chars | None:
        out: set[str] = set()
        for option in self.options:
            first = option.first()
            if first is None:
                return None
            out |= first
        return frozenset(out)

    def head(self) -> tuple[Chars, ...]:
        # as far as every option's head reaches
        heads = [option.head() for option in self.options]
        return tuple(frozenset().union(*at) for at in zip(*heads, strict=False))


@dataclass(frozen=True, slots=True)
class Rep(Node):
    item: Node
    lo: int
    hi: int

    def full(self) -> str:
        return f"(?:{self.item.full()}){{{self.lo},{self.hi}}}"

    def prefix(self) -> str:
        return f"(?:{self.item.full()}){{0,{self.hi - 1}}}{self.item.prefix()}"

    def consumed(self) -> int:
        return self.hi * self.item.consumed()

    def min_consumed(self) -> int:
        return self.lo * self.item.min_consumed()

    def overhang(self) -> int:
        return self.item.overhang()

    def chars(self) -> Chars:
        return self.item.chars()

    def first(self) -> Chars | None:
        return self.item.first()

    def head(self) -> tuple[Chars, ...]:
        return self.item.head()[: self.item.min_consumed()]  # the first round only


@dataclass(frozen=True, slots=True)
class Behind(Node):
    """A short look-behind (a few characters); it reads only text that already exists."""

    raw: str

    def full(self) -> str:
        return self.raw

    def prefix(self) -> str:
        return self.raw

    def consumed(self) -> int:
        return 0


@dataclass(frozen=True, slots=True)
class Ahead(Node):
    """A negative look-ahead reading at most ``reach`` characters."""

    raw: str
    reach: int

    def __post_init__(self) -> None:
        if not self.raw.startswith("(?!") or self.reach < 1:
            raise ValueError("only negative look-aheads with a positive reach are allowed")

    def full(self) -> str:
        return self.raw

    def prefix(self) -> str:
        # Until `reach` characters exist after this point the look-ahead is undecided.
        return f"[\\s\\S]{{0,{self.reach - 1}}}" if self.reach > 1 else ""

    def consumed(self) -> int:
        return 0

    def overhang(self) -> int:
        return self.reach

    def first(self) -> None:
        return None  # prefix() may let the window be anything


@dataclass(frozen=True, slots=True)
class Group(Node):
    """A capture group named ``v``: the part of the match that gets replaced."""

    item: Node

    def full(self) -> str:
        return f"(?P<v>{self.item.full()})"

    def prefix(self) -> str:
        return self.item.prefix()

    def consumed(self) -> int:
        return self.item.consumed()

    def min_consumed(self) -> int:
        return self.item.min_consumed()

    def overhang(self) -> int:
        return self.item.overhang()

    def chars(self) -> Chars:
        return self.item.chars()

    def first(self) -> Chars | None:
        return self.item.first()

    def head(self) -> tuple[Chars, ...]:
        return self.item.head()


def seq(*items: Node) -> Seq:
    return Seq(items)


def alt(*options: Node) -> Alt:
    return Alt(options)


def opt(item: Node) -> Rep:
    return Rep(item, 0, 1)
