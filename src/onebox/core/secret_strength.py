"""How guessable a configured secret is, so production can refuse ``aaaa…`` or ``abcd…``.

The estimate is deliberately simple and conservative: the Shannon entropy of the secret's
characters, counted once per *unit*, where a repeat of earlier text (``pw12pw12``) or a run
(``aaaa``, ``abcd``, ``9876``) of at least :data:`MIN_PATTERN` characters is one unit. Random
keys from ``secrets.token_urlsafe`` or ``secrets.token_hex`` score close to their real
strength; keys typed by hand with patterns score far below it.
"""

from __future__ import annotations

import math
from collections import Counter

MIN_PATTERN = 4
MAX_ANALYSED = 1024  # longer secrets are judged on their start (bounds the quadratic scan)


def _run_length(value: str, start: int) -> int:
    """Characters from ``start`` whose code points step by a constant -1, 0 or +1."""
    if start + 1 >= len(value):
        return 1
    step = ord(value[start + 1]) - ord(value[start])
    if step not in (-1, 0, 1):
        return 1
    end = start + 1
    while end + 1 < len(value) and ord(value[end + 1]) - ord(value[end]) == step:
        end += 1
    return end - start + 1


def _repeat_length(value: str, start: int) -> int:
    """Length of the longest text from ``start`` that already began somewhere earlier."""
    length = 0
    while (
        start + length < len(value)
        and value.find(value[start : start + length + 1], 0, start + length) != -1
    ):
        length += 1
    return length


def estimated_entropy_bits(value: str) -> float:
    """A rough lower estimate of the randomness in ``value``, in bits."""
    text = value[:MAX_ANALYSED]
    if not text:
        return 0.0
    counts = Counter(text)
    per_char = -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())
    units = 0
    position = 0
    while position < len(text):
        pattern = max(_run_length(text, position), _repeat_length(text, position))
        position += pattern if pattern >= MIN_PATTERN else 1
        units += 1
    return per_char * units
