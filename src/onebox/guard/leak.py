"""Stopping a reply that leaks its system prompt, before the leak reaches the reader.

Two signals: the canary planted in the prompt (:mod:`onebox.guard.canary`), and *echo* -
the reply reproducing a long verbatim run of the prompt's own instructions, which catches
a model that recites its prompt without the token (or before reaching it).

Echo compares words: ``\\w+`` runs, NFKC and case-folded, so whitespace, line breaks and
markdown around them do not matter. A reply trips it with ``echo_words`` consecutive words
that also appear consecutively in the instructions. Ten is the default. By chance, ordinary
prose shares at most three consecutive words with the app's instruction texts
(``bench/bench_prompt_echo.py`` (a): the 49 quality-set documents and Python's reference
topics against the default prompt, the citation instructions, the no-sources note and the
fence note); the embedded model's real RAG answers reuse at most two (b), while the recital
it was talked into ran 19 words (c). An answer may reuse an instruction's clause on purpose - "the documents do not
cover it" (6 words), "the sources do not contain the answer" (7) - and such clauses are
rarely longer than a sentence's main part; ten stays above both, while a recital is still
stopped at its tenth word, before any of it is shown. A prompt shorter than ten words is
guarded by the canary alone. Retrieved passages are appended to the system prompt in RAG
mode; quoting them is the point, so the instructions compared exclude the fenced passages
(:func:`~onebox.guard.injection.without_fenced_passages`). The canary note is not compared
either: refusals echo its wording.

:class:`LeakFilter` holds back what could still turn out to be a leak - the current run of
words that match the instructions (fewer than ``echo_words``), the trailing partial word,
and any tail that could still become the canary - and releases it as soon as it cannot,
or at the end of the reply. When it trips, nothing it held is shown.
"""

from __future__ import annotations

import re
import unicodedata
from collections import deque
from dataclasses import dataclass

from onebox.guard.canary import CanaryWatch
from onebox.guard.injection import without_fenced_passages

_WORD = re.compile(r"\w+")
_WORD_CHARS = re.compile(r"\w*")
DEFAULT_ECHO_WORDS = 10
_MAX_GAP = 64  # characters between two words beyond which they no longer form a run


def _word_key(word: str) -> str:
    return (
        word
        if word.isascii() and word.islower()
        else unicodedata.normalize("NFKC", word).casefold()
    )


@dataclass(frozen=True, slots=True)
class PromptSecret:
    """What a reply must not reveal: the canary planted in the system prompt, and the
    prompt's instruction text (without its retrieved passages) for the echo check.
    ``echo_words`` 0 turns the echo check off."""

    canary: str | None = None
    instructions: str = ""
    echo_words: int = DEFAULT_ECHO_WORDS

    @classmethod
    def for_system_prompt(
        cls, content: str, canary: str | None, echo_words: int = DEFAULT_ECHO_WORDS
    ) -> PromptSecret:
        """``content`` is the system message as the model gets it, before the canary note."""
        return cls(canary, without_fenced_passages(content), echo_words)


