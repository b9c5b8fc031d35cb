"""BM25 sparse vectors for the Qdrant backends' keyword side.

Documents carry BM25's saturated term frequency, queries 1.0 per distinct term; the inverse
document frequency is left to the engine (a sparse vector with ``modifier=IDF``), which knows
the corpus. The document length is normalised against a fixed average, as Qdrant's and
fastembed's ``Bm25`` do, so a vector never changes once written.

Token ids are a stable hash (not Python's per-process ``hash()``): ids written by one process
must match the ids another process computes for its queries.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import dataclass
from hashlib import blake2b

K1 = 1.2
B = 0.75
AVG_LEN = 256.0
MAX_TOKEN_CHARS = 40

_WORD = re.compile(r"\w+", re.UNICODE)

# Word tokens split at apostrophes, so "aren't" arrives as "aren" and "t".
_STOPWORD_TEXT = """
    a about above after again against all am an and any are aren as at be because been
    before being below between both but by can cannot could couldn did didn do does doesn
    doing don down during each few for from further had hadn has hasn have haven having he
    her here hers herself him himself his how i if in into is isn it its itself just let ll
    me more most mustn my myself no nor not now of off on once only or other ought our ours
    ourselves out over own re s same shan she should shouldn so some such t than that the
    their theirs them themselves then there these they this those through to too under
    until up ve very was wasn we were weren what when where which while who whom why will
    with won would wouldn you your yours yourself yourselves d m o y ain
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


@dataclass(frozen=True, slots=True)
class SparseVector:
    indices: list[int]  # sorted, distinct 32-bit token ids
    values: list[float]


def tokenize(text: str) -> list[str]:
    """Lowercased word tokens, stopwords dropped, stemmed."""
    tokens: list[str] = []
    for word in _WORD.findall(text.lower()):
        if len(word) > MAX_TOKEN_CHARS or word in STOPWORDS or word.strip("_") == "":
            continue
        tokens.append(stem(word))
    return tokens


def token_id(token: str) -> int:
    return int.from_bytes(blake2b(token.encode("utf-8"), digest_size=4).digest(), "little")


def document_vector(
    text: str, *, k1: float = K1, b: float = B, avg_len: float = AVG_LEN
) -> SparseVector:
    tokens = tokenize(text)
    # Counted by id, so the rare hash collision adds up instead of writing an index twice.
    counts = Counter(token_id(token) for token in tokens)
    norm = k1 * (1.0 - b + b * len(tokens) / avg_len)
    indices = sorted(counts)
    return SparseVector(
        indices=indices,
        values=[counts[i] * (k1 + 1.0) / (counts[i] + norm) for i in indices],
    )


def query_vector(text: str) -> SparseVector:
    indices = sorted({token_id(token) for token in tokenize(text)})
    return SparseVector(indices=indices, values=[1.0] * len(indices))


# --- Porter stemmer (M. F. Porter, 1980), for ASCII words -----------------------------------


def _longest_first(*rules: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(rules, key=lambda rule: -len(rule[0])))


_STEP2 = _longest_first(
    ("ational", "ate"),
    ("tional", "tion"),
    ("enci", "ence"),
    ("anci", "ance"),
    ("izer", "ize"),
    ("bli", "ble"),
    ("alli", "al"),
    ("entli", "ent"),
    ("eli", "e"),
    ("ousli", "ous"),
    ("ization", "ize"),
    ("ation", "ate"),
    ("ator", "ate"),
    ("alism", "al"),
    ("iveness", "ive"),
    ("fulness", "ful"),
    ("ousness", "ous"),
    ("aliti", "al"),
    ("iviti", "ive"),
    ("biliti", "ble"),
    ("logi", "log"),
)
_STEP3 = _longest_first(
    ("icate", "ic"),
    ("ative", ""),
    ("alize", "al"),
    ("iciti", "ic"),
    ("ical", "ic"),
    ("ful", ""),
    ("ness", ""),
)
_STEP4_TEXT = "al ance ence er ic able ible ant ement ment ent ion ou ism ate iti ous ive ize"
_STEP4 = sorted(
    _STEP4_TEXT.split(),
    key=len,
    reverse=True,
)
_ASCII_WORD = re.compile(r"[a-z]+")


def _is_consonant(word: str, i: int) -> bool:
    letter = word[i]
    if letter in "aeiou":
        return False
    if letter == "y":
        return i == 0 or not _is_consonant(word, i - 1)
    return True


def _measure(stem: str) -> int:
    """Porter's m: the number of vowel-consonant sequences in ``stem``."""
    m, previous_vowel = 0, False
    for i in range(len(stem)):
        vowel = not _is_consonant(stem, i)
        if previous_vowel and not vowel:
            m += 1
        previous_vowel = vowel
    return m


def _has_vowel(stem: str) -> bool:
    return any(not _is_consonant(stem, i) for i in range(len(stem)))


def _double_consonant(word: str) -> bool:
    return len(word) >= 2 and word[-1] == word[-2] and _is_consonant(word, len(word) - 1)


def _cvc(word: str) -> bool:
    """Ends consonant-vowel-consonant, the last not w, x or y (hop -> hope, not hopp)."""
    n = len(word)
    return (
        n >= 3
        and _is_consonant(word, n - 1)
        and not _is_consonant(word, n - 2)
        and _is_consonant(word, n - 3)
        and word[-1] not in "wxy"
    )


def _replace(word: str, rules: tuple[tuple[str, str], ...], min_measure: int) -> str:
    # Rules run longest suffix first, and only the first match counts, whether or not its
    # condition holds.
    for suffix, replacement in rules:
        if word.endswith(suffix):
            stem = word[: -len(suffix)]
            return stem + replacement if _measure(stem) > min_measure else word
    return word


def _step1(word: str) -> str:
    if word.endswith("sses") or word.endswith("ies"):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]

    if word.endswith("eed"):
        if _measure(word[:-3]) > 0:
            word = word[:-1]
    else:
        for suffix in ("ed", "ing"):
            if word.endswith(suffix) and _has_vowel(word[: -len(suffix)]):
                word = word[: -len(suffix)]
                if word.endswith(("at", "bl", "iz")):
                    word += "e"
                elif _double_consonant(word) and word[-1] not in "lsz":
                    word = word[:-1]
                elif _measure(word) == 1 and _cvc(word):
                    word += "e"
                break

    if word.endswith("y") and _has_vowel(word[:-1]):
        word = word[:-1] + "i"
    return word


def _step4(word: str) -> str:
    for suffix in _STEP4:
        if word.endswith(suffix):
            stem = word[: -len(suffix)]
            if suffix == "ion" and not stem.endswith(("s", "t")):
                return word
            return stem if _measure(stem) > 1 else word
    return word


def _step5(word: str) -> str:
    if word.endswith("e"):
        stem = word[:-1]
        m = _measure(stem)
        if m > 1 or (m == 1 and not _cvc(stem)):
            word = stem
    if word.endswith("ll") and _measure(word) > 1:
        word = word[:-1]
    return word


@functools.lru_cache(maxsize=1 << 16)  # word frequencies are Zipfian: most calls hit
def stem(word: str) -> str:
    """Porter-stems a lowercase ASCII word; other words (digits, non-Latin) pass unchanged."""
    if len(word) <= 2 or not _ASCII_WORD.fullmatch(word):
        return word
    word = _step1(word)
    word = _replace(word, _STEP2, 0)
    word = _replace(word, _STEP3, 0)
    word = _step4(word)
    return _step5(word)
