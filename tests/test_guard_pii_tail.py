"""The stream redactor's fast paths give exactly the answers of the plain searches they stand in
for: the first open position (bounded by what each rule can consume, its first characters
and its head), the scan with each rule tried only at its first character, and the one-search
path for short tails - on PII cut at every position, prose, whitespace and key blocks."""

from __future__ import annotations

import dataclasses
import random
import re

import pytest

from onebox.guard import pii
from onebox.guard._rx import Ahead, Alt, Behind, Cls, Group, Lit, Node, Rep, Seq
from onebox.guard._tail import OpenFinder, one_of
from onebox.guard.folding import fold
from onebox.guard.pii import PiiPolicy, StreamRedactor, redact
from onebox.guard.pii_rules import PII_TYPES, RULES, WORD_START, Rule


def seeded(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - reproducible test data, not cryptography


PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n"
    "KUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQ==\n"
    "-----END RSA PRIVATE KEY-----"
)
FRAGMENTS = [
    "4111 1111 1111 1111", "4111-1111-1111-1111", "4111.1111.1111.1111", "3782.822463.10005",
    "GB82 WEST 1234 5698 7654 32", "GB82WEST12345698765432", "de89 3704 0044 0532 0130 00",
    "a@b.co", "bob.smith+news@mail.example.co.uk", "git@github.com:org/repo", "123-45-6789",
    "+44 20 7946 0958", "+1 (415) 555-0132", "(415) 555-0132", "1 415.555.0132", "020 7946 0958",
    "(020) 7946 0958", "AB 12 34 56 C", "AB123456C", "Bearer abcDEF0123456789ghiJKL", "bearer \t x",
    "sk-proj-Abc123Def456Ghi789Jkl012Mno", "ghp_" + "a1B2" * 9, "github_pat_" + "A1_b" * 6,
    "AKIAIOSFODNN7EXAMPLE", "xoxb-1234567890-abcdef", "AIza" + "Sy0_-" * 7, "hf_" + "aB3" * 11,
    "rk_live_" + "a1B2" * 5, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl",
    PEM, "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n\nProc-Type: 4,ENCRYPTED\n(cut)",
]  # fmt: skip
PROSE = [
    "The quarterly report shows steady growth across all regions, and the team expects more. ",
    "In 2024, we shipped 3 releases (v1.2.3 costs $19.99) - see the notes! ",
    "Sure: AB and CD met at 10:30; GB and THE ID were fine.\n\n",
    "über naïve 日本語 ① ﬁ\u00a0\u2013 ",
    "well-known --- - -- -----\t\t  ",
]
ALPHABET = "0123456789    --..+()@aAZBkskeyJ_\n:,bBrRhfgxIiSNC\t/=~%"


def texts(rng: random.Random, count: int) -> list[str]:
    """Prose, noise and PII fragments - whole or cut anywhere - run together."""
    out = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 10)):
            roll = rng.random()
            if roll < 0.35:
                fragment = rng.choice(FRAGMENTS)
                if rng.random() < 0.5:
                    cut = rng.randint(0, len(fragment))
                    fragment = fragment[:cut] if rng.random() < 0.5 else fragment[cut:]
                parts.append(fragment)
            elif roll < 0.65:
                sentence = rng.choice(PROSE)
                start = rng.randint(0, len(sentence))
                parts.append(sentence[start : rng.randint(start, len(sentence))])
            else:
                parts.append("".join(rng.choices(ALPHABET, k=rng.randint(1, 30))))
        out.append("".join(parts))
    return out


def cut_everywhere() -> list[str]:
    """Each fragment cut at every position (every third in a key block), after a word, a
    space or nothing."""
    out = []
    for fragment in FRAGMENTS:
        for end in range(0, len(fragment) + 1, 1 if len(fragment) < 80 else 3):
            out.append(f"see {fragment[:end]}")
            out.append(f"x{fragment[:end]}")
            out.append(fragment[end:] + " and then more words follow here")
    return out


POLICIES = [PiiPolicy(), *(PiiPolicy(frozenset({kind})) for kind in sorted(PII_TYPES))]


