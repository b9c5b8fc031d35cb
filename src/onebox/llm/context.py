"""Fits a conversation into a model's context window by dropping the oldest turns."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from onebox.llm.base import ChatMessage, ContextWindowExceededError

TokenCounter = Callable[[Sequence[ChatMessage]], int]


def fit_to_context(
    messages: Sequence[ChatMessage],
    count_tokens: TokenCounter,
    context_size: int,
    reserve_for_output: int,
) -> list[ChatMessage]:
    """Keep every system message and the newest turns whose prompt fits the budget.

    The newest message is always kept; if it cannot fit even alone with the system
    prompt, :class:`ContextWindowExceededError` is raised so the caller can say so
    instead of silently answering a truncated question.
    """
    budget = context_size - reserve_for_output
    system = [message for message in messages if message.role == "system"]
    turns = [message for message in messages if message.role != "system"]
    if not turns:
        return list(system)

    if count_tokens([*system, turns[-1]]) > budget:
        raise ContextWindowExceededError(
            f"The message is too long for the model's context window of {context_size} "
            f"tokens ({reserve_for_output} are reserved for the answer). Shorten it."
        )

    # Binary search for the smallest number of dropped turns that fits: prompt size is
    # monotonic in the number of kept turns, and counting a prompt costs one tokenization.
    low, high = 0, len(turns) - 1
    while low < high:
        middle = (low + high) // 2
        if count_tokens([*system, *turns[middle:]]) <= budget:
            high = middle
        else:
            low = middle + 1
    kept = turns[low:]
    # A reply without the question it answers confuses the model: start on a user turn.
    while len(kept) > 1 and kept[0].role == "assistant":
        kept = kept[1:]
    return [*system, *kept]
