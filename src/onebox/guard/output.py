"""The output side of the guard over one reply: the leak check, then PII redaction."""

from __future__ import annotations

from onebox.guard.leak import LeakFilter, PromptSecret
from onebox.guard.pii import PiiPolicy, StreamRedactor


class OutputFilter:
    """Feed it every delta of a reply and call :meth:`finish` when the reply ends; both
    return what may be shown. Check ``blocked`` after each call: once the reply leaked its
    system prompt nothing more comes out. Text held back by either stage is released by
    :meth:`finish`, so a normal reply loses nothing."""

    def __init__(self, secret: PromptSecret | None, pii: PiiPolicy | None) -> None:
        self.leak = LeakFilter(secret) if secret is not None else None
        self.redactor = StreamRedactor(pii) if pii is not None else None
        self._finished = False

    @property
    def blocked(self) -> bool:
        return self.leak is not None and self.leak.triggered

    def feed(self, delta: str) -> str:
        if self._finished:
            raise RuntimeError("feed() after finish()")
        text = self.leak.feed(delta) if self.leak is not None else delta
        if self.redactor is None or not text:
            return text
        return self.redactor.feed(text)

    def finish(self) -> str:
        if self._finished:
            return ""
        self._finished = True
        text = self.leak.flush() if self.leak is not None else ""
        if self.blocked or self.redactor is None:
            return text
        return self.redactor.feed(text) + self.redactor.flush()

    def salvage(self) -> str:
        """The reply broke off (the provider failed): what the leak check held is released
        as at a normal end, but what the PII stage holds stays held, since a value cut
        short there would no longer be recognised."""
        if self._finished:
            return ""
        self._finished = True
        text = self.leak.flush() if self.leak is not None else ""
        if self.blocked or self.redactor is None or not text:
            return text
        return self.redactor.feed(text)
