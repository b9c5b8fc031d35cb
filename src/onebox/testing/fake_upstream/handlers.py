"""Request handlers of the fake upstream: routing, auth, config, models, embeddings and
chat completions (whole or streamed)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, fields
from typing import Any

from onebox.testing.fake_upstream.embeddings import embeddings_reply, parse_embeddings_request
from onebox.testing.fake_upstream.protocol import _DONE, _SSE, _head, _Protocol, _Request, _Stream
from onebox.testing.fake_upstream.replies import (
    DEFAULT_FAULT_TOKENS,
    SLOW_FIRST_BYTE_SECONDS,
    _apply_stop,
    _text_of,
    prompt_tokens_for,
    reply_deltas,
)
from onebox.testing.fake_upstream.state import (
    _INJECTED_STATUS,
    Options,
    _ApiError,
    _coerce,
    _invalid,
    _parse_json_object,
)


class _Connection(_Protocol):
    def _dispatch(self, request: _Request) -> None:
        state = self.state
        path = request.path
        method = request.method
        if path.startswith("/v1/"):
            state.stats.requests += 1
            self._authorize(request)
            if path == "/v1/chat/completions":
                self._require(method, b"POST")
                state.stats.chat_requests += 1
                self._chat(request)
            elif path == "/v1/embeddings":
                self._require(method, b"POST")
                state.stats.embedding_requests += 1
                self._embeddings(request)
            elif path == "/v1/models":
                self._require(method, b"GET")
                self._models()
            else:
                raise _ApiError(404, f"Unknown path {path}", code="not_found")
        elif path == "/health":
            self._send_json({"status": "ok"})
        elif path == "/_stats":
            self._send_json(asdict(state.stats))
        elif path == "/_reset":
            self._require(method, b"POST")
            state.reset()
            self._send_json(asdict(state.stats))
        elif path == "/_config":
            self._configure(request)
        elif path == "/_last_request":
            self._send_json(state.last_request)
        else:
            raise _ApiError(404, f"Unknown path {path}", code="not_found")

    @staticmethod
    def _require(method: bytes, expected: bytes) -> None:
        if method != expected:
            raise _ApiError(405, f"Method {method.decode('latin-1')} not allowed here")

    def _authorize(self, request: _Request) -> None:
        key = self.state.options.api_key
        if key is None:
            return
        given = (request.authorization or b"").decode("latin-1")
        if given != f"Bearer {key}":
            # Like some real servers, echo what was sent: lets tests prove the gateway
            # redacts upstream messages.
            shown = given.removeprefix("Bearer ") or "(none)"
            raise _ApiError(401, f"Incorrect API key provided: {shown}", code="invalid_api_key")

    def _configure(self, request: _Request) -> None:
        state = self.state
        if request.method == b"POST":
            changes = _parse_json_object(request.body)
            known = {item.name for item in fields(Options)}
            unknown = sorted(set(changes) - known)
            if unknown:
                raise _invalid(unknown[0], f"unknown option {unknown[0]!r}")
            try:
                candidate = Options(**{**asdict(state.options), **_coerce(changes)})
                candidate.validate()
            except (TypeError, ValueError) as exc:
                raise _invalid("options", str(exc)) from exc
            state.options = candidate
            state.failures_injected = 0
        self._send_json(asdict(state.options))

    def _models(self) -> None:
        name = self.state.options.model or "fake-model"
        self._send_json(
            {
                "object": "list",
                "data": [{"id": name, "object": "model", "created": 0, "owned_by": "onebox"}],
            }
        )

    def _check_model(self, body: dict[str, Any]) -> str:
        requested = body.get("model")
        if not isinstance(requested, str) or not requested:
            raise _invalid("model", "you must provide a model parameter")
        expected = self.state.options.model
        if expected is not None and requested != expected:
            raise _ApiError(
                404,
                f"The model `{requested}` does not exist or you do not have access to it.",
                code="model_not_found",
                param="model",
            )
        return requested

    def _injected_status(self) -> bool:
        """Answer with the configured status error or go silent; True when it did."""
        mode = self.state.options.fail_mode
        if mode in _INJECTED_STATUS:
            if not self.state.take_failure():
                return False
            status, code, message = _INJECTED_STATUS[mode]
            error_type = "rate_limit_error" if status == 429 else "server_error"
            extra = b"retry-after: 1\r\n" if status == 429 else b""
            self._send_error(_ApiError(status, message, error_type, code), extra)
            return True
        if mode == "slow-first-byte":
            if not self.state.take_failure():
                return False
            self._begin_in_flight(streaming=False)
            self.timer = self.loop.call_later(SLOW_FIRST_BYTE_SECONDS, self._abandon)
            return True
        return False

    def _embeddings(self, request: _Request) -> None:
        body = _parse_json_object(request.body)
        model = self._check_model(body)
        inputs, dimensions, encoding = parse_embeddings_request(body)
        if self._injected_status():
            return
        self.state.stats.completed += 1
        self._send(200, embeddings_reply(model, inputs, dimensions, encoding))

    def _chat(self, request: _Request) -> None:
        state = self.state
        options = state.options
        body = _parse_json_object(request.body)
        state.last_request = body
        model = self._check_model(body)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _invalid("messages", "messages must be a non-empty array")
        contents: list[str] = []
        last_user = ""
        for message in messages:
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise _invalid("messages", "each message needs a role")
            text = _text_of(message.get("content"))
            contents.append(text)
            if message["role"] == "user":
                last_user = text
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if max_tokens is not None and (
            not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
        ):
            raise _invalid("max_tokens", "max_tokens must be an integer of at least 1")
        temperature = body.get("temperature")
        if temperature is not None and (
            not isinstance(temperature, int | float) or not 0 <= temperature <= 2
        ):
            raise _invalid("temperature", "temperature must be between 0 and 2")
        stop = body.get("stop")
        stops: list[str]
        if stop is None:
            stops = []
        elif isinstance(stop, str):
            stops = [stop]
        elif isinstance(stop, list) and all(isinstance(item, str) for item in stop):
            stops = [item for item in stop if item]
        else:
            raise _invalid("stop", "stop must be a string or an array of strings")
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise _invalid("stream", "stream must be a boolean")
        stream_options = body.get("stream_options") or {}
        include_usage = isinstance(stream_options, dict) and bool(
            stream_options.get("include_usage")
        )

        if self._injected_status():
            return

        deltas = reply_deltas(last_user, options.tokens, max_tokens)
        finish = "length" if max_tokens is not None and max_tokens < options.tokens else "stop"
        if stops:
            deltas, hit = _apply_stop(deltas, stops)
            if hit:
                finish = "stop"
        usage = {
            "prompt_tokens": prompt_tokens_for(contents),
            "completion_tokens": len(deltas),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        completion_id = state.next_id()
        created = int(time.time())
        interval = 1.0 / options.tokens_per_second if options.tokens_per_second > 0 else 0.0
        t0 = self.loop.time() + options.ttft_ms / 1000
        fault = options.fail_mode if options.fail_mode in ("midstream", "stall") else None
        fault_at = options.fail_count if options.fail_count is not None else DEFAULT_FAULT_TOKENS
        if fault is not None:
            state.stats.injected_faults += 1
        self._begin_in_flight(streaming=stream)

        if not stream:
            text = "".join(deltas)
            payload = json.dumps(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "logprobs": None,
                            "finish_reason": finish,
                        }
                    ],
                    "usage": usage,
                }
            ).encode()
            done_at = t0 + max(len(deltas) - 1, 0) * interval
            if fault is None and done_at <= self.loop.time():
                self._complete_whole(payload)
            else:
                self.timer = self.loop.call_at(done_at, self._complete_whole, payload, fault)
            return

        prefix = (
            b'data: {"id":"%s","object":"chat.completion.chunk","created":%d,"model":%s,'
            b'"choices":[{"index":0,"delta":'
            % (completion_id.encode(), created, json.dumps(model).encode())
        )
        final = prefix + b'{},"logprobs":null,"finish_reason":"%s"}]}\n\n' % finish.encode()
        if include_usage:
            final += b'data: {"id":"%s","object":"chat.completion.chunk","created":%d,' % (
                completion_id.encode(),
                created,
            )
            final += b'"model":%s,"choices":[],"usage":%s}\n\n' % (
                json.dumps(model).encode(),
                json.dumps(usage).encode(),
            )
        final += _DONE
        self.stream = _Stream(prefix, deltas, final, t0, interval, fault, fault_at)
        extra = b"cache-control: no-cache\r\n"
        if not self.keep_alive:
            extra += b"connection: close\r\n"
        head = _head(200, _SSE, None, extra)
        assert self.transport is not None
        if t0 <= self.loop.time():
            self._emit(head)
        else:
            self.transport.write(head)
            self.timer = self.loop.call_at(t0, self._emit)
