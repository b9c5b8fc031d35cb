"""Conversation titles: the first-line fallback, and a short title the model writes after
the first exchange, in the background, never holding up the reply.

A title is plain text: whatever markdown the user typed or the model answered with is taken
off. A title the user set (at creation or by renaming) is never replaced: the model's title
is written with a conditional UPDATE that only touches a conversation whose title is still
the automatic one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import TYPE_CHECKING

from sqlalchemy import update

from onebox.chat.models import Conversation
from onebox.llm.base import (
    ChatMessage,
    ChatRequest,
    GenerationParams,
    ProviderError,
    TextDelta,
    Usage,
)
from onebox.llm.router import Route, stream_with_fallbacks
from onebox.usage.service import GenerationMeter

if TYPE_CHECKING:
    from onebox.chat.models import Message
    from onebox.chat.turn import Turn

logger = logging.getLogger(__name__)

TITLE_SOURCE = "title"  # usage rows of title requests
TITLE_LENGTH = 80  # the fallback (first line of the first message)
MODEL_TITLE_LENGTH = 60
_EXCHANGE_CHARS = 2000  # of the question and of the answer, shown to the model

TITLE_INSTRUCTIONS = (
    "You name conversations. Reply with a short title (at most six words) for the "
    "conversation so far, in the language it is written in. Plain text only: no quotes, no "
    "markdown, no punctuation at the end, nothing else."
)
TITLE_REQUEST = "Write the title of this conversation now."

_RULE_OR_FENCE = re.compile(r"^\s*(?:([-*_=])(?:\s*\1){2,}\s*$|```|~~~)")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_LINE_PREFIX = re.compile(r"^\s*(?:#{1,6}\s+|>\s*|[-*+]\s+|\d+[.)]\s+)+")
_EMPHASIS = re.compile(r"(\*\*|__|~~)(.+?)\1")
_SINGLE = re.compile(r"(?<![\w*])([*_])(?=\S)(.+?)(?<=\S)\1(?![\w*])")
_LABEL = re.compile(r"^\s*[*_]*title[*_]*\s*[:\uff1a-][*_]*\s*", re.IGNORECASE)
_QUOTES = "\"'`\u201c\u201d\u2018\u2019\u00ab\u00bb\u201e\u201a\u300c\u300d\u300e\u300f"
_TRAILING = ".,;:!?\u2026\u3002\u3001\uff0c\uff1b\uff1a\uff01\uff1f \t-\u2013\u2014"


def strip_markdown(line: str) -> str:
    """One line of markdown as the plain text a reader sees."""
    if _RULE_OR_FENCE.match(line):
        return ""
    text = _LINE_PREFIX.sub("", line)
    text = _LINK.sub(r"\1", text)
    text = re.sub(r"`([^`]*)`", r"\1", text)
    for _ in range(3):  # nested: ***both*** and **_mixed_**
        text = _EMPHASIS.sub(r"\2", text)
        text = _SINGLE.sub(r"\2", text)
    text = re.sub(r"#{1,6}\s*$", "", text)  # closing hashes of "## Heading ##"
    return " ".join(text.split())


def _clamp(text: str, length: int) -> str:
    if len(text) <= length:
        return text
    cut = text[: length - 1]
    if " " in cut[length // 2 :]:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(_TRAILING) + "…"


def title_from(content: str) -> str:
    """The fallback title: the first non-blank line of the first message, as plain text."""
    for line in content.splitlines():
        if plain := strip_markdown(line):
            return _clamp(plain, TITLE_LENGTH)
    return ""


def clean_model_title(raw: str) -> str:
    """The model's answer as a title: its first line with text, no markdown, no label, no
    surrounding quotes, no trailing punctuation, at most ``MODEL_TITLE_LENGTH`` characters."""
    for line in raw.splitlines():
        text = line
        for _ in range(2):  # '"## Title"' is quoted markdown, "## 'Title'" the other way
            text = strip_markdown(_LABEL.sub("", text))
            text = text.strip(_QUOTES + " ").rstrip(_TRAILING).strip(_QUOTES + " ")
        if text:
            return _clamp(text, MODEL_TITLE_LENGTH)
    return ""


def title_request(question: str, answer: str) -> ChatRequest:
    return ChatRequest(
        messages=[
            ChatMessage("system", TITLE_INSTRUCTIONS),
            ChatMessage("user", question[:_EXCHANGE_CHARS]),
            ChatMessage("assistant", answer[:_EXCHANGE_CHARS]),
            ChatMessage("user", TITLE_REQUEST),
        ],
        params=GenerationParams(max_tokens=32, temperature=0.2, top_p=0.9),
        purpose="title",
    )


class TitleWriter:
    """Background title tasks of this process; ``shutdown`` cancels the ones still running."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()

    def after_reply(self, turn: Turn, reply: Message) -> asyncio.Task[None] | None:
        """Called when a stored reply completed. Starts a title task for the first exchange
        of a conversation whose title is still the automatic one."""
        conversation, question = turn.request.conversation, turn.user_message
        if conversation is None or question is None or not turn.turns.settings.auto_titles:
            return None
        if conversation.title_source != "auto" or question.parent_id is not None:
            return None
        if not reply.content.strip():
            return None
        task = asyncio.create_task(
            self._write(turn, conversation.id, question.content, reply.content),
            name=f"title-{conversation.id}",
        )
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _write(self, turn: Turn, conversation_id: str, question: str, answer: str) -> None:
        try:
            title = await self._ask(turn, question, answer)
            if not title:
                logger.info("The model gave no usable title for %s", conversation_id)
                return
            async with turn.turns.sessionmaker() as session:
                await session.execute(
                    update(Conversation)
                    .where(Conversation.id == conversation_id, Conversation.title_source == "auto")
                    .values(title=title, title_source="model")
                    .execution_options(synchronize_session=False)
                )
                await session.commit()
        except asyncio.CancelledError:
            raise
        except ProviderError as exc:
            logger.warning("No title for %s: the model failed: %s", conversation_id, exc)
        except Exception:
            logger.warning("No title for %s", conversation_id, exc_info=True)

    async def _ask(self, turn: Turn, question: str, answer: str) -> str:
        # The model that answered writes the title (its fallbacks if it is down now). Its
        # tokens are the caller's like the reply's: one usage row, source "title".
        route = Route(requested=turn.route.model)
        meter, usage = GenerationMeter(), None
        parts: list[str] = []
        stream = stream_with_fallbacks(turn.turns.models, route, title_request(question, answer))
        try:
            async with contextlib.aclosing(stream) as chunks:
                async for chunk in chunks:
                    if isinstance(chunk, TextDelta):
                        meter.token()
                        parts.append(chunk.text)
                    elif isinstance(chunk, Usage):
                        usage = chunk
        except ProviderError as exc:
            meter.finish()
            turn.turns.record_generation(
                turn, route, meter, usage, "error", type(exc).__name__,
                source=TITLE_SOURCE, timed=False,
            )  # fmt: skip
            raise
        meter.finish()
        turn.turns.record_generation(
            turn, route, meter, usage, "complete", None, source=TITLE_SOURCE, timed=False
        )
        if usage is not None and turn.admission is not None:  # the caller's token limits
            await turn.admission.charge(usage.prompt_tokens + usage.completion_tokens)
        return clean_model_title("".join(parts))

    async def shutdown(self) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
