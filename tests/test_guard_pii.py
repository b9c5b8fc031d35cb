"""PII redaction: detection per type, validators, and streaming equivalence."""

from __future__ import annotations

import random
import string

import pytest

from onebox.guard.pii import PiiPolicy, StreamRedactor, redact
from onebox.guard.pii_rules import IBAN_LENGTHS, PII_TYPES, iban_valid, luhn_valid


def seeded(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - reproducible test data, not cryptography


def redacted(text: str, types: str | None = None) -> str:
    policy = PiiPolicy() if types is None else PiiPolicy.from_names(types)
    return redact(text, policy)[0]


def assert_redacted(value: str, kind: str, template: str = "see {} here") -> None:
    text = template.format(value)
    assert redacted(text) == template.format(f"[REDACTED:{kind}]"), text


def assert_kept(text: str) -> None:
    assert redacted(text) == text


# --- validators --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("79927398713", True),
        ("79927398710", False),
        ("4111111111111111", True),
        ("4111111111111112", False),
        ("378282246310005", True),
        ("0", True),
        ("18", True),
        ("81", False),
    ],
)
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid


@pytest.mark.parametrize(
    ("iban", "valid"),
    [
        ("GB82WEST12345698765432", True),
        ("DE89370400440532013000", True),
        ("FR1420041010050500013M02606", True),
        ("NO9386011117947", True),
        ("GB82WEST12345698765431", False),  # one digit off
        ("GB28WEST12345698765432", False),  # transposed check digits
        ("GB82WEST1234569876543", False),  # too short for GB
        ("DE89370400440532013000X", False),  # too long for DE
        ("ZZ82WEST12345698765432", False),  # no such country
        ("GB82WEST1234569876543!", False),
    ],
)
def test_iban_mod97(iban: str, valid: bool) -> None:
    assert iban_valid(iban) is valid


def make_iban(rng: random.Random, country: str = "DE") -> str:
    body = "".join(rng.choice(string.digits) for _ in range(IBAN_LENGTHS[country] - 4))
    number = int("".join(str(int(ch, 36)) for ch in body + country + "00"))
    return f"{country}{98 - number % 97:02d}{body}"


def test_generated_ibans_validate() -> None:
    rng = seeded(7)
    for country in ("DE", "GB", "FR", "NL", "ES", "IT", "NO", "MT"):
        candidate = make_iban(rng, country)
        assert iban_valid(candidate), candidate


# --- per type ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "bob@example.com",
        "bob.smith+news@mail.example.co.uk",
        "a_b-c%d@sub-domain.example.io",
        "x@y.museum",
    ],
)
def test_email_detected(value: str) -> None:
    assert_redacted(value, "email")
    assert_redacted(value, "email", "<{}>.")
    assert_redacted(value, "email", "Mail: {}, thanks")


@pytest.mark.parametrize(
    "text",
    [
        "install react@18.2.0 today",
        "git clone git@github.com:org/repo.git",
        "ping @alice about it",
        "root@localhost is local",
        "an @ sign and a.b",
    ],
)
def test_email_false_positives(text: str) -> None:
    assert_kept(text)


@pytest.mark.parametrize(
    "value",
    [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "5555 5555 5555 4444",
        "3782 822463 10005",
        "6011111111111117",
        "3530111333300000",
        "4222222222222",
        "2223003122003222",
    ],
)
def test_card_detected(value: str) -> None:
    assert_redacted(value, "card")
    assert_redacted(value, "card", "card: {}.")


def test_nineteen_digit_card() -> None:
    body = "621234567890123456"
    check = next(d for d in "0123456789" if luhn_valid(body + d))
    assert_redacted(body + check, "card")


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 is not valid",  # Luhn fails
        "id 4111111111111112",
        "order 411111111111",  # 12 digits
        "ref 41111111111111111111",  # 20 digits
        "ts 1700000000000 ms",  # 13 digits starting with 1
        "p = 0.4111111111111111",  # a decimal
        "serial 7111 1111 1111 1114",  # not a card network prefix
        "a4111111111111111 b",  # glued to a word
    ],
)
def test_card_false_positives(text: str) -> None:
    assert_kept(text)


