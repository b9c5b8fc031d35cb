"""The PII detection rules: patterns (built with :mod:`onebox.guard._rx`) and validators.

A validator receives the matched value and returns how many of its characters to redact
(``len(value)`` or fewer, cut at a separator) or ``None`` to reject the match.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from onebox.guard._rx import Ahead, Behind, Cls, Group, Lit, Node, Rep, alt, opt, seq

PII_TYPES: frozenset[str] = frozenset({"email", "phone", "card", "iban", "national_id", "secret"})

Validator = Callable[[str], int | None]

# Official IBAN lengths per country (SWIFT IBAN registry).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27,
    "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def luhn_valid(digits: str) -> bool:
    odd = sum(map(int, digits[-1::-2]))
    even = sum(_DOUBLED[int(ch)] for ch in digits[-2::-2])
    return (odd + even) % 10 == 0


def iban_valid(compact: str) -> bool:
    """Country length and ISO 13616 mod-97 check on an IBAN without spaces."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


_DIGIT_RUN = re.compile(r"[0-9]+")


def _digit_groups(value: str) -> list[tuple[int, str]]:
    """``(end, digits so far)`` at the end of each run of digits, longest first. A match may
    be cut back to any of these ends: the separators between groups are the seams."""
    ends: list[tuple[int, str]] = []
    digits = ""
    for run in _DIGIT_RUN.finditer(value):
        digits += run.group()
        ends.append((run.end(), digits))
    ends.reverse()
    return ends


def _card(value: str) -> int | None:
    for end, digits in _digit_groups(value):
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            return end
    return None


def _digit_count(lo: int, hi: int) -> Validator:
    def check(value: str) -> int | None:
        for end, digits in _digit_groups(value):
            if lo <= len(digits) <= hi:
                return end
        return None

    return check


def _iban(value: str) -> int | None:
    """Letters may come in either case ("de89 3704 ..."); the checks read them upper-cased."""
    length = IBAN_LENGTHS.get(value[:2].upper())
    if length is None:
        return None
    seen = 0
    for i, ch in enumerate(value):
        if ch != " ":
            seen += 1
            if seen == length:
                end = i + 1
                if end < len(value) and value[end] != " ":
                    return None
                return end if iban_valid(value[:end].replace(" ", "").upper()) else None
    return None


def _token(value: str) -> int | None:
    """Random-looking tokens carry at least one digit and one letter."""
    has_digit = any(ch.isdigit() for ch in value)
    has_alpha = any(ch.isalpha() for ch in value)
    return len(value) if has_digit and has_alpha else None


def _mixed_case(value: str) -> int | None:
    body = value[3:]
    return len(value) if any(c.islower() for c in body) and any(c.isupper() for c in body) else None


# Every rule starts with a look-behind that rejects a preceding letter or digit; the scanner
# relies on it to skip the inside of words quickly.
WORD_START = "(?<![A-Za-z0-9])"


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    type: str
    node: Node
    validator: Validator | None = None


D = "[0-9]"
TOKEN_START = Behind("(?<![A-Za-z0-9_-])")
B64URL = "[A-Za-z0-9_-]"

_PRIVATE_KEY_LABEL = (Cls("[A-Z0-9 ]", 0, 40), Lit("PRIVATE KEY"), opt(Lit(" BLOCK")), Lit("-----"))

_SEP_DIGIT = seq(Cls("[ -]", 0, 1), Cls(D))

