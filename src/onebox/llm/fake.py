"""A deterministic provider for tests and demos, registered exactly like the real ones."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from onebox.core.settings import Settings
from onebox.llm.base import (
    Capabilities,
    ChatProvider,
    ChatRequest,
    ProviderError,
    StreamChunk,
    TextDelta,
    Usage,
)

_TOKEN = re.compile(r"\s*\S+|\s+")
_PASSAGE_ONE = re.compile(
    r"<<<(UNTRUSTED-[0-9a-f]+) passage=1 [^\n]*>>>\n(.*?)\n<<<END \1>>>", re.S
)


def _first_passage_sentence(request: ChatRequest) -> str | None:
    for message in request.messages:
        if message.role == "system" and (match := _PASSAGE_ONE.search(message.content)):
            text = " ".join(match.group(2).split())
            sentence = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
            return sentence[:300]
    return None


@dataclass
class FakeProvider(ChatProvider):
    """Replies ``reply`` (default: echoes the last user message), one word a chunk.

    Asked for a conversation's title (``purpose="title"``), it answers with the first user
    message, as a model naming the conversation after its question would.
    ``cite``: when the prompt carries retrieved passages, reply with the first sentence of
    passage 1 followed by ``[1]`` (an extractive stand-in for a model that cites).
    ``token_delay`` seconds pass between chunks; ``repeat`` repeats the reply that many
    times (long streams for disconnect tests); ``fail_after`` raises a ProviderError
    after that many chunks; ``fail_before_start`` is raised before anything is streamed.
    """

    reply: str | None = None
    token_delay: float = 0.0
    repeat: int = 1
    fail_after: int | None = None
    fail_before_start: ProviderError | None = None
    cite: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> FakeProvider:
        return cls(
            model_name=settings.model_name,
            context_size=settings.context_size,
            capabilities=Capabilities(local=True),
            cite="cite" in settings.model_name,
        )

    def reply_for(self, request: ChatRequest) -> str:
        if self.reply is not None:
            return self.reply
        if request.purpose == "title":
            # A stand-in for a model that names the conversation: its first question.
            return next((m.content for m in request.messages if m.role == "user"), "")
        if self.cite and (quoted := _first_passage_sentence(request)):
            return f"According to the documents, {quoted} [1]"
        last_user = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        return f"Echo: {last_user}"

    async def stream_chat(self, request: ChatRequest) -> AsyncGenerator[StreamChunk]:
        if self.fail_before_start is not None:
            raise self.fail_before_start
        tokens = _TOKEN.findall(self.reply_for(request)) * self.repeat
        limit = request.params.max_tokens
        emitted = 0
        for token in tokens[:limit]:
            if self.fail_after is not None and emitted >= self.fail_after:
                raise ProviderError("The fake provider failed as configured")
            if self.token_delay:
                await asyncio.sleep(self.token_delay)
            emitted += 1
            yield TextDelta(token)
        yield Usage(
            prompt_tokens=self.count_tokens(request.messages),
            completion_tokens=emitted,
            finish_reason="length" if len(tokens) > limit else "stop",
        )
