"""PII and secret redaction for model output, for whole texts and for token streams.

``redact(text, policy)`` and :class:`StreamRedactor` share one left-to-right scanner, so
feeding a text in any number of pieces emits exactly ``redact(text)``.

How the stream decides what is safe to emit: every rule is built with
:mod:`onebox.guard._rx`, which also yields the rule's *prefix closure* - a regex matching
anything that could still grow into a match (consumed characters plus what its
look-aheads read). A buffer position ``a`` is *open* when some enabled rule's prefix
closure matches all of ``buffer[a:]``. Let ``cut`` be the first open position. For every
position before ``cut`` no rule can read past the end of the buffer, so whether (and how)
each rule matches there is already final: the scanner runs up to ``cut`` (through the end
of any match that starts before it) and emits that; the rest is held. A closed position
never reopens as text arrives, so the first open position is cached and only moves forward.

The hold-back is bounded by the longest possible match (a PEM key block, about 12 kB);
in prose it is the trailing partial word, or a number that could still grow into a card or
phone number ("4111 11" is held, "in 2024, we" is not).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from onebox.guard.pii_rules import PII_TYPES, RULES, WORD_START, Rule

_CONTEXT = 8  # characters kept before the emitted point for look-behinds


@dataclass(frozen=True, slots=True)
class PiiPolicy:
    """Which PII types to redact: any of email, phone, card, iban, national_id, secret."""

    types: frozenset[str] = PII_TYPES
    placeholder: str = "[REDACTED:{type}]"

    def __post_init__(self) -> None:
        unknown = set(self.types) - PII_TYPES
        if unknown:
            raise ValueError(f"unknown PII types: {', '.join(sorted(unknown))}")
        try:
            self.placeholder.format(type="email")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError("placeholder may only use the {type} field") from exc

    @classmethod
    def from_names(cls, names: Iterable[str] | str) -> PiiPolicy:
        if isinstance(names, str):
            names = names.split(",")
        return cls(frozenset(name.strip() for name in names if name.strip()))


@dataclass(frozen=True, slots=True)
class Finding:
    """One redacted value; offsets index the original text. The value itself is not kept."""

    type: str
    rule: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class _Compiled:
    rule: Rule
    pattern: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class _Scanner:
    rules: tuple[_Compiled, ...]
    combined: re.Pattern[str] | None  # all rules, in priority order
    prefix: re.Pattern[str] | None  # "buffer[a:] could still become a match of some rule"
    max_holdback: int


@lru_cache(maxsize=64)
def _scanner(types: frozenset[str]) -> _Scanner:
    rules = [rule for rule in RULES if rule.type in types]
    if not rules:
        return _Scanner((), None, None, 0)
    compiled = tuple(_Compiled(rule, re.compile(rule.node.full())) for rule in rules)
    # WORD_START is implied by every rule; hoisting it skips word interiors in one step.
    full = "|".join(
        f"(?P<r{i}>{rule.node.full().replace('(?P<v>', f'(?P<v{i}>')})"
        for i, rule in enumerate(rules)
    )
    prefix = "|".join(rule.node.prefix().replace("(?P<v>", "(?:") for rule in rules)
    return _Scanner(
        compiled,
        re.compile(f"{WORD_START}(?:{full})"),
        re.compile(f"{WORD_START}(?:{prefix})\\Z"),
        max(rule.node.max_len() for rule in rules),
    )


@dataclass(frozen=True, slots=True)
class _Hit:
    rule: Rule
    start: int  # whole match
    end: int
    value_start: int  # the replaced part
    value_end: int


def _validated(rule: Rule, match: re.Match[str], name: str = "v") -> _Hit | None:
    start, end = match.span()
    vstart, vend = match.span(name) if name in match.re.groupindex else (start, end)
    if rule.validator is not None:
        keep = rule.validator(match.string[vstart:vend])
        if keep is None:
            return None
        if vend == end:  # the value ends the match, so it may be shortened
            end = vend = vstart + keep
    return _Hit(rule, start, end, vstart, vend)


def _hit_at(scanner: _Scanner, match: re.Match[str]) -> _Hit | None:
    """The first rule, in priority order, that matches and validates where ``match`` starts."""
    assert match.lastgroup is not None  # the outer r{i} group closes last
    index = int(match.lastgroup[1:])
    hit = _validated(scanner.rules[index].rule, match, f"v{index}")
    position = match.start()
    for later in scanner.rules[index + 1 :]:
        if hit is not None:
            break
        retry = later.pattern.match(match.string, position)
        if retry is not None:
            hit = _validated(later.rule, retry)
    return hit


def _scan(
    scanner: _Scanner, policy: PiiPolicy, buf: str, pos: int, cut: int, base: int
) -> tuple[list[str], int, list[Finding]]:
    """Emit ``buf[pos:]`` up to ``cut`` (or past it, through a match starting before it)."""
    out: list[str] = []
    findings: list[Finding] = []
    assert scanner.combined is not None
    while pos < cut:
        match = scanner.combined.search(buf, pos)
        if match is None or match.start() >= cut:
            break
        hit = _hit_at(scanner, match)
        if hit is None:
            out.append(buf[pos : match.start() + 1])
            pos = match.start() + 1
            continue
        out.append(buf[pos : hit.value_start])
        out.append(policy.placeholder.format(type=hit.rule.type))
        out.append(buf[hit.value_end : hit.end])
        findings.append(
            Finding(hit.rule.type, hit.rule.name, base + hit.value_start, base + hit.value_end)
        )
        pos = hit.end
    if pos < cut:
        out.append(buf[pos:cut])
        pos = cut
    return out, pos, findings


def redact(text: str, policy: PiiPolicy | None = None) -> tuple[str, list[Finding]]:
    """Replace every enabled PII value in ``text`` with its placeholder."""
    policy = policy or PiiPolicy()
    scanner = _scanner(policy.types)
    if scanner.combined is None:
        return text, []
    out, _, findings = _scan(scanner, policy, text, 0, len(text), 0)
    return "".join(out), findings


class StreamRedactor:
    """Redacts a stream of text deltas; ``feed`` returns what is safe to show now.

    The concatenation of everything returned by ``feed`` and ``flush`` equals
    ``redact(full_text, policy)[0]``. ``findings`` collects what was redacted so far, with
    offsets into the whole stream. The held-back text never appears in ``repr``.
    """

    __slots__ = ("_base", "_buf", "_done", "_open", "_pos", "_scanner", "findings", "policy")

    def __init__(self, policy: PiiPolicy | None = None) -> None:
        self.policy = policy or PiiPolicy()
        self.findings: list[Finding] = []
        self._scanner = _scanner(self.policy.types)
        self._buf = ""
        self._base = 0  # absolute offset of _buf[0]
        self._pos = 0  # absolute offset up to which output has been produced
        self._open = 0  # first offset that may still start a match; it only moves forward
        self._done = False

    def __repr__(self) -> str:
        return f"StreamRedactor(types={sorted(self.policy.types)}, pending={self.pending})"

    @property
    def max_holdback(self) -> int:
        """An upper bound on how many characters :meth:`feed` may hold back."""
        return self._scanner.max_holdback

    @property
    def pending(self) -> int:
        """Characters received but not yet emitted."""
        return self._base + len(self._buf) - self._pos

    def feed(self, delta: str) -> str:
        if self._done:
            raise RuntimeError("feed() after flush()")
        if not delta:
            return ""
        self._buf += delta
        if self._scanner.combined is None:
            return self._emit_all()
        return self._advance(self._first_open())

    def flush(self) -> str:
        """Emit everything still held; the stream has ended."""
        self._done = True
        if self._scanner.combined is None:
            return self._emit_all()
        return self._advance(self._base + len(self._buf))

    def _emit_all(self) -> str:
        out = self._buf[self._pos - self._base :]
        self._pos = self._base + len(self._buf)
        self._trim()
        return out

    def _first_open(self) -> int:
        assert self._scanner.prefix is not None
        start = max(self._open, self._pos)
        found = self._scanner.prefix.search(self._buf, start - self._base)
        self._open = self._base + (len(self._buf) if found is None else found.start())
        return self._open

    def _advance(self, cut: int) -> str:
        if cut <= self._pos:
            return ""
        out, pos, findings = _scan(
            self._scanner,
            self.policy,
            self._buf,
            self._pos - self._base,
            cut - self._base,
            self._base,
        )
        self._pos = self._base + pos
        self.findings.extend(findings)
        self._trim()
        return "".join(out)

    def _trim(self) -> None:
        drop = self._pos - self._base - _CONTEXT
        if drop > 256 or (drop > 0 and drop * 2 > len(self._buf)):
            self._buf = self._buf[drop:]
            self._base += drop
