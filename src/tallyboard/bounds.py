"""Query bounds: the instants a query names (numbers, RFC 3339 text, aware datetimes)
as Unix seconds, and the one rule for a ``[start, end)`` pair. Shared by every query of
the engine, presence included."""

from __future__ import annotations

from datetime import datetime

from .errors import BadQuery
from .windows import WindowError, check_instant, parse_instant

Instant = float | int | str | datetime


def instant(value: Instant | None, param: str) -> float | None:
    """A query bound as Unix seconds (None stays None)."""
    if value is None:
        return None
    try:
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise BadQuery(f"{param} must be timezone-aware", param)
            return check_instant(value.timestamp(), param)
        return parse_instant(value, param)
    except WindowError as exc:
        raise BadQuery(str(exc), exc.param) from None


def span(start: Instant | None, end: Instant | None) -> tuple[float | None, float | None]:
    """The bounds of a ``[start, end)`` query as Unix seconds: one rule for every query
    taking both, a start after its end is a BadQuery (never an empty answer)."""
    lo, hi = instant(start, "start"), instant(end, "end")
    if lo is not None and hi is not None and lo > hi:
        raise BadQuery("start must not be after end", "start")
    return lo, hi
