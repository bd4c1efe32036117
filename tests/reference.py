"""A brute-force model of SPEC.md §2-§6, written from the spec alone, for property tests.

Slow on purpose: it keeps every accepted event in a list and answers each query by
looping over all of them, walking calendar periods with `zoneinfo` directly. Where the
spec is silent it follows the choices written down in docs/api.md (labels of second,
minute and hour buckets; window ends echoed as given). Results are plain dicts shaped
like the HTTP API's JSON, so they compare with the engine's ``to_dict()`` output.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

EPOCH_MIN = 946684800  # 2000-01-01T00:00:00Z, the earliest accepted second (§2)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
FIXED_STEPS = {"second": 1, "minute": 60, "hour": 3600}
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
ONE_DAY = timedelta(days=1)
_ROLLING = re.compile(r"^rolling:(\d+)([smhd])$")

Json = dict[str, Any]
Tag = tuple[str, str] | None


class Rejected(ValueError):
    """A request the spec rejects as a whole; `index` is the first invalid event (§3)."""

    def __init__(self, index: int) -> None:
        super().__init__(f"event {index} is invalid")
        self.index = index


def to_seconds(value: float | str) -> float:
    """An instant as Unix seconds: a number as given, or RFC 3339 with an offset (§2)."""
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        assert parsed.tzinfo is not None, "RFC 3339 instants carry an offset"
        return parsed.timestamp()
    return float(value)


@dataclass(frozen=True)
class RefCalendar:
    """Timezone, local day start and first weekday of a metric (§2)."""

    timezone: str = "UTC"
    day_start: str = "00:00"
    week_start: str = "monday"

    def start_of_day(self, d: date) -> int:
        """The instant day `d` starts: its wall time read as zoneinfo does with fold=0."""
        hour, minute = (int(x) for x in self.day_start.split(":"))
        wall = datetime(d.year, d.month, d.day, hour, minute, tzinfo=ZoneInfo(self.timezone))
        instant = wall.timestamp()
        assert instant.is_integer()
        return int(instant)

    def day_containing(self, t: float) -> date:
        """The label D of the day with ``start(D) <= t < start(D + 1)``.

        A local date is within a day of the UTC date and a label at most one day before
        the local date, so the latest candidate whose start is not after `t` is the one.
        """
        utc_day = datetime.fromtimestamp(math.floor(t), UTC).date()
        for back in range(-2, 4):
            candidate = utc_day - timedelta(days=back)
            if self.start_of_day(candidate) <= t:
                assert t < self.start_of_day(candidate + ONE_DAY)
                return candidate
        raise AssertionError(f"no day contains {t}")

    def period(self, step: str, t: float) -> tuple[int, int, str]:
        """``(start, end, label)`` of the `step` bucket that contains instant `t`."""
        if step in FIXED_STEPS:
            size = FIXED_STEPS[step]
            lo = math.floor(t) // size * size
            return lo, lo + size, datetime.fromtimestamp(lo, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        day = self.day_containing(t)
        if step == "day":
            first, nxt, label = day, day + ONE_DAY, day.isoformat()
        elif step == "week":
            first = day
            while first.weekday() != WEEKDAYS.index(self.week_start):
                first -= ONE_DAY
            nxt, label = first + timedelta(days=7), first.isoformat()
        elif step == "month":
            first = day.replace(day=1)
            nxt = (first + timedelta(days=31)).replace(day=1)
            label = f"{first.year:04d}-{first.month:02d}"
        elif step == "year":
            first, nxt, label = date(day.year, 1, 1), date(day.year + 1, 1, 1), f"{day.year:04d}"
        else:
            raise ValueError(step)
        lo, hi = self.start_of_day(first), self.start_of_day(nxt)
        assert lo <= t < hi
        return lo, hi, label


@dataclass(frozen=True)
class RefEvent:
    """One accepted event, `ts` already floored to its second."""

    space: str
    metric: str
    member: str
    ts: int
    value: int
    tags: Mapping[str, str]
    id: str | None


@dataclass
class Reference:
    """Accepted events plus metric calendars; every query is a loop over all events."""

    skew: float = 60.0
    events: list[RefEvent] = field(default_factory=list)
    ids: dict[str, set[str]] = field(default_factory=dict)
    calendars: dict[tuple[str, str], RefCalendar] = field(default_factory=dict)
    dimensions: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)

    # ---- writes ---------------------------------------------------------------------------
    def set_metric(self, metric: str, *, space: str = "default", timezone: str = "UTC",
                   day_start: str = "00:00", week_start: str = "monday",
                   dimensions: Iterable[str] = ()) -> None:
        """Give a metric its calendar; old events are simply re-read under it (§6 rebuild)."""
        self.calendars[(space, metric)] = RefCalendar(timezone, day_start, week_start)
        self.dimensions[(space, metric)] = tuple(dimensions)

    def record_many(self, raws: Iterable[Mapping[str, Any]], *, now: float,
                    space: str = "default") -> tuple[int, int]:
        """Apply a request atomically: ``(accepted, duplicates)`` or Rejected (§2, §3)."""
        parsed: list[RefEvent] = []
        for i, raw in enumerate(raws):
            ts = raw.get("ts")
            sec = math.floor(now) if ts is None else math.floor(to_seconds(ts))
            if not EPOCH_MIN <= sec <= now + self.skew:
                raise Rejected(i)
            parsed.append(RefEvent(raw.get("space", space), raw["metric"], raw["member"], sec,
                                   raw.get("value", 1), dict(raw.get("tags") or {}),
                                   raw.get("id")))
        accepted = duplicates = 0
        for e in parsed:
            seen = self.ids.setdefault(e.space, set())
            if e.id is not None:
                if e.id in seen:
                    duplicates += 1
                    continue
                seen.add(e.id)
            self.events.append(e)
            self.calendars.setdefault((e.space, e.metric), RefCalendar())
            self.dimensions.setdefault((e.space, e.metric), ())
            accepted += 1
        return accepted, duplicates

    # ---- helpers --------------------------------------------------------------------------
    def calendar(self, metric: str, space: str = "default") -> RefCalendar:
        return self.calendars[(space, metric)]

    def _matching(self, metric: str, space: str, tag: Tag) -> list[RefEvent]:
        """Events of one metric in one space, filtered on one declared dimension (§5)."""
        if tag is not None:
            assert tag[0] in self.dimensions[(space, metric)], "undeclared dimension"
        return [e for e in self.events if e.space == space and e.metric == metric
                and (tag is None or e.tags.get(tag[0]) == tag[1])]

    def window_span(self, metric: str, window: str, at: float, start: float | None,
                    end: float | None, space: str = "default") -> tuple[float | None, float]:
        """``(lo, hi)`` of a window as of `at` per §4; lo None means open."""
        if window == "all":
            return None, at
        if window in ("day", "week", "month", "year"):
            return self.calendar(metric, space).period(window, at)[0], at
        m = _ROLLING.match(window)
        if m:
            return at - int(m.group(1)) * UNIT_SECONDS[m.group(2)], at
        assert window == "range" and start is not None and end is not None and start < end
        return start, end

    def scores(self, metric: str, lo: float | None, hi: float, *, space: str = "default",
               tag: Tag = None, members: Iterable[str] | None = None) -> dict[str, int]:
        """Non-zero totals per member over ``[lo, hi)`` (the listed members)."""
        group = None if members is None else set(members)
        totals: dict[str, int] = {}
        for e in self._matching(metric, space, tag):
            if (lo is None or lo <= e.ts) and e.ts < hi and (group is None or e.member in group):
                totals[e.member] = totals.get(e.member, 0) + e.value
        return {m: v for m, v in totals.items() if v != 0}

    @staticmethod
    def ranked(scores: Mapping[str, int]) -> list[Json]:
        """Score descending, then member by code point; rank = 1 + strictly greater."""
        order = sorted(scores, key=lambda m: (-scores[m], m))
        return [{"rank": 1 + sum(1 for v in scores.values() if v > scores[m]),
                 "member": m, "score": scores[m]} for m in order]

    # ---- queries --------------------------------------------------------------------------
    def sum(self, metric: str, member: str, start: float | None = None,
            end: float | None = None, *, space: str = "default", tag: Tag = None) -> int:
        """Total over ``[start, end)``, a missing bound open (§5)."""
        return sum(e.value for e in self._matching(metric, space, tag) if e.member == member
                   and (start is None or start <= e.ts) and (end is None or e.ts < end))

    def series(self, metric: str, member: str, step: str, start: float, end: float, *,
               space: str = "default", tag: Tag = None) -> list[Json]:
        """Every bucket overlapping ``[start, end)``, zero-filled, counting only inside."""
        cal = self.calendar(metric, space)
        events = [e for e in self._matching(metric, space, tag) if e.member == member]
        out: list[Json] = []
        lo, hi, label = cal.period(step, start)
        while lo < end:
            value = sum(e.value for e in events
                        if max(lo, start) <= e.ts < min(hi, end))
            out.append({"start": lo, "label": label, "value": value})
            lo, hi, label = cal.period(step, hi)
        return out

    def leaderboard(self, metric: str, *, window: str, at: float, n: int = 10,
                    offset: int = 0, start: float | None = None, end: float | None = None,
                    members: Iterable[str] | None = None, space: str = "default",
                    tag: Tag = None) -> Json:
        """The §5 leaderboard JSON for `window` as of `at`."""
        lo, hi = self.window_span(metric, window, at, start, end, space)
        entries = self.ranked(self.scores(metric, lo, hi, space=space, tag=tag,
                                          members=members))
        return {"window": {"start": lo, "end": hi}, "total": len(entries),
                "entries": entries[offset:offset + n]}

    def rank(self, metric: str, member: str, *, window: str, at: float, radius: int = 0,
             start: float | None = None, end: float | None = None, space: str = "default",
             tag: Tag = None) -> Json:
        """The §5 rank JSON: competition rank, score and ±radius neighbours by position."""
        lo, hi = self.window_span(metric, window, at, start, end, space)
        entries = self.ranked(self.scores(metric, lo, hi, space=space, tag=tag))
        for pos, entry in enumerate(entries):
            if entry["member"] == member:
                return {"rank": entry["rank"], "score": entry["score"], "total": len(entries),
                        "around": entries[max(0, pos - radius):pos + radius + 1]}
        return {"rank": None, "score": 0, "total": len(entries), "around": []}

    def streak(self, metric: str, member: str, *, at: float, min: int = 1,
               timezone: str | None = None, day_start: str | None = None,
               space: str = "default", tag: Tag = None) -> Json:
        """Current and longest runs of days whose total (``ts < at``) is ``>= min`` (§5)."""
        cal = self.calendar(metric, space)
        if timezone is not None or day_start is not None:
            cal = RefCalendar(timezone or cal.timezone,
                              day_start or ("00:00" if timezone else cal.day_start),
                              cal.week_start)
        per_day: dict[date, int] = {}
        for e in self._matching(metric, space, tag):
            if e.member == member and e.ts < at:
                day = cal.day_containing(e.ts)
                per_day[day] = per_day.get(day, 0) + e.value
        runs: list[list[date]] = []
        for day in sorted(d for d, v in per_day.items() if v >= min):
            if runs and runs[-1][-1] + ONE_DAY == day:
                runs[-1].append(day)
            else:
                runs.append([day])
        today = cal.day_containing(at)
        current: list[date] = []
        for run in runs:
            if run[-1] in (today, today - ONE_DAY):
                current = run
        longest: list[date] = []
        for run in runs:
            if len(run) > len(longest):
                longest = run
        return {"current": _run(current), "longest": _run(longest)}


def _run(days: list[date]) -> Json:
    if not days:
        return {"length": 0, "first_day": None, "last_day": None}
    return {"length": len(days), "first_day": days[0].isoformat(),
            "last_day": days[-1].isoformat()}
