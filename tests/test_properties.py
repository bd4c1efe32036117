"""The engine answers exactly what the brute-force SPEC model (tests/reference.py) answers.

Random events (few members so ties happen, negative and zero values, repeated ids, two
spaces, a tag) are concentrated where calendars are hard: the 2026 DST switches of
Europe/Berlin and America/New_York, local day starts (including 02:30, inside the spring
gap, and 01:30, repeated in New York's autumn), month and year ends, and "now". The
engine's clock is injectable, so hot boards ("as of now", ``at=None``) are checked while
the clock moves, also across day, week and month boundaries.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tallyboard
from pg_support import STORES, HotStores, PgDatabase, backing
from reference import WEEKDAYS, RefCalendar, Reference, Rejected, to_seconds
from tallyboard.core import board as core_board
from tallyboard.errors import Conflict, InvalidEvent, NotFound
from tallyboard.stores import EventLog, MemoryLog

Instant = float | str | datetime
Raw = dict[str, Any]


def utc(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())  # type: ignore[misc]


NOW = utc(2027, 1, 4, 9, 30) + 0.5  # the fixed clock: after every anchor below
ANCHORS = [
    utc(2026, 3, 8, 7),  # America/New_York springs forward (02:00 -> 03:00 local)
    utc(2026, 3, 29, 1),  # Europe/Berlin springs forward
    utc(2026, 10, 25, 1),  # Europe/Berlin falls back
    utc(2026, 11, 1, 6),  # America/New_York falls back
    utc(2027, 1, 1),  # a year (and month, and week) end
    math.floor(NOW),
]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]
DAY_STARTS = ["00:00", "17:00", "02:30", "01:30"]
MEMBERS = ["a", "b", "c", "B", "é"]  # code-point order: B < a < b < c < é
SPACES = ["default", "s2"]  # "s2" gets the metric on its first event, default config
WINDOWS = ["all", "day", "week", "month", "year", "rolling:10s", "rolling:90m",
           "rolling:1h", "rolling:24h", "rolling:1d", "rolling:7d"]
TAGS: list[tuple[str, str] | None] = [None, None, ("kind", "p"), ("kind", "q")]
STEP_SPANS = {"second": 600, "minute": 2 * 86400, "hour": 20 * 86400, "day": 400 * 86400,
              "week": 3 * 366 * 86400, "month": 10 * 366 * 86400, "year": 30 * 366 * 86400}
FAST = settings(max_examples=120, deadline=None)


# ---- strategies ---------------------------------------------------------------------------
calendars = st.builds(RefCalendar, st.sampled_from(ZONES), st.sampled_from(DAY_STARTS),
                      st.sampled_from(WEEKDAYS))
values = st.sampled_from([-3, -2, -1, 0, 0, 1, 1, 1, 2, 3, 5, 7, 2**62, -(2**63)])
ids = st.sampled_from([None, None, None, "x1", "x2", "x3"])
tags = st.sampled_from([None, {"kind": "p"}, {"kind": "q"}, {"kind": "p", "other": "x"}])
fractions = st.sampled_from([0.0, 0.0, 0.0, 0.5, 0.25])


def boundaries(cal: RefCalendar) -> list[int]:
    """Day starts of `cal` within 3 days of every anchor, and the anchors themselves."""
    out = set(ANCHORS)
    for anchor in ANCHORS:
        day = datetime.fromtimestamp(anchor, UTC).date()
        out.update(cal.start_of_day(day + timedelta(days=k)) for k in range(-3, 4))
    return sorted(out)


def instants(points: list[int]) -> st.SearchStrategy[float]:
    """Seconds right at, near, and days around the interesting points; some fractional."""
    near = st.builds(operator.add, st.sampled_from(points), st.integers(-3, 3))
    around = st.builds(operator.add, st.sampled_from(points), st.integers(-7200, 7200))
    wide = st.builds(operator.add, st.sampled_from(ANCHORS), st.integers(-4 * 86400, 4 * 86400))
    return st.builds(operator.add, st.one_of(near, around, wide), fractions)


def given_as(t: float, style: str, tz: str) -> Instant:
    """`t` the way a caller may pass it: Unix seconds, RFC 3339 text or an aware datetime."""
    if style == "rfc3339":
        return datetime.fromtimestamp(t, ZoneInfo(tz)).isoformat()
    if style == "datetime":
        return datetime.fromtimestamp(t, UTC)
    return int(t) if float(t).is_integer() else t


styles = st.sampled_from(["unix", "unix", "unix", "rfc3339", "datetime"])


@st.composite
def events(draw: st.DrawFn, points: list[int], latest: int) -> Raw:
    """One raw event; `ts` is an int, a past float, RFC 3339, or missing (= now)."""
    t = min(draw(instants(points)), latest)
    raw: Raw = {"metric": "m", "member": draw(st.sampled_from(MEMBERS)), "value": draw(values)}
    kind = draw(st.sampled_from(["int", "int", "int", "float", "rfc3339", "none"]))
    if kind == "int":
        raw["ts"] = math.floor(t)
    elif kind == "float":
        raw["ts"] = min(t, latest - 61)  # far from the skew limit: floor vs raw is moot
    elif kind == "rfc3339":
        raw["ts"] = datetime.fromtimestamp(math.floor(t), ZoneInfo("Asia/Kolkata")).isoformat()
    tag = draw(tags)
    if tag is not None:
        raw["tags"] = tag
    eid = draw(ids)
    if eid is not None:
        raw["id"] = eid
    return raw


@dataclass
class Scenario:
    """A metric calendar, the interesting instants for it, and the requests to replay."""

    cal: RefCalendar
    points: list[int]
    batches: list[tuple[str, list[Raw]]]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    cal = draw(calendars)
    points = boundaries(cal)
    batch = st.tuples(st.sampled_from([*SPACES, "default"]),
                      st.lists(events(points, math.floor(NOW) + 60), min_size=1, max_size=12))
    return Scenario(cal, points, draw(st.lists(batch, min_size=1, max_size=5)))


# ---- building both sides ------------------------------------------------------------------
class Clock:
    """A settable clock for the engine: hot boards read "now" from it."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def fresh(cal: RefCalendar, clock: Callable[[], float],
          log: EventLog | None = None) -> tuple[tallyboard.Tallyboard, Reference]:
    tb = tallyboard.Tallyboard(log or MemoryLog(), clock=clock)
    ref = Reference()
    settings_ = {"timezone": cal.timezone, "day_start": cal.day_start,
                 "week_start": cal.week_start}
    tb.set_metric("m", settings_, dimensions=["kind"])
    ref.set_metric("m", **settings_, dimensions=["kind"])
    return tb, ref


