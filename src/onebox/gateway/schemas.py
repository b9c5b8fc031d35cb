"""OpenAI wire format: the requests we accept on /v1/chat/completions and /v1/embeddings."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, WithJsonSchema, field_validator

from onebox.core.inputs import NulFree, Text


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: Text


class ChatCompletionMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: Annotated[str | list[TextPart] | None, NulFree] = None
    name: Text | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    # Unknown OpenAI parameters are ignored, as the inference servers we front do.
    model_config = ConfigDict(extra="ignore")

    model: Text = Field(min_length=1, max_length=200)
    messages: list[ChatCompletionMessage] = Field(min_length=1, max_length=2000)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stop: Annotated[str | list[str] | None, NulFree] = None
    # Upstreams (vLLM, OpenAI) take a signed 64-bit seed; anything wider is refused here, not there.
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    n: int = Field(default=1, json_schema_extra={"minimum": 1, "maximum": 1})
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    user: Text | None = Field(default=None, max_length=256)
    collections: list[Text] | None = Field(
        default=None,
        min_length=1,
        max_length=50,
        description="Onebox extension: answer from these collections (ids or names); the "
        "response carries the retrieved `sources`",
    )

    @field_validator("n")
    @classmethod
    def _single_choice(cls, value: int) -> int:
        if value != 1:
            raise ValueError("only n=1 is supported")
        return value

    @field_validator("stop")
    @classmethod
    def _stop_sequences(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    def stop_sequences(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        stops = [self.stop] if isinstance(self.stop, str) else self.stop
        return tuple(stop for stop in stops if stop)


MAX_INPUTS = 2048  # OpenAI's limit
MAX_INPUT_CHARS = 32_768  # about OpenAI's 8192-token limit; local models truncate far sooner

_EMBEDDING_TEXT = {"type": "string", "minLength": 1, "maxLength": MAX_INPUT_CHARS, "pattern": r"\S"}
# What ``input`` takes, for the OpenAPI document; gateway/embeddings.py checks it by hand.
EMBEDDING_INPUT_SCHEMA = WithJsonSchema(
    {
        "anyOf": [
            _EMBEDDING_TEXT,
            {"type": "array", "items": _EMBEDDING_TEXT, "minItems": 1, "maxItems": MAX_INPUTS},
        ],
        "description": "A text or an array of texts (token-id arrays are not supported)",
    }
)


class EmbeddingRequest(BaseModel):
    # ``input`` is checked by hand in gateway/embeddings.py: a union's errors read badly.
    model_config = ConfigDict(extra="ignore")

    model: Text | None = Field(default=None, min_length=1, max_length=200)
    input: Annotated[JsonValue, NulFree, EMBEDDING_INPUT_SCHEMA]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: Text | None = Field(default=None, max_length=256)
    # Not OpenAI's: lets retrieval clients ask for query embeddings (as Cohere, Voyage do).
    input_type: Literal["query", "document", "passage"] = "document"
