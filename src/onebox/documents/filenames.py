"""Document names as stored and shown: whatever the client or archive called the file.

A name is display text, never a path on disk, but it still reaches pages, logs, answers'
source lists and the database, so hidden and control characters go (NUL among them, which
PostgreSQL refuses), line breaks and tabs become spaces, and the length is bounded.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from onebox.guard import clean_text

MAX_FILENAME_CHARS = 255  # what common file systems allow for one name
_BREAKS = re.compile(r"\s*[\t\n]+\s*")
_MAX_SUFFIX_CHARS = 16


def safe_filename(name: str, *, limit: int = MAX_FILENAME_CHARS, fallback: str = "upload") -> str:
    """``name`` without control, zero-width or bidi characters, on one line, at most
    ``limit`` characters with its extension kept (the type is told by it)."""
    name = _BREAKS.sub(" ", clean_text(name)).strip()
    if len(name) > limit:
        suffix = PurePosixPath(name).suffix[:_MAX_SUFFIX_CHARS]
        name = name[: limit - len(suffix)].rstrip() + suffix
    return name or fallback


def upload_filename(raw: str | None) -> str:
    """The name a multipart upload gave its file, without any folders some browsers and
    tools send along."""
    return safe_filename((raw or "").replace("\\", "/").rsplit("/", 1)[-1])
