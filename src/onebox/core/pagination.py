"""One page of a list endpoint: the items, where this page starts, and where the next one
does (``None`` on the last page)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    limit: int
    offset: int
    next_offset: int | None

    @classmethod
    def from_rows(cls, items: Sequence[T], limit: int, offset: int) -> Page[T]:
        """``items`` answers a query for ``limit + 1`` rows: the extra one only says that a
        next page exists."""
        return cls(
            items=list(items[:limit]),
            limit=limit,
            offset=offset,
            next_offset=offset + limit if len(items) > limit else None,
        )