def first_open_reference(scanner: pii._Scanner, buf: str, start: int) -> int:
    assert scanner.opens is not None
    found = scanner.opens.reference.search(buf, start)
    return len(buf) if found is None else found.start()


def assert_first_open_exact(policy: PiiPolicy, text: str) -> None:
    scanner = pii._scanner(policy.types)
    assert scanner.opens is not None
    buf, _ = fold(text)
    # every start near the end, where most answers lie; every third one before
    starts = {*range(0, len(buf), 3), *range(max(len(buf) - 50, 0), len(buf) + 1)}
    for start in sorted(starts):
        want = first_open_reference(scanner, buf, start)
        assert scanner.opens.first_open(buf, start) == want, (buf, start)
        assert scanner.opens.first_open(buf, start, held=True) == want, (buf, start)


@pytest.mark.parametrize("index", range(len(POLICIES)))
def test_first_open_equals_the_plain_search_on_cut_fragments(index: int) -> None:
    # every policy on every text would take long: all texts with all types, a share with one
    for text in cut_everywhere()[:: 1 if index == 0 else 5]:
        assert_first_open_exact(POLICIES[index], text)


@pytest.mark.parametrize("seed", range(6))
def test_first_open_equals_the_plain_search_on_mixed_text(seed: int) -> None:
    rng = seeded(seed)
    for text in texts(rng, 40):
        assert_first_open_exact(rng.choice(POLICIES), text)


@pytest.mark.parametrize("fragment", FRAGMENTS)
def test_first_open_with_a_look_ahead_window_left_open(fragment: str) -> None:
    # a value followed by one or a few more characters that its look-ahead has yet to judge
    for tail in (" ", ".", ",", "\n", "-", ":", "x", "5", ". ", "-5", "  ", "-----"):
        assert_first_open_exact(PiiPolicy(), f"{PROSE[0]}{fragment}{tail}")


def test_first_open_with_long_runs_at_the_end() -> None:
    # runs of a rule's characters longer than what is reversed at first
    for token in ("sk-" + "Ab1_" * 80, "eyJ" + "a1" * 150 + ".eyJ" + "b2" * 90, "x" * 300):
        for end in (150, 200, len(token)):
            assert_first_open_exact(PiiPolicy(), f"{PROSE[0]}{token[:end]}")
    assert_first_open_exact(PiiPolicy(), PROSE[0] + "1 " * 120)
    assert_first_open_exact(PiiPolicy(), PROSE[0] + "4111 " * 60)


def test_first_open_on_long_prose_and_key_blocks() -> None:
    # long tails go through the bounds (runs of consumable characters, head gates)
    text = "".join(PROSE) * 3 + PEM + " " + "".join(PROSE) + PEM[:200]
    scanner = pii._scanner(PiiPolicy().types)
    assert scanner.opens is not None
    buf, _ = fold(text)
    for start in range(0, len(buf) + 1, 7):
        want = first_open_reference(scanner, buf, start)
        assert scanner.opens.first_open(buf, start) == want, start


# --- the node descriptions the bounds rest on ---------------------------------------------


def prefix_matches(node: Node, candidates: list[str]) -> list[str]:
    closure = re.compile(f"(?:{node.prefix().replace('(?P<v>', '(?:')})\\Z")
    return [text for text in candidates if closure.match(text)]


def closure_samples() -> list[str]:
    rng = seeded(99)
    pieces = [*FRAGMENTS, *texts(rng, 30)]
    out = {
        piece[start:end] for piece in pieces for start in (0, 1) for end in range(len(piece) + 1)
    }
    return sorted(out)


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_chars_first_and_head_cover_every_prefix_closure_match(rule: Rule) -> None:
    matches = prefix_matches(rule.node, closure_samples())
    assert len(matches) > 20  # the samples do reach into every rule
    assert_descriptions_cover(rule.node, matches)


