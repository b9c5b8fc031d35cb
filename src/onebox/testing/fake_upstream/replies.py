"""The fake upstream's deterministic reply: words, deltas, usage and embeddings."""

from __future__ import annotations

import hashlib
import math
import struct

FAIL_MODES = (
    "none",
    "status-500",
    "status-503",
    "status-429",
    "midstream",
    "stall",
    "slow-first-byte",
)
DEFAULT_TOKENS = 16
DEFAULT_FAULT_TOKENS = 3
DEFAULT_EMBEDDING_DIMENSIONS = 8
MAX_BODY_BYTES = 16 * 1024 * 1024
SLOW_FIRST_BYTE_SECONDS = 3600.0


# --------------------------------------------------------------------------------------
# The deterministic reply


def reply_words(last_user_message: str, tokens: int = DEFAULT_TOKENS) -> list[str]:
    """The whole reply for a request whose last user message is ``last_user_message``:
    ``Echo:`` and its words, padded with ``tok<position>`` or truncated to ``tokens``."""
    words = ["Echo:", *last_user_message.split()]
    words.extend(f"tok{index}" for index in range(len(words), tokens))
    return words[:tokens]


def reply_deltas(
    last_user_message: str, tokens: int = DEFAULT_TOKENS, max_tokens: int | None = None
) -> list[str]:
    """The content deltas streamed, in order (before any ``stop`` string is applied)."""
    words = reply_words(last_user_message, tokens)
    if max_tokens is not None:
        words = words[:max_tokens]
    return [word if index == 0 else f" {word}" for index, word in enumerate(words)]


def expected_reply(
    last_user_message: str, tokens: int = DEFAULT_TOKENS, max_tokens: int | None = None
) -> tuple[str, str]:
    """``(text, finish_reason)`` the fake returns (no ``stop`` strings)."""
    text = "".join(reply_deltas(last_user_message, tokens, max_tokens))
    truncated = max_tokens is not None and max_tokens < tokens
    return text, "length" if truncated else "stop"


def prompt_tokens_for(contents: list[str]) -> int:
    """The fake's prompt token count: words in each message's content plus 3 per message."""
    return sum(len(content.split()) + 3 for content in contents)


def embedding_for(text: str, dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS) -> list[float]:
    """A unit vector derived from SHA-256 of the text (repeatable across runs and hosts)."""
    raw: list[float] = []
    counter = 0
    while len(raw) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        raw.extend(value / 2**31 - 1.0 for value in struct.unpack(">8I", digest))
        counter += 1
    raw = raw[:dimensions]
    norm = math.sqrt(sum(value * value for value in raw)) or 1.0
    return [round(value / norm, 6) for value in raw]


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": "..."}, ...]
        return " ".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type", "text") == "text"
        )
    return ""


def _apply_stop(deltas: list[str], stops: list[str]) -> tuple[list[str], bool]:
    """Cut the deltas just before the first occurrence of any stop string."""
    text = "".join(deltas)
    cut = min((index for stop in stops if (index := text.find(stop)) >= 0), default=-1)
    if cut < 0:
        return deltas, False
    kept: list[str] = []
    position = 0
    for delta in deltas:
        if position + len(delta) <= cut:
            kept.append(delta)
            position += len(delta)
            continue
        if cut > position:
            kept.append(delta[: cut - position])
        break
    return kept, True
