"""Putting retrieved passages in front of the model, and reading its citations back."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace

from onebox.documents.search.retrieval import Source
from onebox.guard import fence_untrusted
from onebox.llm.base import ChatMessage

CITATION_INSTRUCTIONS = (
    "Answer the user's latest question using the numbered sources below. After each "
    "sentence that uses a source, cite it by its number in square brackets, like [1] or "
    "[2][3]. Cite only sources you actually used. If the sources do not contain the answer, "
    "say that the documents do not cover it, and do not make one up."
)
# For small local models (the default 135M one): short, literal, with the abstention phrase
# spelled out. bench/bench_answers.py compares it with the instructions above.
BRIEF_INSTRUCTIONS = (
    "Answer the user's question in one or two short sentences, using only the numbered "
    "sources below. Reuse the sources' own words. Put the source number in square brackets "
    "after each sentence, like [1]. If the sources do not answer the question, reply only: "
    "I couldn't find this in your documents."
)
PROMPT_STYLES = ("citations", "brief", "quote")
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


def with_sources(
    history: Sequence[ChatMessage],
    sources: Sequence[Source],
    *,
    style: str = "citations",
    quotes: Sequence[tuple[int, str]] = (),
) -> list[ChatMessage]:
    """Adds the fenced passages to the system message (creating one if needed).
    ``style``: "citations" (the full instructions), "brief" (for small models) or "quote"
    (brief, plus the best-matching sentences named first)."""
    if sources:
        instructions = CITATION_INSTRUCTIONS if style == "citations" else BRIEF_INSTRUCTIONS
        fenced = [(f"[{s.number}] {s.label}", s.prompt_text) for s in sources]
        if style == "quote" and quotes:
            instructions += " The last passage repeats the sentences that best match it."
            fenced.append(
                ("best-matching sentences", " ".join(f"{text} [{n}]" for n, text in quotes))
            )
        context = instructions + "\n\n" + fence_untrusted(fenced)
    else:
        context = NO_SOURCES_NOTE
    messages = list(history)
    for index, message in enumerate(messages):
        if message.role == "system":
            messages[index] = ChatMessage("system", f"{message.content}\n\n{context}")
            return messages
    return [ChatMessage("system", context), *messages]


def passage_budget(
    count_tokens: Callable[[Sequence[ChatMessage]], int],
    history: Sequence[ChatMessage],
    sources: Sequence[Source],
    style: str,
    allowed: int,
) -> int | None:
    """Prompt tokens left for passage text when the whole prompt may be ``allowed`` tokens,
    or ``None`` when every passage fits whole."""
    if not sources or count_tokens(with_sources(history, sources, style=style)) <= allowed:
        return None
    bare = count_tokens(
        with_sources(history, [replace(sources[0], text="", context="")], style=style)
    )
    return max(allowed - bare, 0)


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