def test_card_followed_by_number_is_trimmed_to_the_valid_part() -> None:
    assert redacted("4111 1111 1111 1111 2 items") == "[REDACTED:card] 2 items"


@pytest.mark.parametrize(
    "value",
    [
        "GB82WEST12345698765432",
        "GB82 WEST 1234 5698 7654 32",
        "DE89 3704 0044 0532 0130 00",
        "FR14 2004 1010 0505 0001 3M02 606",
        "NL91ABNA0417164300",
        "NO93 8601 1117 947",
    ],
)
def test_iban_detected(value: str) -> None:
    assert_redacted(value, "iban")
    assert_redacted(value, "iban", "IBAN: {}. Thanks")


def test_iban_followed_by_capitals() -> None:
    assert redacted("pay GB82 WEST 1234 5698 7654 32 NOW OK") == "pay [REDACTED:iban] NOW OK"


@pytest.mark.parametrize(
    "text",
    [
        "GB82 WEST 1234 5698 7654 31",  # bad check digits
        "DE00 3704 0044 0532 01XX 00",
        "XX82WEST12345698765432",
        "gb82west12345698765431",  # lower case, bad check digits
        "MODEL AB12 CDEF GHIJ KLMN",
    ],
)
def test_iban_false_positives(text: str) -> None:
    assert_kept(text)


@pytest.mark.parametrize(
    "value",
    [
        "+1 415 555 0132",
        "+1 (415) 555-0132",
        "+44 20 7946 0958",
        "+44 (0)20 7946 0958",
        "+33 1 23 45 67 89",
        "+49 30 12345678",
        "+91-98765-43210",
        "+15551234567",
        "(415) 555-0132",
        "415-555-0132",
        "415.555.0132",
        "1-800-555-0199",
        "020 7946 0958",
        "07700 900123",
        "(020) 7946 0958",
        "01 23 45 67 89",
        "06-12-34-56-78",
    ],
)
def test_phone_detected(value: str) -> None:
    assert_redacted(value, "phone")
    assert_redacted(value, "phone", "Call {}.")


@pytest.mark.parametrize(
    "text",
    [
        "In 2024, we shipped 3 releases.",
        "It costs $1,299.99 or 1.299,99 EUR.",
        "Python 3.11.4 and v1.2.3",
        "Server 192.168.1.100 on port 8080",
        "Released 2024-01-15 at 12:30",
        "ISBN 978-3-16-148410-0",
        "He scored +100 points",
        "ZIP 02134 and 02134-1234",
        "Population 1,000,000 (2020)",
        "values 100 200 3000",
        "dial ext. 1234 please",
        "a 1.5 MB file, 42 items, 7 days",
        "date 01/02/2024",
    ],
)
def test_phone_false_positives(text: str) -> None:
    assert_kept(text)


@pytest.mark.parametrize("value", ["123-45-6789", "078-05-1120", "899-99-9999"])
def test_ssn_detected(value: str) -> None:
    assert_redacted(value, "national_id")


@pytest.mark.parametrize(
    "text",
    [
        "000-12-3456",
        "666-12-3456",
        "900-12-3456",
        "123-00-4567",
        "123-45-0000",
        "123-45-67890",
        "1123-45-6789",
    ],
)
def test_ssn_invalid_ranges_are_kept(text: str) -> None:
    assert_kept(f"number {text} here")


@pytest.mark.parametrize("value", ["AB123456C", "AB 12 34 56 C", "JG103759A"])
def test_nino_detected(value: str) -> None:
    assert_redacted(value, "national_id")


@pytest.mark.parametrize(
    "text", ["GB123456C", "BG123456A", "AB123456E", "DA123456A", "QQ123456C", "XAB123456C"]
)
def test_nino_false_positives(text: str) -> None:
    assert_kept(f"ref {text} ok")


PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
    "-----END RSA PRIVATE KEY-----"
)
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)


@pytest.mark.parametrize(
    "value",
    [
        "sk-proj-Abc123Def456Ghi789Jkl012Mno345Pqr678_Stu-901",
        "sk-" + "a1B2c3D4e5" * 5,
        "sk-ant-api03-abcDEF123456ghiJKL789012",
        "ghp_" + "aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hI6",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123",
        "AKIAIOSFODNN7EXAMPLE",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "AIzaSyD-1234567890abcdefghijklmnopqrstu",
        "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
        "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh",
        JWT,
        PEM,
    ],
)
def test_secret_detected(value: str) -> None:
    assert_redacted(value, "secret")
    assert_redacted(value, "secret", "token:\n{}\nend")


