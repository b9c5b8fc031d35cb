"""Server-sent events from an OpenAI-compatible upstream to content deltas, and error bodies
to their fields (used by :mod:`onebox.llm.openai_compat`)."""

from __future__ import annotations

import json

import orjson

_loads = json.loads
_raw_decode = json.JSONDecoder().raw_decode
_fast_loads = orjson.loads


class _StreamBroken(Exception):
    """The body of a 200 response was not a valid completion stream."""


class _SseParser:
    """Server-sent events to content deltas, for the chunks of one response.

    Handles events split across reads, multi-line ``data:`` fields, CRLF/CR line ends,
    comments and other fields (ignored), ``[DONE]``, usage chunks and error events.
    """

    __slots__ = ("_data", "_pending", "done", "finish", "usage")

    def __init__(self) -> None:
        self._pending = b""
        self._data: list[bytes] = []
        self.done = False
        self.finish: object = None
        self.usage: object = None

    def feed(self, raw: bytes) -> list[str]:
        """The content deltas completed by this read, in order."""
        if self._pending:
            raw = self._pending + raw
        lines = _split_lines(raw) if b"\r" in raw else raw.split(b"\n")
        self._pending = lines.pop()
        contents: list[str] = []
        data = self._data
        for line in lines:
            if line:
                if line.startswith(b"data:"):
                    value = line[5:]
                    data.append(value[1:] if value[:1] == b" " else value)
                continue  # comments, event:, id:, retry:
            if not data:
                continue
            frame = data[0] if len(data) == 1 else b"\n".join(data)
            data.clear()
            if self.done:
                continue
            if frame == b"[DONE]":
                self.done = True
                continue
            try:
                event = _fast_loads(frame)  # every token's event: orjson, 2x json's speed
            except ValueError:
                event = _lenient(frame)
            if type(event) is not dict:
                raise _StreamBroken(f"unexpected chunk {frame[:200]!r}")
            choices = event.get("choices")
            if choices:
                choice = choices[0]
                delta = choice.get("delta")
                if delta:
                    content = delta.get("content")
                    if content:
                        contents.append(content)
                reason = choice.get("finish_reason")
                if reason:
                    self.finish = reason
            elif "error" in event:
                raise _StreamBroken(f"error event: {_error_fields(frame)[0]}")
            usage = event.get("usage")
            if usage:
                self.usage = usage
        return contents

    def end(self) -> list[str]:
        """At the end of the body: flush an unterminated last event, check completeness."""
        contents = self.feed(b"\n\n")
        if not self.done and self.finish is None:
            raise _StreamBroken("stream ended without [DONE] or a finish_reason")
        self.done = True
        return contents

    def whole(self, body: bytes) -> list[str]:
        """A non-streamed ``chat.completion`` answer."""
        try:
            parsed = _loads(body)
            choice = parsed["choices"][0]
            text = choice["message"].get("content") or ""
            self.finish = choice.get("finish_reason")
            self.usage = parsed.get("usage")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise _StreamBroken(f"unexpected JSON answer {body[:200]!r}") from exc
        self.done = True
        return [str(text)] if text else []


def _lenient(frame: bytes) -> object:
    """What orjson refuses but an event may still carry: text after the JSON value, leading
    whitespace, other encodings, integers past 64 bits."""
    try:
        return _raw_decode(frame.decode())[0]
    except ValueError:
        try:
            return _loads(frame)
        except ValueError as exc:
            raise _StreamBroken(f"malformed chunk {frame[:200]!r}") from exc


def _error_fields(body: bytes) -> tuple[str, str | None, str | None, str | None]:
    """``(message, type, code, param)`` from an OpenAI-style (or similar) error body."""
    try:
        parsed = _loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return (text[:500] or "(empty body)"), None, None, None
    if isinstance(parsed, dict):
        error = parsed.get("error", parsed)
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail") or json.dumps(error)[:500]
            return (
                str(message),
                _str_or_none(error.get("type")),
                _str_or_none(error.get("code")),
                _str_or_none(error.get("param")),
            )
        if isinstance(error, str):  # {"error": "..."} (Ollama, TGI)
            return error, None, None, None
        detail = parsed.get("detail")
        if detail is not None:  # FastAPI-style servers
            return str(detail)[:500], None, None, None
    return json.dumps(parsed)[:500], None, None, None


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _split_lines(raw: bytes) -> list[bytes]:
    """Split on CRLF, LF or a lone CR. The last element is the unfinished line; a trailing
    CR stays on it, as it may be the first half of a CRLF split across reads."""
    held = b""
    if raw.endswith(b"\r"):
        raw, held = raw[:-1], b"\r"
    lines = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    lines[-1] += held
    return lines
