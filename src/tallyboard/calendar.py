"""Calendars: where a local day, week, month or year starts, DST-correct, as Unix seconds.

Pure: no I/O, no clock. A wall time becomes an instant as ``zoneinfo`` does with
``fold=0`` (a wall time in a DST gap uses the offset from before the gap; a repeated
wall time is its first occurrence), so DST days are 23 or 25 hours long.
Seconds, minutes and hours are aligned to the Unix epoch whatever the timezone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache, lru_cache
from importlib import resources
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

STEPS = ("second", "minute", "hour", "day", "week", "month", "year")
FIXED_STEPS = {"second": 1, "minute": 60, "hour": 3600}
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# ASCII digits only, the whole text: \d would take "١٧:٠٠" and $ a trailing newline.
_HHMM = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])", re.ASCII)
# Not a place: tzdata's placeholder for "no zone configured yet" (its abbreviation is -00).
_NOT_ZONES = frozenset({"Factory"})


class CalendarError(ValueError):
    """A calendar setting is not valid; the message says which and why."""

    def __init__(self, message: str, setting: str) -> None:
        super().__init__(message)
        self.setting = setting


def parse_day_start(text: str) -> tuple[int, int]:
    """``"17:00"`` -> ``(17, 0)``; anything but a 24-hour ``HH:MM`` is an error."""
    m = _HHMM.fullmatch(text) if isinstance(text, str) else None
    if not m:
        raise CalendarError(f"day_start must be HH:MM (00:00-23:59), got {text!r}", "day_start")
    return int(m.group(1)), int(m.group(2))


@cache
def zone_names() -> frozenset[str]:
    """Every IANA zone name a calendar may use: the list the `tzdata` package ships.

    Not whatever the system's zoneinfo directory holds: that also has ``localtime`` (the
    host's own zone, different on every machine), ``posixrules``, ``posix/…`` and
    ``right/…`` copies, none of them a place a community lives in.
    """
    listed = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8")
    return frozenset(listed.split()) - _NOT_ZONES


def load_zone(name: str) -> ZoneInfo:
    """The IANA zone called `name`, or a CalendarError naming the setting."""
    if not isinstance(name, str) or name not in zone_names():
        raise CalendarError(f"unknown timezone {name!r}; use an IANA name like "
                            "'Europe/Berlin'", "timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # listed, yet not loadable
        raise CalendarError(f"timezone {name!r} cannot be loaded here", "timezone") from exc


@lru_cache(maxsize=1 << 16)
def _wall_to_unix(zone: str, ordinal: int, hour: int, minute: int) -> int:
    d = date.fromordinal(ordinal)
    wall = datetime(d.year, d.month, d.day, hour, minute, tzinfo=ZoneInfo(zone), fold=0)
    return int(wall.timestamp())


@dataclass(frozen=True)
class Calendar:
    """A metric's calendar: timezone, the local time a day starts, and the first weekday."""

    timezone: str = "UTC"
    day_start: str = "00:00"
    week_start: str = "monday"
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _hm: tuple[int, int] = field(init=False, repr=False, compare=False)
    _weekday: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_zone", load_zone(self.timezone))
        object.__setattr__(self, "_hm", parse_day_start(self.day_start))
        if self.week_start not in WEEKDAYS:
            raise CalendarError(f"week_start must be one of {', '.join(WEEKDAYS)}, "
                                f"got {self.week_start!r}", "week_start")
        object.__setattr__(self, "_weekday", WEEKDAYS.index(self.week_start))

    def day_start_unix(self, day: date) -> int:
        """The instant the local day labelled `day` starts."""
        return _wall_to_unix(self.timezone, day.toordinal(), *self._hm)

    def day_of(self, t: float) -> date:
        """The label (local date of its start) of the day that contains instant `t`."""
        d = datetime.fromtimestamp(int(t // 1), self._zone).date()
        while t < self.day_start_unix(d):
            d -= timedelta(days=1)
        while t >= self.day_start_unix(d + timedelta(days=1)):
            d += timedelta(days=1)
        return d

    def period(self, step: str, t: float) -> tuple[int, int, str]:
        """``(start, end, label)`` of the `step` bucket containing instant `t`, half-open."""
        if step in FIXED_STEPS:
            size = FIXED_STEPS[step]
            lo = int(t // size) * size
            return lo, lo + size, _utc_label(lo)
        d = self.day_of(t)
        if step == "day":
            first, nxt, label = d, d + timedelta(days=1), d.isoformat()
        elif step == "week":
            first = d - timedelta(days=(d.weekday() - self._weekday) % 7)
            nxt, label = first + timedelta(days=7), first.isoformat()
        elif step == "month":
            first = d.replace(day=1)
            nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
            label = f"{first.year:04d}-{first.month:02d}"
        elif step == "year":
            first, nxt, label = date(d.year, 1, 1), date(d.year + 1, 1, 1), f"{d.year:04d}"
        else:
            raise ValueError(f"unknown step {step!r}")
        return self.day_start_unix(first), self.day_start_unix(nxt), label

    def period_start(self, step: str, t: float) -> int:
        """Start of the `step` bucket containing `t`."""
        return self.period(step, t)[0]


def _utc_label(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