def assert_descriptions_cover(node: Node, matches: list[str]) -> None:
    consumed = re.compile(f"{one_of(node.chars())}*")
    first = re.compile(one_of(node.first()))
    head = [re.compile(one_of(chars)) for chars in node.head()]
    window = max(node.overhang() - 1, 0)
    for text in matches:
        assert len(text) <= node.max_len()
        assert consumed.fullmatch(text[: max(len(text) - window, 0)]), text
        if text:
            assert first.fullmatch(text[0]), text
        for index, test in enumerate(head[: len(text)]):
            assert test.fullmatch(text[index]), (text, index)


def random_node(rng: random.Random, depth: int = 0) -> Node:
    """A small pattern of the kind _rx allows, over a handful of characters."""
    roll = rng.random() if depth < 3 else 0.0
    if roll < 0.3:
        text = "".join(rng.choices("ab-@.1", k=rng.randint(1, 3)))
        return Lit(text, ci=rng.random() < 0.2)
    if roll < 0.55:
        lo = rng.randint(0, 2)
        return Cls(
            rng.choice(["[ab]", "[0-9]", "[ -]", "[a-z]", "@", "[.1]"]), lo, lo + rng.randint(0, 3)
        )
    if roll < 0.75:
        items = [random_node(rng, depth + 1) for _ in range(rng.randint(1, 4))]
        for _ in range(rng.randint(0, 2)):
            ahead = rng.choice([Ahead("(?![0-9])", 1), Ahead("(?!ab)", 2), Ahead("(?!-1|a@)", 2)])
            items.insert(rng.randint(0, len(items)), ahead)
        if rng.random() < 0.3:
            items.insert(0, Behind("(?<![a-z])"))
        return Seq(tuple(items))
    if roll < 0.9:
        return Alt(tuple(random_node(rng, depth + 1) for _ in range(rng.randint(2, 3))))
    item = random_node(rng, depth + 1)
    lo = rng.randint(0, 2)
    return Group(item) if rng.random() < 0.2 else Rep(item, lo, lo + rng.randint(1, 3))


@pytest.mark.parametrize("seed", range(4))
def test_chars_first_and_head_of_random_patterns(seed: int) -> None:
    rng = seeded(300 + seed)
    samples = ["".join(rng.choices("ab1@.- 0z", k=rng.randint(0, 9))) for _ in range(1500)]
    for _ in range(60):
        node = random_node(rng)
        assert_descriptions_cover(node, prefix_matches(node, samples))


@pytest.mark.parametrize("seed", range(4))
def test_first_open_of_random_patterns(seed: int) -> None:
    # the bounds worked out for patterns the rules do not happen to contain
    rng = seeded(400 + seed)
    for _ in range(25):
        finder = OpenFinder([random_node(rng) for _ in range(rng.randint(1, 4))], WORD_START)
        for _ in range(20):
            buf = "".join(rng.choices("ab1@.- 0z", k=rng.randint(20, 70)))
            for start in range(len(buf) + 1):
                found = finder.reference.search(buf, start)
                want = len(buf) if found is None else found.start()
                assert finder.first_open(buf, start) == want, (buf, start)


# --- the scan and the stream --------------------------------------------------------------


def plain_scanner(types: frozenset[str]) -> pii._Scanner:
    """The scanner with the combined pattern written plainly, every rule tried everywhere."""
    scanner = pii._scanner(types)
    full = "|".join(
        f"(?P<r{i}>{compiled.rule.node.full().replace('(?P<v>', f'(?P<v{i}>')})"
        for i, compiled in enumerate(scanner.rules)
    )
    return dataclasses.replace(scanner, combined=re.compile(f"{WORD_START}(?:{full})"))


class PlainRedactor(StreamRedactor):
    """The stream redactor without its fast paths: the plain first-open search, the plain
    scan, and origins tracked for every character."""

    def __init__(self, policy: PiiPolicy) -> None:
        super().__init__(policy)
        self._scanner = plain_scanner(self.policy.types)

    def feed(self, delta: str) -> str:
        if self._done:
            raise RuntimeError("feed() after flush()")
        folded, origins = fold(delta)
        self._track(delta, origins)
        self._buf += folded
        self._text += delta
        start = max(self._open, self._pos) - self._base
        self._open = self._base + first_open_reference(self._scanner, self._buf, start)
        return self._advance(self._open)