class EchoWatch:
    """Finds ``echo_words`` consecutive words of ``instructions`` in a stream of text."""

    def __init__(self, instructions: str, echo_words: int) -> None:
        words = [_word_key(m.group()) for m in _WORD.finditer(instructions)]
        self.size = echo_words
        self.enabled = echo_words > 0 and len(words) >= echo_words
        # every run of 1..size words of the instructions, hashed (a collision only holds a
        # word back a little longer, or, at 2**-64, stops a reply)
        self._runs: set[int] = set()
        if self.enabled:
            for length in range(1, echo_words + 1):
                for start in range(len(words) - length + 1):
                    self._runs.add(hash(tuple(words[start : start + length])))
        # a word longer than this cannot be one of the instructions' words
        self._long_word = 2 * max((len(word) for word in words), default=0) + 8
        self._in_long_word = False  # its rest is skipped, not buffered
        self._recent: deque[tuple[str, int, int]] = deque(maxlen=max(echo_words, 1))
        self._text = ""  # a partial word at the end of the stream, starting at offset _base
        self._base = 0
        self._run_start: int | None = None  # where the current matching run starts
        self._run_words = 0  # and how many words it has
        self.triggered = False

    @property
    def hold_from(self) -> int:
        """Stream offset from which text may still belong to a leak: the current run, or
        else the word still being written."""
        return self._base if self._run_start is None else self._run_start

    def feed(self, delta: str) -> None:
        if not self.enabled or self.triggered:
            return
        if self._in_long_word:
            rest = _WORD_CHARS.match(delta)
            assert rest is not None
            self._base += rest.end()
            delta = delta[rest.end() :]
            if not delta:
                return
            self._in_long_word = False
        self._text += delta
        self._scan(final=False)

    def finish(self) -> None:
        """The stream ended: the trailing word is complete."""
        if self.enabled and not self.triggered:
            self._scan(final=True)

    def _scan(self, *, final: bool) -> None:
        """Takes in every complete word of ``_text``; keeps only a trailing partial one."""
        keep = len(self._text)
        for match in _WORD.finditer(self._text):
            start, end = self._base + match.start(), self._base + match.end()
            if match.end() == len(self._text) and not final:
                keep = match.start()
                break
            self._word(_word_key(match.group()), start, end)
            if self.triggered:
                return
        self._text = self._text[keep:]
        self._base += keep
        if len(self._text) > self._long_word:  # matches nothing, so it ends any run
            self._in_long_word = True
            self._base += len(self._text)
            self._text = ""
            self._recent.clear()
            self._run_start = None
        last_word_end = self._recent[-1][2] if self._recent else None
        if last_word_end is not None and self._base - last_word_end > _MAX_GAP:
            self._recent.clear()
            self._run_start = None

    def _word(self, key: str, start: int, end: int) -> None:
        if self._recent and start - self._recent[-1][2] > _MAX_GAP:
            self._recent.clear()
        self._recent.append((key, start, end))
        keys = [entry[0] for entry in self._recent]
        # the run ending here is at most one word longer than the one ending before
        longest = min(len(keys), 1 if self._run_start is None else self._run_words + 1)
        self._run_start = None
        for length in range(longest, 0, -1):
            if hash(tuple(keys[-length:])) in self._runs:
                if length >= self.size:
                    self.triggered = True
                else:
                    self._run_start = self._recent[-length][1]
                    self._run_words = length
                return


class LeakFilter:
    """Feed it every delta of a reply; ``feed`` and ``flush`` return the text that is safe
    to show. Once ``triggered`` (see ``reason``) they return nothing more."""

    def __init__(self, secret: PromptSecret) -> None:
        self._canary = CanaryWatch(secret.canary) if secret.canary else None
        echo = EchoWatch(secret.instructions, secret.echo_words)
        self._echo = echo if echo.enabled else None
        self._held = ""  # received, not yet shown; starts at stream offset _base
        self._base = 0
        self.reason: str | None = None

    @property
    def triggered(self) -> bool:
        return self.reason is not None

    def feed(self, delta: str) -> str:
        if self.triggered or not delta:
            return ""
        self._held += delta
        if self._canary is not None and self._canary.feed(delta):
            return self._trip("canary")
        release = len(self._held)
        if self._echo is not None:
            self._echo.feed(delta)
            if self._echo.triggered:
                return self._trip("echo")
            release = min(release, self._echo.hold_from - self._base)
        if self._canary is not None:
            release = min(release, self._canary.hold_from - self._base)
        out, self._held = self._held[:release], self._held[release:]
        self._base += release
        return out

    def flush(self) -> str:
        """The reply ended normally: whatever is still held is shown, unless its last word
        completes an echo."""
        if self._echo is not None and not self.triggered:
            self._echo.finish()
            if self._echo.triggered:
                return self._trip("echo")
        out, self._held = ("" if self.triggered else self._held), ""
        self._base += len(out)
        return out

    def _trip(self, reason: str) -> str:
        self.reason = reason
        self._held = ""
        return ""