def record_both(tb: tallyboard.Tallyboard, ref: Reference, batch: list[Raw], now: float,
                space: str = "default") -> None:
    """Send one request to both; they must agree on accepted/duplicates or the rejection."""
    try:
        want: tuple[int, int] | int = ref.record_many(batch, now=now, space=space)
    except Rejected as exc:
        want = exc.index
    try:
        got = tb.record_many([dict(e) for e in batch], space=space)
    except InvalidEvent as exc:
        assert want == exc.index, (batch, exc.field)
        return
    assert (got.accepted, got.duplicates) == want, batch


def build(sc: Scenario, pg: PgDatabase | HotStores | None = None) -> tuple[
        tallyboard.Tallyboard, Reference]:
    """Both sides fed the scenario; with `pg`, the answers come from a second engine: one
    rebuilt from the PostgreSQL log alone, or another server sharing the hot store."""
    first = pg.log() if pg else None
    tb, ref = fresh(sc.cal, lambda: NOW, first)
    for space, batch in sc.batches:
        record_both(tb, ref, batch, NOW, space)
    if pg and first:
        tb = tallyboard.Tallyboard(pg.again(first), clock=lambda: NOW)
    return tb, ref


LOGS = pytest.mark.parametrize("log", STORES)


def database(request: pytest.FixtureRequest, log: str) -> PgDatabase | HotStores | None:
    """What store `log` writes to (skips without its server)."""
    return backing(request, log)


def known(ref: Reference, space: str) -> bool:
    """Whether the metric exists in `space` (else the engine must say NotFound)."""
    return (space, "m") in ref.calendars