def test_bearer_keeps_the_scheme() -> None:
    text = "Authorization: Bearer abcDEF0123456789ghiJKL.mno"
    assert redacted(text) == "Authorization: Bearer [REDACTED:secret]"
    assert redacted("curl -H 'authorization: bearer Zm9vYmFyMTIzNDU2Nzg5MGFiY2Rl'") == (
        "curl -H 'authorization: bearer [REDACTED:secret]'"
    )


def test_unterminated_private_key_is_still_redacted() -> None:
    head = PEM.split("-----END")[0]
    assert redacted(f"key:\n{head}(truncated)") == "key:\n[REDACTED:secret](truncated)"


@pytest.mark.parametrize(
    "text",
    [
        "use sk-learn for that",
        "scikit-learn and task-list-of-things-to-do-today-for-me",
        "sk-this-is-just-a-long-hyphenated-phrase",
        "AKIA1234 is too short",
        "the Bearer of bad news brought everything-you-ever-wanted",
        "eyJ alone, or eyJhbGciOi.short",
        "ghp_short and xoxb-nodigitsatallhere",
        "-----BEGIN CERTIFICATE-----",
        "hf_hub_download is a function",
    ],
)
def test_secret_false_positives(text: str) -> None:
    assert_kept(text)


# --- policy and findings -------------------------------------------------------------------

MIXED = (
    "Mail bob@example.com, call +44 20 7946 0958, card 4111 1111 1111 1111, "
    "IBAN GB82 WEST 1234 5698 7654 32, SSN 123-45-6789, key AKIAIOSFODNN7EXAMPLE."
)


def test_types_can_be_switched_off() -> None:
    assert redacted(MIXED, "email,card") == (
        "Mail [REDACTED:email], call +44 20 7946 0958, card [REDACTED:card], "
        "IBAN GB82 WEST 1234 5698 7654 32, SSN 123-45-6789, key AKIAIOSFODNN7EXAMPLE."
    )
    assert redact(MIXED, PiiPolicy(frozenset()))[0] == MIXED
    everything = redacted(MIXED)
    for kind in PII_TYPES:
        assert f"[REDACTED:{kind}]" in everything


def test_unknown_type_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown PII types: ssn"):
        PiiPolicy(frozenset({"ssn"}))


def test_findings_point_at_the_values_without_storing_them() -> None:
    _, findings = redact(MIXED)
    assert [f.type for f in findings] == ["email", "phone", "card", "iban", "national_id", "secret"]
    assert [MIXED[f.start : f.end] for f in findings] == [
        "bob@example.com",
        "+44 20 7946 0958",
        "4111 1111 1111 1111",
        "GB82 WEST 1234 5698 7654 32",
        "123-45-6789",
        "AKIAIOSFODNN7EXAMPLE",
    ]
    assert findings[-1].rule == "aws_access_key"
    assert "bob" not in repr(findings)


def test_custom_placeholder() -> None:
    policy = PiiPolicy(frozenset({"email"}), placeholder="<{type} removed>")
    assert redact("to a@b.io now", policy)[0] == "to <email removed> now"


# --- streaming -----------------------------------------------------------------------------


def stream(text: str, sizes: list[int], policy: PiiPolicy | None = None) -> list[str]:
    redactor = StreamRedactor(policy or PiiPolicy())
    pieces, pos = [], 0
    for size in sizes:
        pieces.append(redactor.feed(text[pos : pos + size]))
        pos += size
        assert redactor.pending <= redactor.max_holdback
    pieces.append(redactor.feed(text[pos:]))
    pieces.append(redactor.flush())
    return pieces


def random_sizes(rng: random.Random, total: int) -> list[int]:
    sizes, used = [], 0
    while used < total:
        size = rng.choice([1, 1, 2, 3, 4, 5, 8, 13, 40])
        sizes.append(size)
        used += size
    return sizes


