"""Applies the guards to the request paths: input cleaning and prompt-injection policy on
the way in; canary detection and PII redaction on the way out."""

from __future__ import annotations

import hashlib
import logging
import unicodedata
from collections import OrderedDict
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass

from onebox.core.errors import APIError
from onebox.core.messages import ChatMessage, ProviderError, StreamChunk, TextDelta
from onebox.core.settings import Settings
from onebox.guard import (
    InjectionPolicy,
    OutputFilter,
    PiiPolicy,
    PromptSecret,
    apply,
    injection,
    injection_rules,
    new_canary,
    redact,
    system_prompt_with_canary,
)
from onebox.guard import text as guard_text

logger = logging.getLogger(__name__)

PASSAGE_CACHE = 2048  # screened passages remembered (least recently used go first)


class OutputBlockedError(ProviderError):
    """The reply revealed the canary (leaked protected instructions) and was stopped."""


@dataclass(frozen=True)
class InputVerdict:
    text: str
    flagged: bool
    signals: tuple[str, ...] = ()


class Guard:
    def __init__(self, settings: Settings) -> None:
        self.pii = PiiPolicy.from_names(settings.pii_redaction) if settings.pii_redaction else None
        self.injection = (
            None
            if settings.injection_action == "off"
            else InjectionPolicy(
                action=settings.injection_action, threshold=settings.injection_threshold
            )
        )
        self.canary_enabled = settings.canary_enabled
        self.prompt_echo_words = settings.prompt_echo_words
        if self.pii is not None:
            redact("", self.pii)  # compile the patterns now, not on the first reply
        # Stored passages come back again and again (a search screens each hit and its
        # neighbours: ~10 scans, several ms); the verdict depends on the text alone.
        self._passages: OrderedDict[str, InputVerdict | None] = OrderedDict()
        # What ingestion stores with a passage that screened clean (``passage_mark``), so
        # retrieval need not scan it again while the policy and the rules are the same.
        self.passage_mark = screening_mark(self.injection) if self.injection else None

    def check_input(self, text: str) -> InputVerdict:
        """Raises a 400 when the deployment blocks prompt injection; may strip it instead."""
        if self.injection is None:
            return InputVerdict(text, False)
        result = apply(text, self.injection)
        signals = tuple(result.report.signals)
        if result.blocked:
            raise APIError(
                400,
                "This message looks like a prompt-injection attempt and was blocked "
                f"({', '.join(signals[:3])}).",
                "invalid_request_error",
                param="content",
                code="prompt_injection_blocked",
            )
        if result.flagged:
            logger.warning("Prompt-injection signals in input: %s", ", ".join(signals))
        return InputVerdict(result.text, result.flagged, signals)

    def screen_passage(self, text: str, mark: str | None = None) -> InputVerdict | None:
        """Retrieved passages are untrusted too: the injection policy strips them, or drops
        them (``None``) when it blocks; flagged passages are kept but marked. ``mark``: what
        ingestion stored for the passage (:meth:`clean_mark`); when it is this guard's
        ``passage_mark`` the passage screened clean under the same policy and rules."""
        if self.injection is None or (mark is not None and mark == self.passage_mark):
            return InputVerdict(text, False)
        if text in self._passages:
            self._passages.move_to_end(text)
            return self._passages[text]
        result = apply(text, self.injection)
        verdict = (
            None
            if result.blocked
            else InputVerdict(result.text, result.flagged, tuple(result.report.signals))
        )
        self._passages[text] = verdict
        if len(self._passages) > PASSAGE_CACHE:
            self._passages.popitem(last=False)
        return verdict

    def clean_mark(self, text: str) -> str | None:
        """Screens a passage at ingestion: ``passage_mark`` when it passes unflagged and
        unchanged (retrieval then trusts the mark), else ``None`` (screened again when
        retrieved, and handled as the policy says). Safe to call from a worker thread."""
        if self.injection is None:
            return None
        result = apply(text, self.injection)  # not remembered: retrieval will not ask again
        clean = not result.flagged and not result.blocked and result.text == text
        return self.passage_mark if clean else None

    def protect_system_prompt(
        self, messages: Sequence[ChatMessage]
    ) -> tuple[list[ChatMessage], PromptSecret | None]:
        """Adds a canary to the first system message and returns what the reply must not
        reveal (pass it to :meth:`filter_output`); none without a system message."""
        if not self.canary_enabled and not self.prompt_echo_words:
            return list(messages), None
        for index, message in enumerate(messages):
            if message.role == "system":
                canary = new_canary() if self.canary_enabled else None
                secret = PromptSecret.for_system_prompt(
                    message.content, canary, self.prompt_echo_words
                )
                if canary is None:
                    return list(messages), secret
                protected = ChatMessage(
                    "system", system_prompt_with_canary(message.content, canary)
                )
                return [*messages[:index], protected, *messages[index + 1 :]], secret
        return list(messages), None

    async def filter_output(
        self, stream: AsyncGenerator[StreamChunk], secret: PromptSecret | None
    ) -> AsyncGenerator[StreamChunk]:
        output = OutputFilter(secret, self.pii)
        try:
            try:
                async for chunk in stream:
                    if isinstance(chunk, TextDelta):
                        text, ended = output.feed(chunk.text), None
                    else:
                        text, ended = output.finish(), chunk
                    if output.blocked:
                        raise _blocked(output)
                    if text:
                        yield TextDelta(text)
                    if ended is not None:
                        yield ended
            except ProviderError as exc:
                if isinstance(exc, OutputBlockedError):
                    raise
                text = output.salvage()
                if output.blocked:
                    raise _blocked(output) from exc
                if text:
                    yield TextDelta(text)
                raise
            if tail := output.finish():
                yield TextDelta(tail)
            if output.blocked:
                raise _blocked(output)
        finally:
            await stream.aclose()


def _blocked(output: OutputFilter) -> OutputBlockedError:
    assert output.leak is not None
    logger.warning("Reply stopped: it leaked the system prompt (%s)", output.leak.reason)
    return OutputBlockedError("The reply was stopped: it revealed protected instructions")


def screening_mark(policy: InjectionPolicy) -> str:
    """Names the policy and the code that screens with it: the scanner's and its rules'
    source, so a passage marked clean under other rules or another threshold is scanned
    again."""
    version = f"{policy.action}|{policy.threshold}|{unicodedata.unidata_version}"
    digest = hashlib.sha256(version.encode())
    for module in (injection, injection_rules, guard_text):
        with open(str(module.__file__), "rb") as source:
            digest.update(source.read())
    return digest.hexdigest()[:16]
