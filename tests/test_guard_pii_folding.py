"""PII written in unusual shapes - dotted, full-width, other digits, odd spaces and dashes,
lower-case IBANs - is redacted, in whole texts and in streams, and the text around the
placeholders is the original, unchanged."""

from __future__ import annotations

import random
import string

import pytest

from onebox.guard.folding import fold
from onebox.guard.pii import PiiPolicy, StreamRedactor, redact
from onebox.guard.pii_rules import luhn_valid


def seeded(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - reproducible test data, not cryptography


def full_width(text: str) -> str:
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


def arabic_indic(text: str) -> str:
    return "".join(chr(0x0660 + int(ch)) if ch.isdigit() else ch for ch in text)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("4111.1111.1111.1111", "card"),
        ("3782.822463.10005", "card"),
        (full_width("4111 1111 1111 1111"), "card"),
        (full_width("4111111111111111"), "card"),
        ("\uff14\uff11\uff11\uff11" + "\u3000\uff11\uff11\uff11\uff11" * 3, "card"),
        (arabic_indic("4111 1111 1111 1111"), "card"),
        ("4111\u00a01111\u202f1111\u20091111", "card"),  # no-break, narrow and thin spaces
        ("4111\u20111111\u20131111\u22121111", "card"),  # non-breaking hyphen, en dash, minus
        ("de89 3704 0044 0532 0130 00", "iban"),
        ("De89370400440532013000", "iban"),
        ("gb82 west 1234 5698 7654 32", "iban"),
        (full_width("GB82 WEST 1234 5698 7654 32"), "iban"),
        (full_width("123-45-6789"), "national_id"),
    ],
)
def test_unusual_shapes_are_redacted_and_the_text_around_kept(value: str, kind: str) -> None:
    for template in ("see {} here", "\uff08{}\uff09\u3002\u3042\u308a\u304c\u3068\u3046", "{}"):
        text = template.format(value)
        out, findings = redact(text)
        assert out == template.format(f"[REDACTED:{kind}]"), text
        assert [text[f.start : f.end] for f in findings] == [value]


@pytest.mark.parametrize(
    "text",
    [
        "p = 3000.0000000001",  # a decimal, not a dotted card
        "ratio 4111.1111.1111.1111.12345 ok",  # too many digits
        "version 4.1.11.1111",
        "tcp 192.168.100.200",
        "4111.1111.1111.1112",  # Luhn fails
        "de12 is no iban and that is fine",
        "gb82 west 1234 5698 7654 31",  # check digits fail
        "ab12cdef34567890123456 hex",
        "about \u00bd of 4111 1111",  # too short to be a card
    ],
)
def test_lookalikes_are_kept(text: str) -> None:
    assert redact(text)[0] == text


def test_characters_that_fold_into_several_keep_offsets_exact() -> None:
    text = "\u00bd \ufb01le, \u2474 mail bob@example.com or 4111 1111 1111 1111 \u2122"
    folded, origins = fold(text)
    assert folded.startswith("1\u20442 file, (1) mail")
    assert origins is not None
    assert len(origins) == len(folded)
    out, findings = redact(text, PiiPolicy.from_names("email,card"))
    assert out == "\u00bd \ufb01le, \u2474 mail [REDACTED:email] or [REDACTED:card] \u2122"
    assert [text[f.start : f.end] for f in findings] == ["bob@example.com", "4111 1111 1111 1111"]


def shaped_card(rng: random.Random) -> str:
    body = rng.choice("3456") + "".join(rng.choice(string.digits) for _ in range(14))
    number = body + next(d for d in string.digits if luhn_valid(body + d))
    sep = rng.choice([".", " ", "\u00a0", "-", "\u2011", ""])
    value = sep.join(number[i : i + 4] for i in range(0, 16, 4))
    return rng.choice([str, full_width, arabic_indic])(value)


FILLER = [
    "the",
    "Total:",
    "\u00bd",
    "\ufb01le",
    "2024.",
    "\u65e5\u672c",
    "\uff08",
    "ok",
    "de",
    "\u2474",
]


@pytest.mark.parametrize("seed", range(25))
def test_streams_equal_whole_texts_and_never_leak(seed: int) -> None:
    rng = seeded(seed)
    for _ in range(8):
        values = [shaped_card(rng) for _ in range(rng.randint(1, 3))]
        words = [rng.choice(FILLER) for _ in range(rng.randint(0, 12))] + values
        rng.shuffle(words)
        text = "".join(word + rng.choice([" ", ", ", "\n", "\u3000"]) for word in words)
        expected, findings = redact(text)
        assert expected.count("[REDACTED:card]") == len(values), text
        assert sorted(text[f.start : f.end] for f in findings) == sorted(values)
        redactor = StreamRedactor()
        pieces, pos = [], 0
        while pos < len(text):
            size = rng.choice([1, 1, 2, 3, 5, 8])
            pieces.append(redactor.feed(text[pos : pos + size]))
            pos += size
            assert redactor.pending <= redactor.max_holdback
        pieces.append(redactor.flush())
        assert "".join(pieces) == expected
        assert redactor.findings == findings
        for piece in pieces:
            folded = fold(piece)[0]
            assert not any(fold(value)[0][:9] in folded for value in values)