def test_card_split_inside_a_group_is_never_leaked() -> None:
    redactor = StreamRedactor()
    first = redactor.feed("my card is 4111 11")
    second = redactor.feed("11 1111 1111")
    third = redactor.feed(" thanks")
    rest = redactor.flush()
    assert first == "my card is "
    assert second == ""
    assert first + second + third + rest == "my card is [REDACTED:card] thanks"


def test_email_split_in_the_local_part() -> None:
    redactor = StreamRedactor()
    pieces = [redactor.feed(p) for p in ("write to jo", "hn.sm", "ith@exam", "ple.org", ".")]
    pieces.append(redactor.flush())
    assert pieces[0] == "write to "
    assert all("john" not in piece and "smith" not in piece for piece in pieces)
    assert "".join(pieces) == "write to [REDACTED:email]."


def test_email_domain_can_still_grow() -> None:
    redactor = StreamRedactor()
    assert redactor.feed("a@b.co") == ""
    assert redactor.feed("m.au and") == "[REDACTED:email] "
    assert redactor.flush() == "and"


def test_prose_flows_with_at_most_the_trailing_word_held() -> None:
    redactor = StreamRedactor()
    text = (
        "Sure! Here is a short answer: in 2024 the team shipped 3 releases, "
        "(mostly bug fixes) and version 1.2.3 costs $19.99 - see the notes."
    )
    emitted = ""
    for word in text.split(" "):
        emitted += redactor.feed(word)
        assert redactor.pending <= len(word)
        emitted += redactor.feed(" ")
        # a bare number may still be the first group of a card or phone number
        assert redactor.pending == (len(word) + 1 if word.isdigit() and len(word) > 3 else 0)
    emitted += redactor.flush()
    assert emitted == text + " "


def test_private_key_is_held_until_its_footer() -> None:
    redactor = StreamRedactor()
    out = [redactor.feed("key:\n")]
    for line in PEM.splitlines(keepends=True):
        out.append(redactor.feed(line))
        assert "MII" not in "".join(out)
    out.append(redactor.feed("\nDone."))
    out.append(redactor.flush())
    assert "".join(out) == "key:\n[REDACTED:secret]\nDone."
    assert redactor.findings[0].rule == "private_key"


def test_stream_findings_match_whole_text_findings() -> None:
    redactor = StreamRedactor()
    for size in range(0, len(MIXED), 3):
        redactor.feed(MIXED[size : size + 3])
    redactor.flush()
    assert redactor.findings == redact(MIXED)[1]


def test_feed_after_flush_is_an_error() -> None:
    redactor = StreamRedactor()
    redactor.flush()
    with pytest.raises(RuntimeError):
        redactor.feed("x")


def test_nothing_enabled_passes_text_through() -> None:
    redactor = StreamRedactor(PiiPolicy(frozenset()))
    assert redactor.feed("bob@example.com") == "bob@example.com"
    assert redactor.flush() == ""


def pii_samples(rng: random.Random) -> list[str]:
    def card() -> str:
        body = rng.choice("3456") + "".join(rng.choice(string.digits) for _ in range(14))
        number = body + next(d for d in string.digits if luhn_valid(body + d))
        sep = rng.choice(["", " ", "-"])
        return sep.join(number[i : i + 4] for i in range(0, 16, 4))

    def email() -> str:
        local = "".join(
            rng.choice(string.ascii_lowercase + ".+_") for _ in range(rng.randint(1, 12))
        )
        return f"{rng.choice(string.ascii_lowercase)}{local}@mail{rng.randint(1, 99)}.example.com"

    def iban() -> str:
        value = make_iban(rng, rng.choice(["DE", "FR", "NL", "ES"]))
        return (
            " ".join(value[i : i + 4] for i in range(0, len(value), 4))
            if rng.random() < 0.5
            else value
        )

    def ssn() -> str:
        return f"{rng.randint(1, 665):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"

    def secret() -> str:
        token = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(40))
        return rng.choice(["sk-proj-", "ghp_", "sk-"]) + token[:-4] + "7aZ0"

    phones = [
        "+44 20 7946 0958",
        "(415) 555-0132",
        "020 7946 0958",
        "+1 415 555 0132",
        "415-555-0132",
    ]
    return [
        card(),
        email(),
        iban(),
        ssn(),
        secret(),
        rng.choice(phones),
        "AKIAIOSFODNN7EXAMPLE",
        JWT,
    ]