# ---- the reference itself against SPEC's own examples ---------------------------------------
def test_reference_follows_spec_examples() -> None:
    """§2's examples, so the model is anchored to the text and not to the engine."""
    assert RefCalendar("UTC", "17:00").period("day", utc(2026, 11, 22, 18)) == (
        utc(2026, 11, 22, 17), utc(2026, 11, 23, 17), "2026-11-22")
    berlin = RefCalendar("Europe/Berlin", "02:30")
    assert berlin.start_of_day(date(2025, 3, 30)) == utc(2025, 3, 30, 1, 30)
    lengths = {d: berlin.start_of_day(d + timedelta(days=1)) - berlin.start_of_day(d)
               for d in (date(2026, 3, 29), date(2026, 10, 25), date(2026, 6, 1))}
    assert lengths == {date(2026, 3, 29): 23 * 3600, date(2026, 10, 25): 25 * 3600,
                       date(2026, 6, 1): 24 * 3600}
    # a repeated wall time is its first occurrence: 01:30 EDT, not 01:30 EST
    assert RefCalendar("America/New_York", "01:30").start_of_day(date(2026, 11, 1)) == \
        utc(2026, 11, 1, 5, 30)
    ref = Reference()
    ref.set_metric("m")
    ref.record_many([{"metric": "m", "member": m, "value": v, "ts": 1_790_000_000}
                     for m, v in [("a", 5), ("b", 3), ("c", 3), ("d", 1)]], now=NOW)
    board = ref.leaderboard("m", window="all", at=NOW)
    assert [e["rank"] for e in board["entries"]] == [1, 2, 2, 4]


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("day_start", DAY_STARTS)
def test_every_2026_day_matches_reference(zone: str, day_start: str) -> None:
    """Deterministic sweep: events one second either side of every 2026 day start."""
    cal = RefCalendar(zone, day_start, "sunday")
    tb, ref = fresh(cal, lambda: NOW)
    batch: list[Raw] = []
    day = date(2026, 1, 1)
    while day.year == 2026:
        edge = cal.start_of_day(day)
        batch += [{"metric": "m", "member": "a", "value": 1, "ts": edge - 1},
                  {"metric": "m", "member": "a", "value": 10, "ts": edge}]
        day += timedelta(days=1)
    record_both(tb, ref, batch, NOW)
    lo, hi = utc(2025, 12, 20), utc(2027, 1, 10)
    for step in ("day", "week", "month", "year"):
        got = [asdict(p) for p in tb.series("m", "a", step=step, start=lo, end=hi)]
        assert got == ref.series("m", "a", step, lo, hi), step


# ---- fixed clock, queries at any instant -----------------------------------------------------
@LOGS
@FAST
@given(sc=scenarios(), data=st.data())
def test_sum_and_series(sc: Scenario, data: st.DataObject, log: str,
                        request: pytest.FixtureRequest) -> None:
    tb, ref = build(sc, database(request, log))
    for _ in range(6):
        space = data.draw(st.sampled_from(SPACES))
        member = data.draw(st.sampled_from(MEMBERS))
        tag = data.draw(st.sampled_from(TAGS))
        if not known(ref, space):
            with pytest.raises(NotFound):
                tb.sum("m", member, space=space)
            continue
        if space != "default":
            tag = None  # "s2" has the default config: no dimensions declared
        a = data.draw(st.none() | instants(sc.points))
        b = data.draw(st.none() | instants(sc.points))
        if a is not None and b is not None and a > b:
            a, b = b, a
        style = data.draw(styles)
        got_sum = tb.sum("m", member, start=None if a is None else given_as(a, style, "UTC"),
                         end=None if b is None else given_as(b, style, sc.cal.timezone),
                         space=space, tag=tag)
        assert got_sum == ref.sum("m", member, a, b, space=space, tag=tag)

        step = data.draw(st.sampled_from(list(STEP_SPANS)))
        start = data.draw(instants(sc.points))
        end = start + data.draw(st.integers(1, STEP_SPANS[step]) | st.sampled_from([0.5, 1]))
        points = tb.series("m", member, step=step, start=given_as(start, style, "UTC"),
                           end=end, space=space, tag=tag)
        want = ref.series("m", member, step, start, end, space=space, tag=tag)
        assert [asdict(p) for p in points] == want, (step, start, end)