RULES: tuple[Rule, ...] = (
    # --- secrets (distinctive prefixes first) --------------------------------------------
    Rule("private_key", "secret", seq(
        Behind("(?<![A-Za-z0-9])"), Lit("-----BEGIN "), *_PRIVATE_KEY_LABEL,
        # base64 lines plus header lines such as "Proc-Type: 4,ENCRYPTED"; an unterminated
        # block is still redacted up to the first character that cannot belong to it
        Rep(seq(Ahead("(?!-----END)", 8), Cls(r"[A-Za-z0-9+/=\s:,-]")), 0, 12000),
        opt(seq(Lit("-----END "), *_PRIVATE_KEY_LABEL)),
    )),
    Rule("bearer_token", "secret", seq(
        Behind("(?<![A-Za-z0-9_])"), Lit("bearer", ci=True), Cls("[ \t]", 1, 8),
        Group(seq(Cls("[A-Za-z0-9._~+/-]", 20, 2048), Cls("=", 0, 2))),
    ), _token),
    Rule("jwt", "secret", seq(
        TOKEN_START, Lit("eyJ"), Cls(B64URL, 8, 1024), Lit("."), Cls(B64URL, 8, 8192),
        Lit("."), Cls(B64URL, 0, 1024),
    )),
    Rule("openai_key", "secret", seq(TOKEN_START, Lit("sk-"), Cls("[A-Za-z0-9_-]", 20, 512)), _token),
    Rule("stripe_key", "secret", seq(
        Behind("(?<![A-Za-z0-9_])"), Cls("[rs]"), Lit("k_"), alt(Lit("live_"), Lit("test_")),
        Cls("[A-Za-z0-9]", 16, 255),
    ), _token),
    Rule("github_token", "secret", seq(
        TOKEN_START, Lit("gh"), Cls("[pousr]"), Lit("_"), Cls("[A-Za-z0-9]", 36, 255),
    )),
    Rule("github_pat", "secret", seq(TOKEN_START, Lit("github_pat_"), Cls("[A-Za-z0-9_]", 22, 255))),
    Rule("aws_access_key", "secret", seq(
        Behind("(?<![A-Za-z0-9])"), alt(Lit("AKIA"), Lit("ASIA")), Cls("[0-9A-Z]", 16, 16),
        Ahead("(?![A-Za-z0-9])", 1),
    )),
    Rule("slack_token", "secret", seq(
        TOKEN_START, Lit("xox"), Cls("[abprs]"), Lit("-"), Cls("[A-Za-z0-9-]", 10, 255),
    ), _token),
    Rule("google_api_key", "secret", seq(
        TOKEN_START, Lit("AIza"), Cls(B64URL, 35, 35), Ahead("(?![A-Za-z0-9_-])", 1),
    )),
    Rule("huggingface_token", "secret", seq(
        Behind("(?<![A-Za-z0-9_])"), Lit("hf_"), Cls("[A-Za-z0-9]", 30, 64),
    ), _mixed_case),
    # --- email -------------------------------------------------------------------------
    Rule("email", "email", seq(
        Behind("(?<![A-Za-z0-9._%+-])"), Cls("[A-Za-z0-9._%+-]", 1, 64), Lit("@"),
        Rep(seq(Cls("[A-Za-z0-9-]", 1, 63), Lit(".")), 1, 8), Cls("[A-Za-z]", 2, 24),
        # not "git@github.com:org/repo"
        Ahead("(?![A-Za-z0-9-]|:[A-Za-z0-9/~])", 2),
    )),
    # --- bank --------------------------------------------------------------------------
    Rule("iban", "iban", seq(
        Behind("(?<![A-Za-z0-9])"), Cls("[A-Za-z]", 2, 2), Cls(D, 2, 2),
        Rep(seq(Cls("[ ]", 0, 1), Cls("[A-Za-z0-9]")), 11, 30), Ahead("(?![A-Za-z0-9])", 1),
    ), _iban),
    Rule("card", "card", seq(
        Behind("(?<![A-Za-z0-9_.,+-])"), Cls("[2-6]"), Cls(D, 3, 3), Rep(_SEP_DIGIT, 9, 15),
        Ahead("(?![A-Za-z0-9_]|[.,][0-9])", 2),
    ), _card),
    # dots only between whole groups (4-4-4-4[-1..3] or 4-6-4/5), so decimals stay numbers
    Rule("card_dotted", "card", seq(
        Behind("(?<![A-Za-z0-9_.,+-])"), Cls("[2-6]"), Cls(D, 3, 3),
        alt(seq(Lit("."), Cls(D, 6, 6), Lit("."), Cls(D, 4, 5)),
            seq(Rep(seq(Lit("."), Cls(D, 4, 4)), 3, 3), opt(seq(Lit("."), Cls(D, 1, 3))))),
        Ahead("(?![A-Za-z0-9_]|[.,][0-9])", 2),
    ), _card),
    # --- national identifiers ----------------------------------------------------------
    Rule("us_ssn", "national_id", seq(
        Behind("(?<![A-Za-z0-9_-])"), Ahead("(?!000|666|9)", 3), Cls(D, 3, 3), Lit("-"),
        Ahead("(?!00)", 2), Cls(D, 2, 2), Lit("-"), Ahead("(?!0000)", 4), Cls(D, 4, 4),
        Ahead("(?![A-Za-z0-9_]|-[0-9])", 2),
    )),
    Rule("uk_nino", "national_id", seq(
        Behind("(?<![A-Za-z0-9])"), Ahead("(?!BG|GB|KN|NK|NT|TN|ZZ)", 2),
        Cls("[A-CEGHJ-PR-TW-Z]"), Cls("[A-CEGHJ-NPR-TW-Z]"),
        Cls("[ ]", 0, 1), Cls(D, 2, 2), Cls("[ ]", 0, 1), Cls(D, 2, 2), Cls("[ ]", 0, 1),
        Cls(D, 2, 2), Cls("[ ]", 0, 1), Cls("[A-D]"), Ahead("(?![A-Za-z0-9])", 1),
    )),
    # --- phone numbers -----------------------------------------------------------------
    Rule("phone_international", "phone", seq(
        Behind("(?<![A-Za-z0-9_+])"), Lit("+"), Cls("[1-9]"), Cls(D, 0, 2),
        opt(seq(Cls("[ .-]", 0, 1), Lit("("), Cls(D, 1, 4), Lit(")"))),
        Cls("[ .-]", 0, 1), Cls(D, 1, 14), Rep(seq(Cls("[ .-]"), Cls(D, 1, 10)), 0, 5),
        Ahead("(?![0-9]|[.-][0-9])", 2),
    ), _digit_count(8, 15)),
    Rule("phone_nanp", "phone", seq(
        Behind("(?<![A-Za-z0-9_+.-])"), opt(seq(Lit("1"), Cls("[ .-]"))),
        alt(seq(Lit("("), Cls("[2-9]"), Cls(D, 2, 2), Lit(")"), Cls("[ ]", 0, 1)),
            seq(Cls("[2-9]"), Cls(D, 2, 2), Cls("[ .-]"))),
        Cls("[2-9]"), Cls(D, 2, 2), Cls("[ .-]"), Cls(D, 4, 4),
        Ahead("(?![A-Za-z0-9_]|[.-][0-9])", 2),
    )),
    Rule("phone_national", "phone", seq(
        Behind("(?<![A-Za-z0-9_+.,/-])"),
        alt(seq(Lit("(0"), Cls("[1-9]"), Cls(D, 0, 3), Lit(")")), seq(Lit("0"), Cls("[1-9]"), Cls(D, 0, 3))),
        Rep(seq(Cls("[ -]", 0, 1), Cls(D, 2, 8)), 1, 4),
        Ahead("(?![A-Za-z0-9_]|[.,-][0-9])", 2),
    ), _digit_count(10, 11)),
)  # fmt: skip
