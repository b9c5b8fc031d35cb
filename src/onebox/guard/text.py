"""Input cleaning: invisible and control characters, Unicode normalization, size limits."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from onebox.core.messages import ChatMessage

# Bidirectional embeddings, overrides and isolates ("Trojan Source"), plus LRM/RLM/ALM marks.
BIDI_CONTROLS = frozenset(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
)
# Zero-width characters that carry no meaning in chat text. ZWJ/ZWNJ are handled apart:
# emoji sequences and several scripts (Persian, Indic) need them.
ZERO_WIDTH = frozenset(
    "\u200b\u2060\u2061\u2062\u2063\u2064\ufeff\u180e\u00ad\u034f\u115f\u1160\u3164"
)
JOINERS = frozenset("\u200c\u200d")
TAG_FIRST, TAG_LAST = 0xE0000, 0xE007F  # Unicode "tag" characters: invisible ASCII copies

_NEWLINES = re.compile(r"\r\n?")
_BLACK_FLAG = "\U0001f3f4"
_CANCEL_TAG = "\U000e007f"


def is_invisible(text: str, index: int) -> bool:
    """Whether ``text[index]`` is a hidden character a guard should remove."""
    ch = text[index]
    if ch in ZERO_WIDTH or ch in BIDI_CONTROLS:
        return True
    if ch in JOINERS:  # kept only between two visible non-ASCII characters
        return not (_joinable(text, index - 1) and _joinable(text, index + 1))
    if TAG_FIRST <= ord(ch) <= TAG_LAST:
        return not _in_flag_sequence(text, index)
    return False


def _joinable(text: str, index: int) -> bool:
    if not 0 <= index < len(text) or text[index].isascii():
        return False
    return unicodedata.category(text[index])[0] in "LMS"


def _in_flag_sequence(text: str, index: int) -> bool:
    """Tags are legitimate in subdivision flags: U+1F3F4, a few tags, then CANCEL TAG."""
    start = end = index
    while start > 0 and TAG_FIRST <= ord(text[start - 1]) <= TAG_LAST:
        start -= 1
    while end < len(text) and TAG_FIRST <= ord(text[end]) <= TAG_LAST:
        end += 1
    return (
        start > 0
        and text[start - 1] == _BLACK_FLAG
        and end - start <= 8
        and text[end - 1] == _CANCEL_TAG
    )


_ALWAYS_DROP = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff"
    + "".join(sorted(ZERO_WIDTH | BIDI_CONTROLS))
    + "]"
)
_MAYBE_DROP = re.compile("[\u200c\u200d\U000e0000-\U000e007f]")
_LINE_SEPARATORS = re.compile("[\x85\u2028\u2029]")


def clean_text(text: str) -> str:
    """Normalize newlines to ``\\n``, drop control characters other than tab and newline,
    drop zero-width, bidi-control and tag characters, and NFC-normalize."""
    text = _LINE_SEPARATORS.sub("\n", _NEWLINES.sub("\n", text))
    text = _ALWAYS_DROP.sub("", text)
    if _MAYBE_DROP.search(text):
        text = "".join(ch for i, ch in enumerate(text) if not is_invisible(text, i))
    return text if text.isascii() else unicodedata.normalize("NFC", text)


class GuardViolation(ValueError):
    """A request broke an input rule. ``param`` names the offending field."""

    def __init__(self, message: str, *, param: str, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


@dataclass(frozen=True, slots=True)
class MessageLimits:
    max_messages: int = 256
    max_message_chars: int = 100_000
    max_total_chars: int | None = None


def enforce_limits(messages: Sequence[ChatMessage], limits: MessageLimits) -> None:
    """Raise :class:`GuardViolation` when the conversation is too long or too big."""
    if not messages:
        raise GuardViolation("messages must contain at least one message", param="messages")
    if len(messages) > limits.max_messages:
        raise GuardViolation(
            f"messages has {len(messages)} entries; the limit is {limits.max_messages}",
            param="messages",
            code="too_many_messages",
        )
    total = 0
    for index, message in enumerate(messages):
        size = len(message.content)
        if size > limits.max_message_chars:
            raise GuardViolation(
                f"messages[{index}].content is {size} characters long; "
                f"the limit is {limits.max_message_chars}",
                param=f"messages[{index}].content",
                code="message_too_long",
            )
        total += size
    if limits.max_total_chars is not None and total > limits.max_total_chars:
        raise GuardViolation(
            f"messages total {total} characters; the limit is {limits.max_total_chars}",
            param="messages",
            code="messages_too_long",
        )


def clean_messages(
    messages: Sequence[ChatMessage], limits: MessageLimits | None = None
) -> list[ChatMessage]:
    """Clean every message's content, then enforce ``limits`` (when given) on the result."""
    cleaned = [ChatMessage(message.role, clean_text(message.content)) for message in messages]
    if limits is not None:
        enforce_limits(cleaned, limits)
    return cleaned
