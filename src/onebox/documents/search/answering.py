"""Putting retrieved passages in front of the model, and reading its citations back."""

from __future__ import annotations

import re
from collections.abc import Sequence

from onebox.documents.search.retrieval import Source
from onebox.guard import fence_untrusted
from onebox.llm.base import ChatMessage

CITATION_INSTRUCTIONS = (
    "Answer the user's latest question using the numbered sources below. After each "
    "sentence that uses a source, cite it by its number in square brackets, like [1] or "
    "[2][3]. Cite only sources you actually used. If the sources do not contain the answer, "
    "say that the documents do not cover it, and do not make one up."
)
NO_SOURCES_NOTE = (
    "No passage in the selected documents matched the user's question. Say that the "
    "documents do not cover it before answering from general knowledge, if at all."
)

FOLLOW_UP_WORDS = 5  # fewer words than this: a follow-up

_CITATION = re.compile(r"\[(\s*\d{1,3}(?:\s*[,;]\s*\d{1,3})*\s*)\]")


def retrieval_query(history: Sequence[ChatMessage]) -> str:
    """What to search for: the latest user turn. A short follow-up ("and on Linux?") also
    carries the turn before it, so the search knows what it refers to."""
    turns = [m.content for m in history if m.role == "user" and m.content.strip()]
    if not turns:
        return ""
    latest = turns[-1]
    if len(latest.split()) < FOLLOW_UP_WORDS and len(turns) > 1:
        return f"{turns[-2]}\n{latest}"
    return latest


def with_sources(history: Sequence[ChatMessage], sources: Sequence[Source]) -> list[ChatMessage]:
    """Adds the fenced passages to the system message (creating one if needed)."""
    if sources:
        context = (
            CITATION_INSTRUCTIONS
            + "\n\n"
            + fence_untrusted([(f"[{s.number}] {s.label}", s.prompt_text) for s in sources])
        )
    else:
        context = NO_SOURCES_NOTE
    messages = list(history)
    for index, message in enumerate(messages):
        if message.role == "system":
            messages[index] = ChatMessage("system", f"{message.content}\n\n{context}")
            return messages
    return [ChatMessage("system", context), *messages]


def cited_numbers(answer: str, count: int) -> set[int]:
    """Source numbers the answer cites (``[2]``, ``[1, 3]``, ``[2][3]``), within range."""
    numbers: set[int] = set()
    for match in _CITATION.finditer(answer):
        for part in re.split(r"[,;]", match.group(1)):
            number = int(part)
            if 1 <= number <= count:
                numbers.add(number)
    return numbers


def stored_sources(sources: Sequence[Source], answer: str) -> list[dict[str, object]]:
    cited = cited_numbers(answer, len(sources))
    return [source.public(used=source.number in cited) for source in sources]