@LOGS
@FAST
@given(sc=scenarios(), data=st.data())
def test_leaderboard_and_rank(sc: Scenario, data: st.DataObject, log: str,
                              request: pytest.FixtureRequest) -> None:
    tb, ref = build(sc, database(request, log))
    for _ in range(8):
        space = data.draw(st.sampled_from(SPACES))
        window = data.draw(st.sampled_from([*WINDOWS, "range", "range"]))
        at = data.draw(st.none() | instants(sc.points) | st.just(NOW + 30))
        at_ = NOW if at is None else at
        style = data.draw(styles)
        given_at = None if at is None else given_as(at, style, sc.cal.timezone)
        start = end = None
        if window == "range":
            start, end = sorted([data.draw(instants(sc.points)), data.draw(instants(sc.points))])
            if start == end:
                end += data.draw(st.sampled_from([0.5, 1, 86400]))
        if not known(ref, space):
            with pytest.raises(NotFound):
                tb.leaderboard("m", window=window, at=given_at, start=start, end=end,
                               space=space)
            continue
        tag = data.draw(st.sampled_from(TAGS)) if space == "default" else None
        n = data.draw(st.integers(1, 6))
        offset = data.draw(st.integers(0, 4))
        group = data.draw(st.none() | st.lists(st.sampled_from([*MEMBERS, "zz"]), max_size=4))
        got = tb.leaderboard("m", window=window, n=n, offset=offset, at=given_at, start=start,
                             end=end, members=group, space=space, tag=tag)
        want = ref.leaderboard("m", window=window, at=at_, n=n, offset=offset, start=start,
                               end=end, members=group, space=space, tag=tag)
        assert got.to_dict() == want, (window, at, start, end)

        member = data.draw(st.sampled_from(MEMBERS))
        radius = data.draw(st.integers(0, 3))
        got_rank = tb.rank("m", member, window=window, radius=radius, at=given_at,
                           start=start, end=end, space=space, tag=tag)
        assert got_rank.to_dict() == ref.rank("m", member, window=window, at=at_,
                                              radius=radius, start=start, end=end,
                                              space=space, tag=tag), (window, at)


@LOGS
@FAST
@given(sc=scenarios(), data=st.data())
def test_streak(sc: Scenario, data: st.DataObject, log: str,
                request: pytest.FixtureRequest) -> None:
    tb, ref = build(sc, database(request, log))
    for _ in range(6):
        member = data.draw(st.sampled_from(MEMBERS))
        minimum = data.draw(st.integers(1, 5))
        at = data.draw(st.none() | instants(sc.points))
        tag = data.draw(st.sampled_from(TAGS))
        zone = data.draw(st.none() | st.sampled_from(ZONES))
        day_start = data.draw(st.none() | st.sampled_from(DAY_STARTS))
        got = tb.streak("m", member, min=minimum, at=at, timezone=zone, day_start=day_start,
                        tag=tag)
        want = ref.streak("m", member, min=minimum, at=NOW if at is None else at,
                          timezone=zone, day_start=day_start, tag=tag)
        assert got.to_dict() == want, (at, zone, day_start)


@LOGS
@settings(max_examples=40, deadline=None)
@given(sc=scenarios(), new=calendars, data=st.data())
def test_calendar_change_rebuilds(sc: Scenario, new: RefCalendar, data: st.DataObject,
                                  log: str, request: pytest.FixtureRequest) -> None:
    """§6: a calendar change with data is a Conflict, or with rebuild the new calendar's
    answers for the same events."""
    tb, ref = build(sc, database(request, log))
    changes = {"timezone": new.timezone, "day_start": new.day_start,
               "week_start": new.week_start}
    has_data = any(e.space == "default" for e in ref.events)
    if has_data and new != sc.cal:
        with pytest.raises(Conflict):
            tb.set_metric("m", changes)
    tb.set_metric("m", changes, rebuild=True)
    ref.set_metric("m", **changes, dimensions=["kind"])
    for window in ("day", "week", "month", "year"):
        at = data.draw(instants(sc.points))
        assert tb.leaderboard("m", window=window, at=at).to_dict() == \
            ref.leaderboard("m", window=window, at=at)
    start = data.draw(instants(sc.points))
    member = data.draw(st.sampled_from(MEMBERS))
    assert [asdict(p) for p in tb.series("m", member, step="day", start=start,
                                         end=start + 20 * 86400)] == \
        ref.series("m", member, "day", start, start + 20 * 86400)


# ---- hot boards: at=None while the clock moves ---------------------------------------------
ADVANCES = st.sampled_from([0.5, 1, 9, 10, 11, 59, 60, 61, 3599, 3600, 5400, 86399, 86400,
                            86401]) | st.integers(0, 7200)
OFFSETS = (st.sampled_from([None, -1, 0, 1, 30, 59, 60, 61, 70, -600, -3600, -86400])
           | st.integers(-120, 65) | st.integers(-8 * 86400, 0))
