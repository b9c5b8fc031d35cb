"""The fake upstream's ``POST /v1/embeddings``: request checks and the reply body.

Vectors are :func:`~onebox.testing.fake_upstream.replies.embedding_for` each input
(``dimensions`` long when the request asks, else 8). Status faults (``--fail-mode``) apply as
to chat. Broken answers, for testing a client's checks, are chosen by the model name:

* ``fake-embed-bad-json``: a 200 whose body is cut off mid-JSON;
* ``fake-embed-short``: one embedding fewer than inputs;
* ``fake-embed-reversed``: the data array in reverse order, each item with its true
  ``index`` (valid: clients must place rows by index);
* ``fake-embed-ragged``: the last vector one number short;
* ``fake-embed-base64``: valid, but every embedding base64 float32 whatever was asked.
"""

from __future__ import annotations

import base64
import json
import struct

from onebox.testing.fake_upstream.replies import DEFAULT_EMBEDDING_DIMENSIONS, embedding_for
from onebox.testing.fake_upstream.state import _invalid

BAD_JSON_MODEL = "fake-embed-bad-json"
SHORT_MODEL = "fake-embed-short"
REVERSED_MODEL = "fake-embed-reversed"
RAGGED_MODEL = "fake-embed-ragged"
BASE64_MODEL = "fake-embed-base64"


def parse_embeddings_request(body: dict[str, object]) -> tuple[list[str], int, str]:
    """``(inputs, dimensions, encoding_format)``; an invalid request raises a 400."""
    raw = body.get("input")
    inputs: list[str]
    if isinstance(raw, str):
        inputs = [raw]
    elif isinstance(raw, list) and raw:
        inputs = [item if isinstance(item, str) else json.dumps(item) for item in raw]
    else:
        raise _invalid("input", "input must be a string or a non-empty array")
    dimensions = body.get("dimensions", DEFAULT_EMBEDDING_DIMENSIONS)
    if (
        not isinstance(dimensions, int)
        or isinstance(dimensions, bool)
        or not 1 <= dimensions <= 4096
    ):
        raise _invalid("dimensions", "dimensions must be an integer from 1 to 4096")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise _invalid("encoding_format", "encoding_format must be 'float' or 'base64'")
    return inputs, dimensions, str(encoding)


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


def embeddings_reply(model: str, inputs: list[str], dimensions: int, encoding: str) -> bytes:
    """The response body (status 200) for a request already checked."""
    if model == BASE64_MODEL:
        encoding = "base64"
    vectors = [embedding_for(text, dimensions) for text in inputs]
    if model == RAGGED_MODEL:
        vectors[-1] = vectors[-1][:-1]
    data = [
        {"object": "embedding", "index": index, "embedding": _encode(vector, encoding)}
        for index, vector in enumerate(vectors)
    ]
    if model == SHORT_MODEL:
        data = data[:-1]
    elif model == REVERSED_MODEL:
        data.reverse()
    words = sum(len(text.split()) for text in inputs)
    body = json.dumps(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": words, "total_tokens": words},
        }
    ).encode()
    return body[: len(body) // 2] if model == BAD_JSON_MODEL else body
