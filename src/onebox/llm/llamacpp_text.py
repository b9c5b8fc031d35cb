"""Token bytes to streamable text: complete UTF-8 only, and nothing from a stop string on."""

from __future__ import annotations

import codecs
from collections.abc import Iterable


class TextAssembler:
    """Feed each token's bytes; get back the text that is safe to show now.

    A character split across tokens is held until its last byte arrives (bytes that can never
    be valid UTF-8 become U+FFFD). Text that could be the start of a stop string is held until it can no longer be;
    once a stop string appears, the text before it is returned and :attr:`stopped` is set.
    Because a possible stop-string prefix is never released, a stop string can only ever
    appear inside the held text.
    """

    def __init__(self, stops: Iterable[str] = ()) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = tuple(dict.fromkeys(stop for stop in stops if stop))
        self._longest = max((len(stop) for stop in self._stops), default=0)
        self._held = ""
        self.stopped = False

    def feed(self, data: bytes) -> str:
        if self.stopped:
            return ""
        self._held += self._decoder.decode(data)
        return self._release(final=False)

    def flush(self) -> str:
        """The rest, at the end of generation. The bytes of a character the generation
        stopped in the middle of (at max_tokens) are dropped, not shown as U+FFFD."""
        if self.stopped:
            return ""
        self._decoder.reset()
        return self._release(final=True)

    def _release(self, *, final: bool) -> str:
        held = self._held
        if not self._stops:
            self._held = ""
            return held
        cut = min((i for stop in self._stops if (i := held.find(stop)) >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._held = ""
            return held[:cut]
        keep = 0 if final else self._partial_stop_suffix(held)
        self._held = held[len(held) - keep :]
        return held[: len(held) - keep]

    def _partial_stop_suffix(self, text: str) -> int:
        """Length of the longest end of ``text`` that begins some stop string."""
        for size in range(min(len(text), self._longest - 1), 0, -1):
            tail = text[-size:]
            if any(stop.startswith(tail) for stop in self._stops):
                return size
        return 0
