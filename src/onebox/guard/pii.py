"""PII and secret redaction for model output, for whole texts and for token streams.

``redact(text, policy)`` and :class:`StreamRedactor` share one left-to-right scanner, so
feeding a text in any number of pieces emits exactly ``redact(text)``. The rules match the
*folded* text (:mod:`onebox.guard.folding`: NFKC, ASCII digits, plain spaces and hyphens),
so a card in full-width digits or with no-break spaces between its groups is found too;
each match is mapped back onto the original characters, and everything around the
placeholders is the original text, unchanged. IBANs match in either case.

How the stream decides what is safe to emit: every rule is built with
:mod:`onebox.guard._rx`, which also yields the rule's *prefix closure* - a regex matching
anything that could still grow into a match (consumed characters plus what its
look-aheads read). A buffer position ``a`` is *open* when some enabled rule's prefix
closure matches all of ``buffer[a:]``. Let ``cut`` be the first open position. For every
position before ``cut`` no rule can read past the end of the buffer, so whether (and how)
each rule matches there is already final: the scanner runs up to ``cut`` (through the end
of any match that starts before it) and emits that; the rest is held. A closed position
never reopens as text arrives, so the first open position is cached and only moves forward.

Finding the first open position without trying every rule at every position is
:mod:`onebox.guard._tail`'s job; when little is buffered, one search for the first open
position or match, whichever comes first, usually settles a delta.

The hold-back is bounded by the longest possible match (a PEM key block, about 12 kB);
in prose it is the trailing partial word, or a number that could still grow into a card or
phone number ("4111 11" is held, "in 2024, we" is not).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from onebox.guard._tail import SHORT, OpenFinder, at_first_char
from onebox.guard.folding import fold
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
    opens: OpenFinder | None  # the first a where buffer[a:] could still become a match
    quick: re.Pattern[str] | None  # the first open position or match, whichever comes first
    max_holdback: int


@lru_cache(maxsize=64)
def _scanner(types: frozenset[str]) -> _Scanner:
    rules = [rule for rule in RULES if rule.type in types]
    if not rules:
        return _Scanner((), None, None, None, 0)
    compiled = tuple(_Compiled(rule, re.compile(rule.node.full())) for rule in rules)
    # WORD_START is implied by every rule; hoisting it skips word interiors in one step. A
    # rule is tried only where its first character stands (the match is then group r{i}).
    full = "|".join(
        at_first_char(rule.node, f"(?P<r{i}>{rule.node.full().replace('(?P<v>', f'(?P<v{i}>')})")
        for i, rule in enumerate(rules)
    )
    opens = OpenFinder([rule.node for rule in rules], WORD_START)
    return _Scanner(
        compiled,
        re.compile(f"{WORD_START}(?:{full})"),
        opens,
        re.compile(f"{WORD_START}(?:(?P<open>{opens.pattern})|{full})"),
        max(rule.node.max_len() for rule in rules),
    )


@dataclass(frozen=True, slots=True)
class _Hit:
    rule: Rule
    start: int  # whole match
    end: int
    value_start: int  # the replaced part
    value_end: int


def _validated(
    rule: Rule, match: re.Match[str], name: str = "v", whole: int | str = 0
) -> _Hit | None:
    start, end = match.span(whole)
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
    hit = _validated(scanner.rules[index].rule, match, f"v{index}", match.lastgroup)
    position = match.start()
    for later in scanner.rules[index + 1 :]:
        if hit is not None:
            break
        retry = later.pattern.match(match.string, position)
        if retry is not None:
            hit = _validated(later.rule, retry)
    return hit


def _scan(scanner: _Scanner, buf: str, pos: int, cut: int) -> tuple[list[_Hit], int]:
    """The hits in ``buf[pos:]`` up to ``cut`` (or past it, through a match starting before
    it), and the position scanning stopped at."""
    hits: list[_Hit] = []
    assert scanner.combined is not None
    while pos < cut:
        match = scanner.combined.search(buf, pos)
        if match is None or match.start() >= cut:
            break
        hit = _hit_at(scanner, match)
        if hit is None:
            pos = match.start() + 1
            continue
        hits.append(hit)
        pos = hit.end
    return hits, max(pos, cut)


class _Origins:
    """Maps positions in a folded buffer back to the original text (see :mod:`folding`)."""

    __slots__ = ("base", "origins", "text_end")

    def __init__(self, origins: list[int] | None, text_end: int, base: int = 0) -> None:
        self.origins = origins  # absolute original offset of each buffer character
        self.text_end = text_end
        self.base = base  # with no origins: the absolute offset of buffer position 0

    def start(self, index: int) -> int:
        """Where the original character behind buffer position ``index`` starts."""
        if self.origins is None:
            return self.base + index
        return self.origins[index] if index < len(self.origins) else self.text_end

    def end(self, index: int) -> int:
        """Where the original character behind buffer position ``index - 1`` ends."""
        if self.origins is None:
            return self.base + index
        return self.origins[index - 1] + 1


def _render(
    policy: PiiPolicy, text: str, text_base: int, done: int, hits: list[_Hit], upto: int,
    origins: _Origins,
) -> tuple[list[str], int, list[Finding]]:  # fmt: skip
    """The original text from offset ``done`` to where buffer position ``upto`` came from,
    with each hit's value replaced by its placeholder (``text`` starts at absolute offset
    ``text_base``). Returns the pieces, the new ``done`` and the findings."""
    out: list[str] = []
    findings: list[Finding] = []
    for hit in hits:
        start = origins.start(hit.value_start)
        end = origins.end(hit.value_end)
        if start > done:
            out.append(text[done - text_base : start - text_base])
        out.append(policy.placeholder.format(type=hit.rule.type))
        findings.append(Finding(hit.rule.type, hit.rule.name, start, end))
        done = max(done, end)
    stop = origins.start(upto)
    if stop > done:
        out.append(text[done - text_base : stop - text_base])
        done = stop
    return out, done, findings


def redact(text: str, policy: PiiPolicy | None = None) -> tuple[str, list[Finding]]:
    """Replace every enabled PII value in ``text`` with its placeholder."""
    policy = policy or PiiPolicy()
    scanner = _scanner(policy.types)
    if scanner.combined is None:
        return text, []
    folded, origins = fold(text)
    hits, end = _scan(scanner, folded, 0, len(folded))
    out, _, findings = _render(policy, text, 0, 0, hits, end, _Origins(origins, len(text)))
    return "".join(out), findings


class StreamRedactor:
    """Redacts a stream of text deltas; ``feed`` returns what is safe to show now.

    The concatenation of everything returned by ``feed`` and ``flush`` equals
    ``redact(full_text, policy)[0]``. ``findings`` collects what was redacted so far, with
    offsets into the whole stream. The held-back text never appears in ``repr``.

    Rules match the folded stream (:mod:`onebox.guard.folding`); ``_origins`` records, for
    each folded character still buffered, where it came from in the original stream, whose
    unsent part is kept in ``_text``.
    """

    __slots__ = (
        "_base", "_buf", "_done", "_emitted", "_open", "_origins", "_pos", "_scanner",
        "_text", "_text_base", "findings", "policy",
    )  # fmt: skip

    def __init__(self, policy: PiiPolicy | None = None) -> None:
        self.policy = policy or PiiPolicy()
        self.findings: list[Finding] = []
        self._scanner = _scanner(self.policy.types)
        self._buf = ""  # folded
        self._base = 0  # absolute folded offset of _buf[0]
        # absolute original offset of each _buf character; None while every character so far
        # folded into exactly one, so that folded and original offsets agree
        self._origins: list[int] | None = None
        self._pos = 0  # absolute folded offset up to which output has been produced
        self._open = 0  # first folded offset that may still start a match; only moves forward
        self._text = ""  # original text from _text_base on
        self._text_base = 0
        self._emitted = 0  # absolute original offset up to which output has been produced
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
        return self._text_base + len(self._text) - self._emitted

    def feed(self, delta: str) -> str:
        if self._done:
            raise RuntimeError("feed() after flush()")
        opens = self._scanner.opens
        if not delta or opens is None:
            return delta
        folded, origins = (delta, None) if delta.isascii() else fold(delta)
        if origins is not None or self._origins is not None:
            self._track(delta, origins)
        held = len(self._buf) + self._base - self._pos  # before this delta
        self._buf += folded
        self._text += delta
        base = self._base
        if held + len(folded) <= SHORT:
            # One search settles the common case, no match starting before the first open
            # position (between feeds _open never passes _pos, so both searches start there).
            assert self._scanner.quick is not None
            found = self._scanner.quick.search(self._buf, self._pos - base)
            if found is None or found.lastgroup == "open":  # else a rule's r{i} closed last
                cut = len(self._buf) if found is None else found.start()
                self._open = base + cut
                return self._emit([], cut) if self._open > self._pos else ""
        start = max(self._open, self._pos) - base
        self._open = base + opens.first_open(self._buf, start, held > SHORT)
        return self._advance(self._open)

    def flush(self) -> str:
        """Emit everything still held; the stream has ended."""
        self._done = True
        if self._scanner.combined is None:
            return ""
        return self._advance(self._base + len(self._buf))

    def _track(self, delta: str, origins: list[int] | None) -> None:
        """Record where the new folded characters came from (from the first one that did not
        fold into exactly one character on)."""
        if self._origins is None:
            self._origins = list(range(self._base, self._base + len(self._buf)))
        start = self._text_base + len(self._text)
        if origins is None:
            self._origins.extend(range(start, start + len(delta)))
        else:
            self._origins.extend(start + origin for origin in origins)

    def _advance(self, cut: int) -> str:
        if cut <= self._pos:
            return ""
        hits, pos = _scan(self._scanner, self._buf, self._pos - self._base, cut - self._base)
        return self._emit(hits, pos)

    def _emit(self, hits: list[_Hit], pos: int) -> str:
        """The output up to buffer position ``pos``, with ``hits`` replaced."""
        base = self._base
        self._pos = base + pos
        if hits or self._origins is not None:
            origins = _Origins(self._origins, self._text_base + len(self._text), base)
            out, self._emitted, findings = _render(
                self.policy, self._text, self._text_base, self._emitted, hits, pos, origins
            )
            self.findings.extend(findings)
            piece = "".join(out)
        else:  # what _render does when nothing is replaced and offsets agree
            piece = self._text[self._emitted - self._text_base : self._pos - self._text_base]
            self._emitted = max(self._emitted, self._pos)
        drop = pos - _CONTEXT
        if drop > 256 or (drop > 0 and drop * 2 > len(self._buf)):
            self._trim(drop)
        return piece

    def _trim(self, drop: int) -> None:
        self._buf = self._buf[drop:]
        if self._origins is not None:
            del self._origins[:drop]
        self._base += drop
        sent = self._emitted - self._text_base
        self._text = self._text[sent:]
        self._text_base = self._emitted
