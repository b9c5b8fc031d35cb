"""Trimming history to the context window (token counter supplied by the provider)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from onebox.llm.base import ChatMessage, ContextWindowExceededError
from onebox.llm.context import fit_to_context


def words(messages: Sequence[ChatMessage]) -> int:
    return sum(len(m.content.split()) + 1 for m in messages)


def conversation(turns: int) -> list[ChatMessage]:
    history = [ChatMessage("system", "be brief")]
    for index in range(turns):
        history.append(ChatMessage("user", f"question {index} " + "x " * 8))
        history.append(ChatMessage("assistant", f"answer {index} " + "y " * 8))
    history.append(ChatMessage("user", "final question"))
    return history


def test_everything_fits() -> None:
    history = conversation(2)
    assert fit_to_context(history, words, context_size=1000, reserve_for_output=100) == history


def test_oldest_turns_go_first_and_system_stays() -> None:
    history = conversation(10)
    kept = fit_to_context(history, words, context_size=100, reserve_for_output=40)
    assert kept[0] == history[0]
    assert kept[-1] == history[-1]
    assert words(kept) <= 60
    assert kept[1].role == "user"
    # The kept turns are the newest contiguous ones.
    assert kept[1:] == history[len(history) - len(kept) + 1 :]
    # And as many as fit: one more turn would overflow.
    bigger = history[len(history) - len(kept) - 1 :]
    assert words([history[0], *bigger]) > 60


def test_newest_message_alone_too_big() -> None:
    history = [ChatMessage("system", "s"), ChatMessage("user", "w " * 500)]
    with pytest.raises(ContextWindowExceededError, match="context window"):
        fit_to_context(history, words, context_size=100, reserve_for_output=10)
