"""The matching view of a text: the form PII rules are matched against.

Models (and people) write the same value in many shapes: full-width digits
(U+FF14 for ``4``), other scripts' digits, no-break or thin spaces, typographic dashes. Folding
maps each character on its own - NFKC, any Unicode decimal digit to its ASCII digit, any
space separator to ``" "``, hyphen-like dashes to ``"-"`` - so a text folded in pieces
equals the text folded whole, which keeps the stream redactor's split-across-chunks
guarantee. Em dashes and the horizontal bar stay as they are: they join words, not digit
groups, and turning them into ``-`` would glue words onto e-mail addresses.

A character may fold into several (``⑴`` into ``(1)``), so folding also returns, for each
folded character, the index of the original character it came from; redaction uses it to
cut the original text, which reaches the reader unchanged around the placeholders.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

_DASHES = frozenset("\u2010\u2011\u2012\u2013\u2212\ufe58\ufe63\uff0d")


@lru_cache(maxsize=4096)
def fold_char(ch: str) -> str:
    if ch.isascii():
        return ch
    if unicodedata.category(ch) == "Zs":
        return " "
    if ch in _DASHES:
        return "-"
    digit = unicodedata.decimal(ch, None)
    if digit is not None:
        return str(digit)
    folded = unicodedata.normalize("NFKC", ch)
    if folded == ch:
        return ch
    return "".join(fold_char(part) for part in folded)


def fold(text: str) -> tuple[str, list[int] | None]:
    """``(folded, origins)``: ``origins[i]`` is the index in ``text`` of the character that
    ``folded[i]`` came from; ``None`` when every character folded into exactly one."""
    if text.isascii():
        return text, None
    parts = [fold_char(ch) for ch in text]
    folded = "".join(parts)
    if all(len(part) == 1 for part in parts):
        return folded, None
    return folded, [index for index, part in enumerate(parts) for _ in part]