hot_events = st.tuples(st.sampled_from(MEMBERS), values, OFFSETS, tags, ids)
OPS = st.one_of(
    st.tuples(st.just("advance"), ADVANCES),
    st.tuples(st.just("boundary"), st.sampled_from(["day", "day", "week", "month"]),
              st.integers(-2, 2)),
    st.tuples(st.just("back"), st.integers(1, 120)),
    st.tuples(st.just("keep_up")),  # the server's step between requests
    st.tuples(st.just("record"), st.lists(hot_events, min_size=1, max_size=6)),
    st.tuples(st.just("record"), st.lists(hot_events, min_size=1, max_size=6)),
    st.tuples(st.just("leaderboard"), st.sampled_from(WINDOWS), st.integers(1, 6),
              st.integers(0, 3), st.none() | st.lists(st.sampled_from(MEMBERS), max_size=3),
              st.sampled_from(TAGS)),
    st.tuples(st.just("leaderboard"), st.sampled_from(WINDOWS), st.just(10), st.just(0),
              st.none(), st.none()),
    st.tuples(st.just("rank"), st.sampled_from(MEMBERS), st.sampled_from(WINDOWS),
              st.integers(0, 2), st.sampled_from(TAGS)),
    st.tuples(st.just("streak"), st.sampled_from(MEMBERS), st.integers(1, 3)),
)


@LOGS
@settings(max_examples=150, deadline=None)
@given(cal=calendars, data=st.data(), ops=st.lists(OPS, min_size=3, max_size=30))
def test_hot_boards_follow_the_clock(cal: RefCalendar, data: st.DataObject,
                                     ops: list[tuple[Any, ...]], log: str,
                                     request: pytest.FixtureRequest) -> None:
    """Queries "as of now" (hot boards, updated incrementally) equal the model at the
    clock's time after any interleaving of writes, queries, keep-up steps and clock
    moves; boards resort in bulk from the first changed member in half of the runs."""
    if data.draw(st.booleans(), label="bulk resort"):
        with mock.patch.object(core_board, "_BULK_FROM", 0):
            _follow_the_clock(cal, data, ops, log, request)
    else:
        _follow_the_clock(cal, data, ops, log, request)


def _follow_the_clock(cal: RefCalendar, data: st.DataObject, ops: list[tuple[Any, ...]],
                      log: str, request: pytest.FixtureRequest) -> None:
    clock = Clock(data.draw(instants(boundaries(cal))))
    began = clock.t
    pg = database(request, log)
    tb, ref = fresh(cal, clock, pg.log() if pg else None)
    for op in ops:
        kind, args = op[0], op[1:]
        if kind == "advance":
            clock.t += args[0]
        elif kind == "back":  # an NTP step backwards: boards must not keep the future
            clock.t -= args[0]
        elif kind == "keep_up":
            tb.keep_up()
        elif kind == "boundary":
            step, k = args
            clock.t = max(clock.t, cal.period(step, clock.t)[1] + k)
        elif kind == "record":
            batch: list[Raw] = []
            for member, value, offset, tag, eid in args[0]:
                raw: Raw = {"metric": "m", "member": member, "value": value}
                if offset is not None:
                    raw["ts"] = math.floor(clock.t) + offset
                if tag is not None:
                    raw["tags"] = tag
                if eid is not None and clock.t - began < 6 * 86400:  # ids live >= 7 days
                    raw["id"] = eid
                batch.append(raw)
            record_both(tb, ref, batch, clock.t)
        elif kind == "leaderboard":
            window, n, offset, group, tag = args
            got = tb.leaderboard("m", window=window, n=n, offset=offset, members=group,
                                 tag=tag)
            assert got.to_dict() == ref.leaderboard("m", window=window, at=clock.t, n=n,
                                                    offset=offset, members=group, tag=tag), \
                (window, clock.t)
        elif kind == "rank":
            member, window, radius, tag = args
            got_rank = tb.rank("m", member, window=window, radius=radius, tag=tag)
            assert got_rank.to_dict() == ref.rank("m", member, window=window, at=clock.t,
                                                  radius=radius, tag=tag), (window, clock.t)
        else:
            member, minimum = args
            assert tb.streak("m", member, min=minimum).to_dict() == \
                ref.streak("m", member, min=minimum, at=clock.t), clock.t
    # whatever happened, the final state "now" equals the same query at an explicit `at`
    for window in WINDOWS:
        hot = tb.leaderboard("m", window=window, n=100).to_dict()
        assert hot == tb.leaderboard("m", window=window, n=100, at=clock.t).to_dict()
        assert hot == ref.leaderboard("m", window=window, at=clock.t, n=100)


def test_to_seconds_reads_what_given_as_writes() -> None:
    """The helpers agree on instants, so a mismatch is the engine's, not the harness's."""
    for t in (NOW, float(ANCHORS[0]), ANCHORS[1] + 0.25):
        for style in ("rfc3339", "unix"):
            given = given_as(t, style, "America/New_York")
            assert not isinstance(given, datetime)
            assert to_seconds(given) == t