FILLER = [
    "the", "quick", "brown", "fox", "In", "2024,", "v1.2.3", "$1,299.99", "12:30", "42",
    "items", "e.g.", "GB", "THE", "ID", "+", "(", ")", "-", "---", "eyJ", "@", "Bearer", "sk-learn",
    "4111 1111 1111 1112", "0.5", "100 200", "Hello!", "über", "naïve", "日本語", "#", "**bold**",
]  # fmt: skip


@pytest.mark.parametrize("seed", range(40))
def test_streaming_equals_whole_text_and_never_leaks(seed: int) -> None:
    rng = seeded(seed)
    for _ in range(10):
        secrets_in_text = pii_samples(rng)
        words = [rng.choice(FILLER) for _ in range(rng.randint(0, 30))]
        for value in rng.sample(secrets_in_text, rng.randint(1, len(secrets_in_text))):
            words.insert(rng.randint(0, len(words)), value)
        text = ""
        for word in words:
            text += word + rng.choice([" ", "\n", ", ", ". ", " and ", ": "])
        expected, _ = redact(text)
        present = [value for value in secrets_in_text if value in text]
        for value in present:
            assert value not in expected, (value, text)
        for _ in range(4):
            pieces = stream(text, random_sizes(rng, len(text)))
            assert "".join(pieces) == expected
            for piece in pieces:
                for value in present:
                    assert value not in piece


@pytest.mark.parametrize("seed", range(30))
def test_streaming_equals_whole_text_on_adversarial_noise(seed: int) -> None:
    # A tiny alphabet makes near-misses, overlaps and boundary cases frequent.
    rng = seeded(1000 + seed)
    alphabet = "0123456789    --..+()@aAZBkskeyJ_\n:,"
    fragments = [
        "4111 1111 1111 1111",
        "GB82 WEST 1234 5698 7654 32",
        "a@b.co",
        "123-45-6789",
        "+44 20 ",
    ]
    for _ in range(20):
        parts = []
        for _ in range(rng.randint(1, 12)):
            if rng.random() < 0.3:
                parts.append(rng.choice(fragments))
            else:
                parts.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 25))))
        text = "".join(parts)
        expected, _ = redact(text)
        assert "".join(stream(text, random_sizes(rng, len(text)))) == expected, text
        assert "".join(stream(text, [1] * len(text))) == expected, text


TRICKY = [
    "git@github.com:org/repo.git and bob@example.com: hi",
    "call +44 20 7946 0958.5 or +44 20 7946 0958. ok",
    "4111 1111 1111 1111 2 items, 4111 1111 1111 1112 3",
    "GB82 WEST 1234 5698 7654 32 NOW and GB82 WEST 1234 5698 7654 31",
    "123-45-6789-1 vs 123-45-6789, and AB 12 34 56 C.",
    "Bearer abcDEF0123456789ghiJKL, bearer short, Bearer",
    f"{PEM}\n{JWT}.",
    "-----BEGIN PRIVATE KEY-----\nMIIB\n(cut)",
    "sk-abc sk-proj-Abc123Def456Ghi789Jkl012Mno AKIAIOSFODNN7EXAMPLEX AKIAIOSFODNN7EXAMPLE",
]


@pytest.mark.parametrize("text", TRICKY)
def test_every_two_piece_split_matches_whole_text(text: str) -> None:
    expected, _ = redact(text)
    for cut in range(len(text) + 1):
        redactor = StreamRedactor()
        pieces = [redactor.feed(text[:cut]), redactor.feed(text[cut:]), redactor.flush()]
        assert "".join(pieces) == expected, cut
    assert "".join(stream(text, [1] * len(text))) == expected


def test_repr_never_shows_held_text() -> None:
    redactor = StreamRedactor()
    redactor.feed("card 4111 1111")
    assert "4111" not in repr(redactor)
    assert "pending=9" in repr(redactor)


def test_bad_placeholder_is_rejected() -> None:
    with pytest.raises(ValueError, match="placeholder"):
        PiiPolicy(placeholder="[{kind}]")
