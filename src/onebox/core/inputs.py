"""Types shared by every request schema and list route, so each rule is written once.

``Text`` is a string that cannot hold NUL: PostgreSQL text refuses it (the insert or
lookup would fail with a 500), and no legitimate input needs it. ``NulFree`` applies the
same rule to a union or a nested value (``str | list[...]``, JSON) at any depth.
``PageOffset`` bounds ``?offset=`` so a huge number is a 4xx rather than an integer
overflow in the database. ``Moment`` is a point in time stored as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError

# Checked by core/errors.py and gateway: this validation error is a 400, not a 422.
NUL_ERROR_TYPE = "nul_character"

# Deep pages are slow anyway; any bound far above real use keeps the database's integer
# (a signed 64-bit value on both SQLite and PostgreSQL) out of reach.
MAX_PAGE_OFFSET = 2**31 - 1
# The largest value an ``Integer`` column holds on PostgreSQL (int4); past it, a 500.
MAX_STORED_INT = 2**31 - 1


def _reject_nul(value: Any) -> Any:
    if _has_nul(value):
        raise PydanticCustomError(NUL_ERROR_TYPE, "must not contain NUL (\\u0000) characters")
    return value


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list | tuple):
        return any(_has_nul(item) for item in value)
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    return False


# Before validation: on a union the error then names the field, not one of its branches.
NulFree = BeforeValidator(_reject_nul)
Text = Annotated[str, NulFree]


def _in_utc(value: datetime) -> datetime:
    """Aware and in UTC: a time without an offset is taken as UTC (comparing it with the
    server's clock would otherwise fail), and one whose UTC date falls outside the years
    1-9999 is refused rather than overflowing when stored."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError(
            "datetime_out_of_range", "must fall within the years 1 to 9999 in UTC"
        ) from None


Moment = Annotated[datetime, AfterValidator(_in_utc)]

PageOffset = Annotated[int, Query(ge=0, le=MAX_PAGE_OFFSET, description="How many items to skip")]