def sizes(rng: random.Random, total: int) -> list[int]:
    out: list[int] = []
    while sum(out) < total:
        out.append(rng.choice([1, 1, 2, 3, 4, 5, 8, 13, 30, 90]))
    return out


def assert_stream_exact(policy: PiiPolicy, text: str, pieces: list[int]) -> None:
    fast, plain = StreamRedactor(policy), PlainRedactor(policy)
    position = 0
    out = []
    for size in pieces:
        delta = text[position : position + size]
        position += size
        out.append(fast.feed(delta))
        assert out[-1] == plain.feed(delta), (text, position)
        assert fast.pending == plain.pending
    out.append(fast.flush())
    assert out[-1] == plain.flush()
    assert ("".join(out), fast.findings) == redact(text, policy)
    assert fast.findings == plain.findings


@pytest.mark.parametrize("seed", range(8))
def test_stream_feeds_equal_the_plain_redactor(seed: int) -> None:
    rng = seeded(100 + seed)
    for text in texts(rng, 25):
        policy = rng.choice(POLICIES)
        assert_stream_exact(policy, text, sizes(rng, len(text)))
        assert_stream_exact(policy, text, [1] * len(text))
        words = re.findall(r"\S*\s*", text)
        assert_stream_exact(policy, text, [len(word) for word in words if word])


@pytest.mark.parametrize("text", FRAGMENTS)
def test_every_two_piece_split_of_a_fragment_in_prose(text: str) -> None:
    text = f"{PROSE[0]}{text}. {PROSE[1]}"
    for cut in range(0, len(text) + 1, 3):
        assert_stream_exact(PiiPolicy(), text, [cut, len(text) - cut])


def test_key_block_streamed_in_small_pieces() -> None:
    # a long held tail that stays open takes the `held` path
    text = f"key:\n{PEM}\n{PEM[:90]} and {PEM}\nDone."
    for size in (1, 4, 17):
        assert_stream_exact(PiiPolicy(), text, [size] * (len(text) // size + 1))


@pytest.mark.parametrize(
    "text",
    [
        "mail bob@example.com then \u2474 4111 1111 1111 1111 and ﬁne a@b.co",
        "held: 4111 1111 1111 1111\u2474 and bob@example.coﬁ or 4111 1111 1111 1111 ﬁ",
        "bob@example.ﬁ a@b.co\u2474a@b.co ﬁ\u2474\u2474 GB82 WEST 1234 5698 7654 32\u2474 end",
    ],
)
def test_folding_that_starts_mid_stream_keeps_offsets(text: str) -> None:
    # origins are tracked from the first character that does not fold into exactly one on,
    # also for the text held at that moment
    for size in (1, 2, 3, 5, 11, 23):
        assert_stream_exact(PiiPolicy(), text, [size] * (len(text) // size + 1))
    for start in range(0, len(text), 4):
        assert_stream_exact(PiiPolicy(), text, [start, 3, 3, len(text)])


@pytest.mark.parametrize("seed", range(4))
def test_scan_equals_the_plain_scan(seed: int) -> None:
    rng = seeded(200 + seed)
    for text in [*texts(rng, 40), *cut_everywhere()[seed::4]]:
        policy = rng.choice(POLICIES)
        buf, _ = fold(text)
        fast = pii._scan(pii._scanner(policy.types), buf, 0, len(buf))
        assert fast == pii._scan(plain_scanner(policy.types), buf, 0, len(buf)), text


def test_prose_is_sent_on_as_the_plain_redactor_sends_it() -> None:
    # in one read, word by word and in pieces of four characters
    text = "".join(PROSE[:2]) * 4
    assert_stream_exact(PiiPolicy(), text, [len(text)])
    assert_stream_exact(PiiPolicy(), text, [len(w) for w in re.findall(r"\S*\s*", text) if w])
    assert_stream_exact(PiiPolicy(), text, [4] * (len(text) // 4 + 1))
