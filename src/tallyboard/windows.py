"""Windows and instants: parse ``window=`` and timestamps, and resolve a window to a span.

Pure. Every span is half-open ``[start, end)``. Bounds are compared as given, not
floored, so on whole seconds the span is ``[ceil(start), ceil(end))``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime

from .calendar import Calendar

EPOCH_MIN = 946684800  # 2000-01-01T00:00:00Z: the earliest accepted event
# Query instants must lie in [1000-01-01, 9000-01-01) UTC: far wider than any data, yet
# every calendar period around them (and a year beyond) still fits Python's datetime.
INSTANT_MIN = -30610224000
INSTANT_MAX = 221845392000
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
CALENDAR_WINDOWS = ("day", "week", "month", "year")
# A rolling span, as after "rolling:" and in a metric's `rolling` list: 1-999999999 of a
# unit, in ASCII digits without leading zeros (one spelling per span), the whole text
# (\d would also take "٣", and $ a trailing newline).
ROLLING_SPAN = re.compile(r"([1-9][0-9]{0,8})([smhd])", re.ASCII)
# Unix seconds as a query string: a plain ASCII decimal (float() would also take "١٢",
# "1_000" and surrounding spaces).
_SECONDS = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)


class WindowError(ValueError):
    """A window or instant could not be parsed; `param` names the query parameter."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def parse_instant(value: object, param: str) -> float:
    """Unix seconds (int, float or numeric string) or an RFC 3339 string with offset."""
    if isinstance(value, bool):
        raise WindowError(f"{param} must be Unix seconds or RFC 3339, got a boolean", param)
    if isinstance(value, int | float):
        t = float(value)
    elif isinstance(value, str):
        t = float(value) if _SECONDS.fullmatch(value) else _rfc3339(value, param)
    else:
        raise WindowError(f"{param} must be Unix seconds or an RFC 3339 string", param)
    return check_instant(t, param)


def check_instant(t: float, param: str) -> float:
    """`t` itself, if it is finite and inside the supported range of query instants."""
    if not math.isfinite(t):
        raise WindowError(f"{param} must be a finite number", param)
    if not INSTANT_MIN <= t < INSTANT_MAX:
        raise WindowError(f"{param} must lie between 1000-01-01T00:00:00Z and "
                          f"9000-01-01T00:00:00Z ({INSTANT_MIN} to {INSTANT_MAX} "
                          f"Unix seconds), got {t:.17g}", param)
    return t


def _rfc3339(text: str, param: str) -> float:
    try:
        dt = datetime.fromisoformat(text.upper())  # RFC 3339 allows a lowercase t and z
    except ValueError:
        dt = None
    if dt is None or dt.tzinfo is None or "T" not in text.upper():
        raise WindowError(f"{param} must be Unix seconds or RFC 3339 with an offset, "
                          f"like 2026-11-22T17:00:00Z; got {text!r}", param)
    return dt.timestamp()


def ceil_second(t: float | None) -> int | None:
    """The first whole second `s` with ``s >= t``: how a bound compares to event seconds."""
    return None if t is None else math.ceil(t)


@dataclass(frozen=True)
class Window:
    """What a leaderboard or rank covers: all, a calendar period, a rolling span or a range."""

    kind: str
    seconds: int = 0
    start: float | None = None
    end: float | None = None

    @classmethod
    def parse(cls, text: str, start: float | None = None, end: float | None = None) -> Window:
        """Parse ``all``, ``day``/``week``/``month``/``year``, ``rolling:24h``, ``range``."""
        if text == "all" or text in CALENDAR_WINDOWS:
            return cls(text)
        m = ROLLING_SPAN.fullmatch(text[8:]) if text.startswith("rolling:") else None
        if m:
            return cls("rolling", seconds=int(m.group(1)) * UNITS[m.group(2)])
        if text == "range":
            if start is None or end is None:
                raise WindowError("window=range needs both start and end", "start")
            if not start < end:
                raise WindowError("window=range needs start < end", "end")
            return cls("range", start=start, end=end)
        raise WindowError(f"unknown window {text!r}; use all, day, week, month, year, "
                          "rolling:<n><s|m|h|d> or range", "window")

    @property
    def name(self) -> str:
        """The ``window=`` text this window was parsed from."""
        if self.kind == "rolling":
            for unit in ("d", "h", "m", "s"):
                if self.seconds % UNITS[unit] == 0:
                    return f"rolling:{self.seconds // UNITS[unit]}{unit}"
        return self.kind

    def span(self, at: float, calendar: Calendar) -> tuple[float | None, float]:
        """``(start, end)`` as instants for a query "as of" `at`; start None means open."""
        if self.kind == "all":
            return None, at
        if self.kind == "range":
            assert self.start is not None and self.end is not None
            return self.start, self.end
        if self.kind == "rolling":
            return at - self.seconds, at
        return calendar.period_start(self.kind, math.floor(at)), at
