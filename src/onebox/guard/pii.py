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

The hold-back is bounded by the longest possible match (a PEM key block, about 12 kB);
in prose it is the trailing partial word, or a number that could still grow into a card or
phone number ("4111 11" is held, "in 2024, we" is not).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

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

    __slots__ = ("origins", "text_end")

    def __init__(self, origins: list[int] | None, text_end: int) -> None:
        self.origins = origins  # absolute original offset of each buffer character
        self.text_end = text_end

    def start(self, index: int) -> int:
        """Where the original character behind buffer position ``index`` starts."""
        if self.origins is None:
            return index
        return self.origins[index] if index < len(self.origins) else self.text_end

    def end(self, index: int) -> int:
        """Where the original character behind buffer position ``index - 1`` ends."""
        if self.origins is None:
            return index
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
        self._origins: list[int] = []  # absolute original offset of each _buf character
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
        if not delta:
            return ""
        if self._scanner.combined is None:
            return delta
        folded, origins = fold(delta)
        start = self._text_base + len(self._text)
        if origins is None:
            self._origins.extend(range(start, start + len(delta)))
        else:
            self._origins.extend(start + origin for origin in origins)
        self._buf += folded
        self._text += delta
        return self._advance(self._first_open())

    def flush(self) -> str:
        """Emit everything still held; the stream has ended."""
        self._done = True
        if self._scanner.combined is None:
            return ""
        return self._advance(self._base + len(self._buf))

    def _first_open(self) -> int:
        assert self._scanner.prefix is not None
        start = max(self._open, self._pos)
        found = self._scanner.prefix.search(self._buf, start - self._base)
        self._open = self._base + (len(self._buf) if found is None else found.start())
        return self._open

    def _advance(self, cut: int) -> str:
        if cut <= self._pos:
            return ""
        hits, pos = _scan(self._scanner, self._buf, self._pos - self._base, cut - self._base)
        origins = _Origins(self._origins, self._text_base + len(self._text))
        out, self._emitted, findings = _render(
            self.policy, self._text, self._text_base, self._emitted, hits, pos, origins
        )
        self._pos = self._base + pos
        self.findings.extend(findings)
        self._trim()
        return "".join(out)

    def _trim(self) -> None:
        drop = self._pos - self._base - _CONTEXT
        if drop > 256 or (drop > 0 and drop * 2 > len(self._buf)):
            self._buf = self._buf[drop:]
            del self._origins[:drop]
            self._base += drop
            sent = self._emitted - self._text_base
            self._text = self._text[sent:]
            self._text_base = self._emitted
