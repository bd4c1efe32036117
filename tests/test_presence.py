"""Presence (SPEC §7): the engine against a brute-force reference, the HTTP endpoints, the
CLI, and open sessions that survive a kill -9 of the real server."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

import tallyboard
from api_helpers import TEST_HOSTS
from pg_support import STORES, backing
from presence_reference import Cal, Op, Reference
from support import ServerProcess
from tallyboard import Accepted, Entry, Tallyboard
from tallyboard.api.app import create_app
from tallyboard.cli import main
from tallyboard.errors import BadQuery, InvalidEvent, OutOfOrder
from tallyboard.presence import session_index
from tallyboard.settings import Settings

METRIC = "presence_seconds"
T = 1763823600  # 2025-11-22T15:00:00Z
HOUR = 3600


class Clock:
    """A settable clock for the engine."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _open(clock: Clock) -> Tallyboard:
    tb = tallyboard.open("memory://", clock=clock)
    assert isinstance(tb, Tallyboard)
    return tb


def join(room: str, member: str, ts: int, **extra: Any) -> dict[str, Any]:
    return {"type": "join", "room": room, "member": member, "ts": ts, **extra}


def leave(room: str, member: str, ts: int, **extra: Any) -> dict[str, Any]:
    return {"type": "leave", "room": room, "member": member, "ts": ts, **extra}


def snap(room: str, members: Sequence[str], ts: int, **extra: Any) -> dict[str, Any]:
    return {"type": "snapshot", "room": room, "members": list(members), "ts": ts, **extra}


# ================================================================================================
# The engine against the reference model
# ================================================================================================
MEMBERS = ("ann", "bob", "cy")
ROOMS = ("lobby", "study", "gym")
# Europe/Berlin with days starting 02:30 and weeks on Sunday: 2025-03-30 is a Sunday whose
# 02:30 falls in the DST gap (01:30Z), 2025-10-26 repeats 02:30; and a plain summer day.
CAL = Cal("Europe/Berlin", "02:30", "sunday")
BASES = (1743298200 - 3 * HOUR, 1761438600 - 2 * HOUR, 1749947400 - 600)
DTS = (0, 0, 1, 2, 3, 5, 59, 61, 299, 301, 1800, HOUR, 5400)
LEADS = (0, 0, 0, 1, 30, 60)  # how far an operation's ts may be ahead of the clock
# "move" leaves a room the member is in and joins another at once (leave first, or the new
# room opened first), "exit" leaves a room the member is in: together they make "join A,
# move to B, leave B" and its relatives common. "back" sends a join or leave dated before
# the newest op, for another room (accepted) or the same one (refused).
KINDS = ("join",) * 4 + ("leave",) * 2 + ("snapshot",) * 2 + ("move",) * 3 + \
    ("exit",) * 2 + ("tick", "resend", "late", "back")
WINDOWS = ("all", "day", "week", "month", "rolling:90s", "rolling:1h", "rolling:1d")

Step = tuple[str, str, str, tuple[str, ...], int, int]
step_st: st.SearchStrategy[Step] = st.tuples(
    st.sampled_from(KINDS), st.sampled_from(ROOMS), st.sampled_from(MEMBERS),
    st.lists(st.sampled_from(MEMBERS), max_size=3, unique=True).map(tuple),
    st.sampled_from(DTS), st.sampled_from(LEADS))


def _tag(room: str | None) -> tuple[str, str] | None:
    return None if room is None else ("room", room)


def _board(tb: Tallyboard, window: str, at: float | None, room: str | None = None,
           start: float | None = None, end: float | None = None, n: int = 1000,
           offset: int = 0) -> tuple[int, list[tuple[int, str, int]]]:
    got = tb.leaderboard(METRIC, window=window, n=n, offset=offset, at=at, start=start,
                         end=end, tag=_tag(room))
    return got.total, [(e.rank, e.member, e.score) for e in got.entries]


def _check_hot(tb: Tallyboard, ref: Reference, now: float) -> None:
    """Boards "as of now" (kept hot and moved along by the clock) match the reference:
    their entries, and every member's rank, score and neighbours."""
    for window, room in (("all", None), ("day", None), ("week", None), ("all", "lobby"),
                         ("day", "study")):
        total, ranked = ref.leaderboard(window, None, now, room)
        assert _board(tb, window, None, room) == (total, ranked), (window, room)
        if room is None:
            for member in MEMBERS:
                got = tb.rank(METRIC, member, window=window)
                want = next(((r, s) for r, m, s in ranked if m == member), (None, 0))
                assert (got.rank, got.score, got.total) == (*want, total), (window, member)
                got = tb.rank(METRIC, member, window=window, radius=1)
                assert [(e.rank, e.member, e.score) for e in got.around] == \
                    ref.rank(member, window, now, now, radius=1)[3], (window, member)


def _check_all(tb: Tallyboard, ref: Reference, now: float, base: int) -> None:
    """Every query, at instants inside open sessions, on whole and half seconds."""
    times = sorted({op.ts for op in ref.ops}) or [base]
    mid = times[len(times) // 2]
    ats: list[float] = [times[0], mid, mid + 0.5, times[-1] - 1, now - 0.5,
                               now + 30]
    for window in WINDOWS:
        for room in (None, *ROOMS):
            for at in ats:
                assert _board(tb, window, at, room) == ref.leaderboard(window, at, now, room), \
                    (window, room, at)
    for lo, hi in ((base, mid + 1), (mid - 0.5, now + 100), (times[-1], times[-1] + 61)):
        assert _board(tb, "range", None, None, lo, hi) == \
            ref.leaderboard("range", None, now, None, start=lo, end=hi), (lo, hi)
    for window in ("all", "day"):
        assert _board(tb, window, now, n=2, offset=1) == \
            ref.leaderboard(window, now, now, n=2, offset=1)
    for member in MEMBERS:
        for room in (None, *ROOMS):
            for lo2, hi2 in ((None, None), (base, None), (None, mid), (mid, now + 100),
                             (mid + 0.5, mid + 2.5)):
                assert tb.sum(METRIC, member, start=lo2, end=hi2, tag=_tag(room)) == \
                    ref.sum(member, lo2, hi2, now, room), (member, room, lo2, hi2)
        for window in ("all", "day", "rolling:1h"):
            for at in (now, mid):
                got = tb.rank(METRIC, member, window=window, radius=1, at=at)
                assert (got.rank, got.score, got.total,
                        [(e.rank, e.member, e.score) for e in got.around]) == \
                    ref.rank(member, window, at, now, radius=1), (member, window, at)
        for step in ("hour", "day"):
            points = tb.series(METRIC, member, step=step, start=base - HOUR, end=now + HOUR)
            assert [(p.start, p.label, p.value) for p in points] == \
                ref.series(member, step, base - HOUR, now + HOUR, now), (member, step)
        for lo3, hi3 in ((None, None), (mid, None), (None, mid), (mid, mid + 600)):
            assert sorted(tb.sessions(member, start=lo3, end=hi3), key=repr) == \
                ref.sessions(member, lo3, hi3, now), (member, lo3, hi3)
    rooms = tb.rooms()
    assert {r["room"]: r["members"] for r in rooms} == ref.rooms()
    assert [r["members"] for r in rooms] == sorted((r["members"] for r in rooms), reverse=True)
    for room in ROOMS:
        found = tb.room(room)
        assert found["room"] == room
        assert {m["member"]: m["since"] for m in found["members"]} == ref.room(room)
        sinces = [m["since"] for m in found["members"]]
        assert sinces == sorted(sinces)
    for step, lo4, hi4 in (("minute", int(now) - 1800, int(now) + 120),
                           ("hour", base - HOUR, int(now) + HOUR),
                           ("day", base - HOUR, int(now) + HOUR)):
        for room in (None, "lobby"):
            got_c = tb.concurrency(room=room, step=step, start=lo4, end=hi4)
            assert [(b.start, b.label, b.peak, b.avg) for b in got_c] == \
                ref.concurrency(step, lo4, hi4, now, room), (step, room)
    assert tb.presence_noops() == ref.state.noops
    _check_migrations(tb, ref, mid)
    _check_overlap(tb, ref, base, mid, now)


def _check_overlap(tb: Tallyboard, ref: Reference, base: int, mid: int, now: float) -> None:
    # each way the index finds the audience's other sessions: a full scan (the default for
    # these few members), their chains walked, a chain too long to walk
    for big, steps in ((session_index.BIG_AUDIENCE, session_index.CHAIN_STEPS),
                       (10**9, session_index.CHAIN_STEPS), (10**9, 1)):
        with mock.patch.object(session_index, "BIG_AUDIENCE", big), \
                mock.patch.object(session_index, "CHAIN_STEPS", steps):
            _check_overlap_once(tb, ref, base, mid, now)


def _check_overlap_once(tb: Tallyboard, ref: Reference, base: int, mid: int,
                        now: float) -> None:
    for room in ROOMS:
        for lo, hi in ((None, None), (base, None), (mid, mid + 1), (mid - 0.5, mid + 90.5),
                       (base - HOUR, now + HOUR)):
            got = tb.overlap(room, start=lo, end=hi)
            audience, found = ref.overlap(room, lo, hi, now)
            assert (got["audience"], [(o["room"], o["members"]) for o in got["overlap"]]) \
                == (audience, found), (room, lo, hi)
            shared = sum(k for _, k in found)
            assert got["shared"] == shared
            assert [o["share"] for o in got["overlap"]] == [k / shared for _, k in found]
            assert tb.overlap(room, start=lo, end=hi, n=1)["overlap"] == got["overlap"][:1]


def _check_migrations(tb: Tallyboard, ref: Reference, mid: int) -> None:
    filters: list[dict[str, Any]] = [{}, {"start": mid}, {"end": mid},
                                     *({"source": r} for r in ROOMS),
                                     *({"target": r} for r in ROOMS),
                                     *({"member": m} for m in MEMBERS),
                                     {"source": "lobby", "target": "study"},
                                     {"start": mid + 0.5, "source": "gym"},
                                     {"start": mid - 0.5, "end": mid + 300.5, "target": "lobby"}]
    for f in filters:
        got = tb.migrations(**f)
        expected = sorted(ref.migration_counts(**f).items(), key=lambda pn: (-pn[1], pn[0]))
        assert [((m["from"], m["to"]), m["count"]) for m in got["migrations"]] == expected, f
        for n in (1, 2):  # the most frequent first, ties by pair
            assert tb.migrations(**f, n=n)["migrations"] == got["migrations"][:n], f
        if "member" in f:
            assert [(m["from"], m["to"], m["ts"]) for m in got["moves"]] == \
                [(m.source, m.target, m.ts)
                 for m in sorted(ref.migrations(**f), key=lambda m: m.ts)], f
    for source in ROOMS:  # the members behind each flow, with their leave and join times
        for target in ROOMS:
            for span_ in ({}, {"start": mid}, {"start": mid - 0.5, "end": mid + 300.5}):
                got = tb.migrations(source=source, target=target, viewers=1000, **span_)
                behind = sorted(ref.migrations(source=source, target=target, **span_),
                                key=lambda m: (m.ts, m.member))
                assert [(v["member"], v["left"], v["joined"]) for v in got["viewers"]] == \
                    [(m.member, m.left, m.ts) for m in behind], (source, target, span_)
                assert tb.migrations(source=source, target=target, viewers=1,
                                     **span_)["viewers"] == got["viewers"][:1]


def _rooms_of(ref: Reference, member: str) -> list[str]:
    return sorted(r for (m, r) in ref.state.present if m == member)


def _run(tb: Tallyboard, ref: Reference, clock: Clock, base: int,
         steps: Sequence[Step]) -> None:
    t = base
    sent: list[tuple[Op, str]] = []

    def send(batch: list[Op]) -> None:
        """Post `batch` (with fresh ids); accepted whole, or refused at the op the
        reference names as out of order."""
        ids = [f"op-{len(sent) + i}" for i in range(len(batch))]
        late = ref.submit(batch)
        if late is None:
            assert tb.presence([op.to_json(i) for op, i in zip(batch, ids, strict=True)]) \
                == Accepted(len(batch), 0)
            sent.extend(zip(batch, ids, strict=True))
            return
        with pytest.raises(OutOfOrder) as caught:
            tb.presence([op.to_json(i) for op, i in zip(batch, ids, strict=True)])
        assert caught.value.details["index"] == late

    for kind, room, member, members, dt, lead in steps:
        if kind == "tick":
            clock.now += dt
        elif kind == "resend":
            if sent:
                op, op_id = sent[dt % len(sent)]
                assert tb.presence([op.to_json(op_id)]) == Accepted(0, 1)
        elif kind == "late":
            state = ref.state
            late: Op | None = None
            if dt % 2 and room in state.room_newest:
                late = Op("snapshot", room, state.room_newest[room] - 1 - lead,
                          members=members)
            elif (member, room) in state.newest:
                late = Op("join" if lead % 2 else "leave", room,
                          state.newest[(member, room)] - 1 - dt % 7, member)
            if late is not None:
                good = Op("join", room, t, "late-comer")  # valid on its own, index 0
                assert ref.submit([good, late]) == 1
                with pytest.raises(OutOfOrder) as caught:
                    tb.presence([good.to_json(), late.to_json()])
                assert caught.value.details["index"] == 1
        elif kind == "back":
            send([Op("join" if lead % 2 else "leave", room, max(base, t - dt), member)])
        else:
            t += dt
            clock.now = max(clock.now, t - lead)
            here = _rooms_of(ref, member)
            if kind == "snapshot":
                send([Op(kind, room, t, members=members)])
            elif kind in ("join", "leave"):
                send([Op(kind, room, t, member)])
            elif kind == "exit":
                send([Op("leave", here[dt % len(here)] if here else room, t, member)])
            else:  # a move: out of one of the member's rooms (if any) into another
                old = here[dt % len(here)] if here else room
                new = room if room != old else ROOMS[(ROOMS.index(room) + 1) % len(ROOMS)]
                out, into = Op("leave", old, t, member), Op("join", new, t, member)
                send([into, out] if lead % 2 else [out, into])
        _check_hot(tb, ref, clock.now)


def _set_calendar(tb: Tallyboard, rebuild: bool) -> None:
    tb.set_metric(METRIC, timezone=CAL.timezone, day_start=CAL.day_start,
                  week_start=CAL.week_start, rebuild=rebuild)


@pytest.mark.parametrize("log", STORES)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(BASES), steps=st.lists(step_st, min_size=8, max_size=40),
       window=st.sampled_from((0, 3, 60, 300)),
       mode=st.sampled_from(("snapshot", "last_seen")), extra=st.sampled_from((0, 1, 7200)))
def test_engine_matches_reference(base: int, steps: list[Step], window: int, mode: str,
                                  extra: int, log: str,
                                  request: pytest.FixtureRequest) -> None:
    """On every store; on the durable ones the answers are checked once more on a second
    engine: rebuilt from PostgreSQL alone (open sessions included), or another server
    sharing the hot store."""
    clock = Clock(base)
    pg = backing(request, log)
    first = pg.log() if pg else None
    tb = Tallyboard(first, clock=clock) if first else _open(clock)
    # The calendar first, then presence settings: neither may undo the other, and the
    # metric keeps its `room` dimension though the calendar change does not name it.
    _set_calendar(tb, rebuild=False)
    tb.set_presence(migration_window=window, close_on_gap=mode)
    assert tb.metric(METRIC)["timezone"] == CAL.timezone
    assert tb.metric(METRIC)["dimensions"] == ["room"]
    ref = Reference(CAL, window, mode)
    _run(tb, ref, clock, base, steps)
    clock.now += extra
    _check_all(tb, ref, clock.now, base)
    if pg and first:
        tb = Tallyboard(pg.again(first), clock=clock)
        _check_all(tb, ref, clock.now, base)
    # New settings replay the whole presence history with them.
    other = "last_seen" if mode == "snapshot" else "snapshot"
    tb.set_presence(close_on_gap=other, migration_window=(window + 61) % 400)
    _set_calendar(tb, rebuild=True)
    ref.close_on_gap, ref.migration_window = other, (window + 61) % 400
    _check_hot(tb, ref, clock.now)
    for member in MEMBERS:
        assert sorted(tb.sessions(member), key=repr) == ref.sessions(member, None, None,
                                                                     clock.now)
    _check_migrations(tb, ref, base)
    tb.close()


# ================================================================================================
# Open sessions, order, ids (Python API)
# ================================================================================================
def test_open_session_counts_up_to_at_and_now() -> None:
    clock = Clock(T)
    tb = _open(clock)
    tb.presence([join("study", "ann", T - 3 * HOUR),
                 join("study", "bob", T - 5 * HOUR), leave("study", "bob", T - 4 * HOUR)])
    for at in (T, None):  # as of an instant, and as of now (the hot board)
        board = tb.leaderboard(METRIC, window="day", at=at)
        assert [(e.rank, e.member, e.score) for e in board.entries] == [
            (1, "ann", 3 * HOUR), (2, "bob", HOUR)]
        assert board.total == 2
    assert tb.leaderboard(METRIC, window="day", at=T - HOUR).entries[0].score == 2 * HOUR
    assert tb.leaderboard(METRIC, window="rolling:90m").entries == [Entry(1, "ann", 90 * 60)]
    assert tb.sum(METRIC, "ann") == 3 * HOUR
    assert tb.sum(METRIC, "ann", end=T + HOUR) == 3 * HOUR  # up to min(end, now)
    got = tb.rank(METRIC, "ann", window="day")
    assert (got.rank, got.score, got.total) == (1, 3 * HOUR, 2)
    clock.now = T + 60.5  # time passes, nothing is written: the open session keeps growing
    assert tb.leaderboard(METRIC, window="day", at=clock.now).entries[0].score == 3 * HOUR + 61
    assert tb.rank(METRIC, "ann", window="day").score == 3 * HOUR + 61
    assert tb.sum(METRIC, "ann") == 3 * HOUR + 61
    tb.presence([leave("study", "ann", T + 100)])
    clock.now = T + 1000
    assert tb.sum(METRIC, "ann") == 3 * HOUR + 100
    assert tb.sessions("ann") == [{"room": "study", "start": T - 3 * HOUR, "end": T + 100,
                                   "seconds": 3 * HOUR + 100}]


def test_two_rooms_at_once_earn_twice_and_filter_by_room() -> None:
    clock = Clock(T)
    tb = _open(clock)
    tb.presence([join("a", "ann", T - 100), join("b", "ann", T - 40)])
    assert tb.sum(METRIC, "ann") == 140
    assert tb.sum(METRIC, "ann", tag=("room", "b")) == 40
    assert tb.leaderboard(METRIC, tag=("room", "a")).entries[0].score == 100


def test_open_session_streak_spans_days() -> None:
    clock = Clock(T)
    tb = _open(clock)
    tb.presence([join("study", "ann", T - 16 * HOUR)])  # 2025-11-21T23:00Z, still there
    got = tb.streak(METRIC, "ann")
    assert (got.current.length, got.current.first_day, got.current.last_day) == \
        (2, "2025-11-21", "2025-11-22")


def test_duplicate_joins_and_orphan_leaves_change_nothing() -> None:
    clock = Clock(T)
    tb = _open(clock)
    tb.presence([join("r", "ann", T - 100), join("r", "ann", T - 50), leave("r", "bob", T - 40),
                 leave("r", "ann", T - 10), leave("r", "ann", T - 5)])
    assert tb.sessions("ann") == [{"room": "r", "start": T - 100, "end": T - 10,
                                   "seconds": 90}]
    assert tb.sessions("bob") == []
    assert tb.presence_noops() == {"duplicate_join": 1, "orphan_leave": 2}


def test_a_snapshot_lists_up_to_a_million_members() -> None:
    """A Twitch channel's chatters are one snapshot: 100,000 was too few for the biggest."""
    tb = _open(Clock(T))
    tb.presence([snap("big", [f"v{i}" for i in range(150_000)], T - 10)])
    assert tb.concurrency(room="big", step="minute", start=T - 10, end=T - 9)[0].peak == \
        150_000
    with pytest.raises(InvalidEvent) as err:
        tb.presence([snap("big", [f"v{i}" for i in range(1_000_001)], T - 5)])
    assert (err.value.index, err.value.field) == (0, "members")
    tb.close()


def test_snapshot_joins_the_absent_and_leaves_the_unlisted() -> None:
    clock = Clock(T)
    tb = _open(clock)
    tb.presence([join("r", "ann", T - 100), join("r", "bob", T - 90),
                 snap("r", ["bob", "cy"], T - 50)])
    assert {m["member"]: m["since"] for m in tb.room("r")["members"]} == \
        {"bob": T - 90, "cy": T - 50}
    assert tb.sessions("ann") == [{"room": "r", "start": T - 100, "end": T - 50,
                                   "seconds": 50}]


def test_close_on_gap_last_seen_closes_at_the_last_word_about_the_room() -> None:
    clock = Clock(T)
    tb = _open(clock)
    tb.set_presence(close_on_gap="last_seen")
    tb.presence([snap("r", ["ann", "bob"], T - 1000), snap("r", ["ann", "bob"], T - 900),
                 snap("r", ["bob"], T - 100)])  # the store was down from T-900 to T-100
    assert tb.sessions("ann") == [{"room": "r", "start": T - 1000, "end": T - 900,
                                   "seconds": 100}]
    assert tb.sum(METRIC, "bob") == 1000
    tb.set_presence(close_on_gap="snapshot")  # replays the history with the new setting
    assert tb.sessions("ann")[0]["end"] == T - 100


@pytest.mark.parametrize("late", [
    leave("r", "ann", T - 101),  # older than ann's join in r
    join("r", "ann", T - 101),
    snap("r", ["ann"], T - 1),  # older than the room's newest op (bob's join at T)
])
def test_out_of_order_is_refused_and_nothing_applied(late: dict[str, Any]) -> None:
    clock = Clock(T)
    tb = _open(clock)
    tb.presence([join("r", "ann", T - 100), join("r", "bob", T)])
    before = ([tb.sessions(m) for m in ("ann", "bob", "cy")], tb.rooms(), tb.migrations())
    with pytest.raises(OutOfOrder) as caught:
        tb.presence([join("other", "cy", T, id="c1"), late])
    assert caught.value.code == "out_of_order" and caught.value.status == 409
    assert caught.value.details["index"] == 1
    assert ([tb.sessions(m) for m in ("ann", "bob", "cy")], tb.rooms(), tb.migrations()) == before
    # the refused request did not remember its id either
    assert tb.presence([join("other", "cy", T, id="c1")]) == Accepted(1, 0)


def test_order_is_per_member_and_room() -> None:
    clock = Clock(T)
    tb = _open(clock)
    tb.presence([join("r", "ann", T)])
    # older, but another member or another room: in order; an equal ts is in order too
    assert tb.presence([join("r", "bob", T - 50), join("s", "ann", T - 50),
                        leave("r", "ann", T)]) == Accepted(3, 0)
    with pytest.raises(OutOfOrder):
        tb.presence([join("r", "bob", T - 51)])
    with pytest.raises(OutOfOrder):  # a later op in the same request already moved on
        tb.presence([join("x", "cy", T), leave("x", "cy", T - 1)])


@pytest.mark.parametrize("batch", [
    # the room's newest op (bob's leave at T) counts though a join came first in the request
    [join("r", "cy", T - 50), snap("r", ["cy"], T - 40)],
    # a snapshot that closed ann's session counts for her after a later snapshot of the room
    [snap("r", ["bob"], T + 10), snap("r", ["bob"], T + 20), join("r", "ann", T + 5)],
    # a snapshot counts for whoever an earlier op of the request had put in the room
    [join("r", "cy", T - 50), snap("r", [], T + 10), leave("r", "cy", T + 5)],
])
def test_snapshots_in_a_request_order_the_ops_after_them(batch: list[dict[str, Any]]) -> None:
    clock = Clock(T + 60)
    tb = _open(clock)
    tb.presence([join("r", "ann", T - 100), join("r", "bob", T - 100), leave("r", "bob", T)])
    with pytest.raises(OutOfOrder) as caught:
        tb.presence(batch)
    assert caught.value.details["index"] == len(batch) - 1


def test_ids_are_idempotent() -> None:
    clock = Clock(T)
    tb = _open(clock)
    op = join("r", "ann", T - 100, id="j1")
    assert tb.presence([op, op]) == Accepted(1, 1)
    tb.presence([leave("r", "ann", T - 10, id="l1"), join("r", "ann", T - 5, id="j2")])
    # an old op replayed with its id is a duplicate, not out of order, and changes nothing
    assert tb.presence([op]) == Accepted(0, 1)
    assert tb.presence([leave("r", "ann", T - 10, id="l1")]) == Accepted(0, 1)
    assert [s["end"] for s in tb.sessions("ann")] == [T - 10, None]
    assert tb.presence([op], space="elsewhere") == Accepted(1, 0)  # ids are per space


# "join A, move to B, leave B", the move made four ways: a Discord move (leave and join at
# the same second), the new stream opened first at the same second, and either order with
# the two a few seconds apart.
MOVES = {"discord": (leave("a", "ann", T - 200), join("b", "ann", T - 200)),
         "opened_first": (join("b", "ann", T - 200), leave("a", "ann", T - 200)),
         "leave_then_join": (leave("a", "ann", T - 200), join("b", "ann", T - 190)),
         "join_then_leave": (join("b", "ann", T - 210), leave("a", "ann", T - 200))}


def _join_move_leave(separately: bool, kind: str) -> list[list[dict[str, Any]]]:
    ops = [join("a", "ann", T - 300), *MOVES[kind], leave("b", "ann", T - 100)]
    return [[op] for op in ops] if separately else [ops]


@pytest.mark.parametrize("separately", [False, True])
@pytest.mark.parametrize("kind", sorted(MOVES))
def test_join_move_leave_is_one_migration_not_also_back(kind: str, separately: bool) -> None:
    """SPEC §7: the join to A was made before the session in B began, so it never pairs
    with that session's leave: A -> B once, never also B -> A."""
    tb = _open(Clock(T))
    for batch in _join_move_leave(separately, kind):
        tb.presence(batch)
    join_ts = MOVES[kind][0 if MOVES[kind][0]["type"] == "join" else 1]["ts"]
    assert tb.migrations(member="ann") == {
        "migrations": [{"from": "a", "to": "b", "count": 1}],
        "moves": [{"member": "ann", "from": "a", "to": "b", "ts": join_ts}]}
    tb.set_presence(migration_window=600)  # replayed with the new window: still once
    assert tb.migrations()["migrations"] == [{"from": "a", "to": "b", "count": 1}]


@pytest.mark.parametrize(("ops", "want"), [
    # in A, visit B and come back, leave A (and rejoin it): no move from A to B or back
    ([join("a", "ann", T - 90), join("b", "ann", T - 80), leave("b", "ann", T - 70),
      leave("a", "ann", T - 60), join("a", "ann", T - 50)], []),
    # in A, open B and C, close A (A -> B), close C, close B, rejoin B: only A -> B
    ([join("a", "ann", T - 90), join("b", "ann", T - 80), join("c", "ann", T - 70),
      leave("a", "ann", T - 60), leave("c", "ann", T - 50), leave("b", "ann", T - 40),
      join("b", "ann", T - 30)], [("a", "b", T - 80)]),
    # the same, B closed before C: C outlives B, so B -> C as well
    ([join("a", "ann", T - 90), join("b", "ann", T - 80), join("c", "ann", T - 70),
      leave("a", "ann", T - 60), leave("b", "ann", T - 50), leave("c", "ann", T - 40)],
     [("a", "b", T - 80), ("b", "c", T - 70)]),
    # leave A, rejoin A, open B, leave A: one move, at the open of B
    ([join("a", "ann", T - 90), leave("a", "ann", T - 80), join("a", "ann", T - 70),
      join("b", "ann", T - 60), leave("a", "ann", T - 50)], [("a", "b", T - 60)]),
    # in A and B, leave B, then move from A to B: A -> B once (the leave of B, made
    # while in A, pairs with nothing)
    ([join("a", "ann", T - 90), join("b", "ann", T - 80), leave("b", "ann", T - 70),
      leave("a", "ann", T - 60), join("b", "ann", T - 60)], [("a", "b", T - 60)]),
    # a real round trip counts both ways
    ([join("a", "ann", T - 90), leave("a", "ann", T - 80), join("b", "ann", T - 80),
      leave("b", "ann", T - 70), join("a", "ann", T - 70)],
     [("a", "b", T - 80), ("b", "a", T - 70)]),
])
def test_only_moves_from_one_room_to_another_are_migrations(
        ops: list[dict[str, Any]], want: list[tuple[str, str, int]]) -> None:
    """docs/api.md: just before the first of the pair the member is in the left room and
    not the joined one, just after the second the reverse; the spec's wording alone would
    count a move both ways in some of these."""
    tb = _open(Clock(T))
    tb.presence(ops)
    got = tb.migrations(member="ann")["moves"]
    assert [(m["from"], m["to"], m["ts"]) for m in got] == want
    rooms = sorted({op["room"] for op in ops})
    for order in (rooms, rooms[::-1]):  # room by room: out of time order, same moves
        again = _open(Clock(T))
        for room in order:
            again.presence([op for op in ops if op["room"] == room])
        assert again.migrations(member="ann")["moves"] == got, order


def test_presence_metric_refuses_events_and_can_be_renamed() -> None:
    tb = _open(Clock(T))
    tb.presence([join("r", "ann", T - 100)])
    with pytest.raises(tallyboard.Conflict):
        tb.record(METRIC, "ann", 5, ts=T - 1)
    assert tb.set_presence(metric="room_time")["metric"] == "room_time"
    assert tb.sum("room_time", "ann", tag=("room", "r")) == 100
    with pytest.raises(tallyboard.Conflict):
        tb.record("room_time", "ann", 5, ts=T - 1)
    assert tb.record(METRIC, "ann", 5, ts=T - 1) == Accepted(1, 0)  # an ordinary metric now


# ================================================================================================
# HTTP
# ================================================================================================
@pytest.fixture
def clock() -> Clock:
    return Clock(T)


@pytest.fixture
def tb(clock: Clock) -> Iterator[Tallyboard]:
    engine = _open(clock)
    yield engine
    engine.close()


@pytest.fixture
def http(tb: Tallyboard) -> TestClient:
    return TestClient(create_app(tb, Settings(allowed_hosts=TEST_HOSTS)))


def _prom(text: str, name: str, label: str) -> float:
    m = re.search(rf'^{name}\{{{label}\}} (\S+)$', text, re.M)
    assert m, f"{name}{{{label}}} not in /metrics"
    return float(m.group(1))


def test_post_single_array_and_ndjson(http: TestClient) -> None:
    r = http.post("/v1/presence", json=join("r", "ann", T - 100))
    assert r.status_code == 200 and r.json() == {"accepted": 1, "duplicates": 0}
    r = http.post("/v1/presence", json=[join("r", "bob", T - 90), leave("r", "ann", T - 50),
                                         snap("s", ["cy"], T - 40, id="s1")])
    assert r.json() == {"accepted": 3, "duplicates": 0}
    body = "\n".join(json.dumps(x) for x in (snap("s", ["cy"], T - 40, id="s1"),
                                             join("s", "dee", T - 30)))
    r = http.post("/v1/presence", content=body,
                  headers={"Content-Type": "application/x-ndjson"})
    assert r.json() == {"accepted": 1, "duplicates": 1}
    got = http.get("/v1/presence/rooms").json()
    assert got == {"rooms": [{"room": "s", "members": 2}, {"room": "r", "members": 1}]}
    r = http.post("/v1/presence", json=join("r", "ann", T - 1), params={"space": "g2"})
    assert http.get("/v1/presence/rooms", params={"space": "g2"}).json()["rooms"] == \
        [{"room": "r", "members": 1}]


@pytest.mark.parametrize(("bad", "field"), [
    ({"type": "jump", "room": "r", "member": "x", "ts": T}, "type"),
    ({"type": "join", "room": "r", "ts": T}, "member"),
    ({"type": "snapshot", "room": "r", "members": "x", "ts": T}, "members"),
    ({"type": "join", "room": "r", "member": "x", "ts": T, "value": 3}, "value"),
    ({"type": "leave", "room": "", "member": "x", "ts": T}, "room"),
    ({"type": "join", "room": "r", "member": "x", "ts": T + 3600}, "ts"),
    ("join", "event"),
])
def test_batch_with_one_bad_op_is_422_and_applies_nothing(http: TestClient, bad: Any,
                                                          field: str) -> None:
    batch = [join("r", "ann", T - 100), snap("s", ["bob"], T - 50), bad, leave("r", "ann", T)]
    r = http.post("/v1/presence", json=batch)
    assert r.status_code == 422
    err = r.json()["error"]
    assert (err["code"], err["index"], err["field"]) == ("invalid_event", 2, field)
    assert http.get("/v1/presence/rooms").json() == {"rooms": []}
    assert http.get("/v1/presence/sessions", params={"member": "ann"}).json() == \
        {"sessions": []}
    metrics = http.get("/metrics").text
    assert _prom(metrics, "tallyboard_presence_ops_total", 'outcome="rejected"') == 4
    assert _prom(metrics, "tallyboard_presence_ops_total", 'outcome="accepted"') == 0


def test_out_of_order_over_http_is_409_with_index(http: TestClient) -> None:
    http.post("/v1/presence", json=[join("r", "ann", T - 100), join("r", "bob", T)])
    r = http.post("/v1/presence", json=[join("q", "cy", T), leave("r", "ann", T - 200)])
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "out_of_order" and r.json()["error"]["index"] == 1
    r = http.post("/v1/presence", json=snap("r", [], T - 1))
    assert r.status_code == 409 and r.json()["error"]["index"] == 0
    assert http.get("/v1/presence/rooms").json() == {"rooms": [{"room": "r", "members": 2}]}


def test_room_and_rooms(http: TestClient) -> None:
    http.post("/v1/presence", json=[join("big", "bob", T - 50), join("big", "ann", T - 80),
                                    join("big", "cy", T - 50), join("small", "ann", T - 10),
                                    join("gone", "dee", T - 10), leave("gone", "dee", T)])
    assert http.get("/v1/presence/rooms").json() == {"rooms": [
        {"room": "big", "members": 3}, {"room": "small", "members": 1}]}
    assert http.get("/v1/presence/rooms/big").json() == {"room": "big", "members": [
        {"member": "ann", "since": T - 80}, {"member": "bob", "since": T - 50},
        {"member": "cy", "since": T - 50}]}
    assert http.get("/v1/presence/rooms/gone").json() == {"room": "gone", "members": []}


def test_sessions_of_one_second_keep_their_opening_order(http: TestClient,
                                                         clock: Clock) -> None:
    """Join, leave and join again in one second: the closed session comes first, the open
    one last (as they were opened), not the other way round."""
    http.post("/v1/presence", json=[join("a", "ann", T - 9), leave("a", "ann", T - 9),
                                    join("a", "ann", T - 9)])
    got = http.get("/v1/presence/sessions", params={"member": "ann"}).json()["sessions"]
    assert [(s["start"], s["end"]) for s in got] == [(T - 9, T - 9), (T - 9, None)]


def test_sessions_endpoint_and_filters(http: TestClient, clock: Clock) -> None:
    http.post("/v1/presence", json=[join("a", "ann", T - 1000), leave("a", "ann", T - 900),
                                    join("b", "ann", T - 500), leave("b", "ann", T - 400),
                                    join("a", "ann", T - 100)])
    every = http.get("/v1/presence/sessions", params={"member": "ann"}).json()["sessions"]
    assert every == [
        {"room": "a", "start": T - 1000, "end": T - 900, "seconds": 100},
        {"room": "b", "start": T - 500, "end": T - 400, "seconds": 100},
        {"room": "a", "start": T - 100, "end": None, "seconds": 100}]

    def starts_of(**params: Any) -> list[int]:
        got = http.get("/v1/presence/sessions", params={"member": "ann", **params}).json()
        return [s["start"] for s in got["sessions"]]

    assert starts_of(start=T - 900) == [T - 500, T - 100]  # [.., T-900) does not overlap
    assert starts_of(start=T - 901) == [T - 1000, T - 500, T - 100]
    assert starts_of(end=T - 500) == [T - 1000]
    assert starts_of(start=T - 450, end=T - 50) == [T - 500, T - 100]
    clock.now = T + 50
    assert every[:2] == http.get("/v1/presence/sessions",
                                 params={"member": "ann"}).json()["sessions"][:2]
    assert http.get("/v1/presence/sessions",
                    params={"member": "ann"}).json()["sessions"][2]["seconds"] == 150
    assert http.get("/v1/presence/sessions", params={"member": "nobody"}).json() == \
        {"sessions": []}
    r = http.get("/v1/presence/sessions")
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_query"


def test_concurrency_endpoint(http: TestClient, clock: Clock) -> None:
    h0 = T - 2 * HOUR
    http.post("/v1/presence", json=[join("a", "ann", h0), join("a", "bob", h0 + 1800),
                                    join("b", "ann", h0 + 1800), leave("a", "bob", h0 + 2700),
                                    leave("a", "ann", h0 + HOUR), join("b", "cy", T - 600)])
    clock.now = T + 900  # a quarter of the current hour has passed
    got = http.get("/v1/presence/concurrency",
                   params={"start": h0, "end": T + HOUR, "step": "hour"}).json()["points"]
    assert [(p["start"], p["peak"]) for p in got] == [(h0, 3), (h0 + HOUR, 2), (T, 2)]
    assert got[0]["avg"] == (HOUR + 900 + 1800) / HOUR
    assert got[0]["label"] == "2025-11-22T13:00:00Z"
    assert got[1]["avg"] == (HOUR + 600) / HOUR
    assert got[2]["avg"] == 2.0  # only the 900 elapsed seconds count
    room_a = http.get("/v1/presence/concurrency",
                      params={"start": h0, "end": h0 + HOUR, "step": "minute",
                              "room": "a"}).json()["points"]
    assert len(room_a) == 60
    assert [p["peak"] for p in room_a[29:31] + room_a[44:46]] == [1, 2, 2, 1]
    assert room_a[30]["avg"] == 2.0
    day = http.get("/v1/presence/concurrency",
                   params={"start": h0, "end": T, "step": "day"}).json()["points"]
    assert [(p["label"], p["peak"]) for p in day] == [("2025-11-22", 3)]
    assert day[0]["avg"] == (HOUR + 900 + 1800 + HOUR + 600) / (2 * HOUR)
    r = http.get("/v1/presence/concurrency", params={"step": "hour"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_query"


def test_migrations_endpoint_and_filters(http: TestClient) -> None:
    http.post("/v1/presence", json=[
        join("a", "ann", T - 5000), leave("a", "ann", T - 4000), join("b", "ann", T - 3700),
        join("b", "ann", T - 3650),  # a duplicate join: changes nothing, no migration
        leave("b", "ann", T - 3000), join("c", "ann", T - 2699),  # 301 s apart: none
        join("a", "bob", T - 2000), join("b", "bob", T - 1990),  # join then leave: b -> ...
        leave("a", "bob", T - 1900),  # left a 90 s after joining b: a -> b
        snap("a", ["cy"], T - 1000), snap("a", [], T - 900), snap("c", ["cy"], T - 800),
        leave("c", "ann", T - 500), join("c", "ann", T - 400),  # same room: none
    ])
    got = http.get("/v1/migrations").json()
    assert got == {"migrations": [{"from": "a", "to": "b", "count": 2},
                                  {"from": "a", "to": "c", "count": 1}]}
    assert http.get("/v1/migrations", params={"to": "c"}).json()["migrations"] == \
        [{"from": "a", "to": "c", "count": 1}]
    assert http.get("/v1/migrations", params={"from": "a", "to": "b"}).json()[
        "migrations"] == [{"from": "a", "to": "b", "count": 2}]
    # a migration's time is its join's: bob's a -> b is at T-1990
    assert http.get("/v1/migrations", params={"start": T - 1990, "end": T - 800}).json()[
        "migrations"] == [{"from": "a", "to": "b", "count": 1}]
    assert http.get("/v1/migrations", params={"start": T - 1989}).json()[
        "migrations"] == [{"from": "a", "to": "c", "count": 1}]
    moves = http.get("/v1/migrations", params={"member": "ann"}).json()
    assert moves["moves"] == [{"member": "ann", "from": "a", "to": "b", "ts": T - 3700}]
    assert moves["migrations"] == [{"from": "a", "to": "b", "count": 1}]
    assert http.get("/v1/migrations", params={"n": 1}).json() == {
        "migrations": [{"from": "a", "to": "b", "count": 2}]}  # the most frequent pair
    for bad in ("0", "-1", "x"):
        r = http.get("/v1/migrations", params={"n": bad})
        assert r.status_code == 400 and r.json()["error"]["param"] == "n", r.text


def test_flow_viewers_need_both_rooms() -> None:
    tb = _open(Clock(T))
    tb.presence([join("a", "ann", T - 100), leave("a", "ann", T - 50),
                 join("b", "ann", T - 40)])
    got = tb.migrations(source="a", target="b", viewers=5)
    assert got["viewers"] == [{"member": "ann", "left": T - 50, "joined": T - 40}]
    for bad in ({"source": "a"}, {"target": "b"}, {}):
        with pytest.raises(BadQuery) as err:
            tb.migrations(viewers=5, **bad)
        assert err.value.details["param"] == "viewers"
    tb.close()


def test_overlap_endpoint(http: TestClient) -> None:
    http.post("/v1/presence", json=[
        join("a", "ann", T - 5000), join("a", "bob", T - 5000), join("a", "cy", T - 5000),
        join("b", "ann", T - 4000), leave("b", "ann", T - 3000),
        join("c", "bob", T - 2000), join("c", "ann", T - 1000), join("b", "dee", T - 100),
    ])
    got = http.get("/v1/presence/overlap", params={"room": "a", "start": T - 6000}).json()
    assert got == {"room": "a", "start": T - 6000, "end": T, "audience": 3, "shared": 3,
                   "overlap": [{"room": "c", "members": 2, "share": 2 / 3},
                               {"room": "b", "members": 1, "share": 1 / 3}]}
    now = http.get("/v1/presence/overlap", params={"room": "a"}).json()  # present now
    assert (now["start"], now["overlap"]) == (None, [{"room": "c", "members": 2, "share": 1.0}])
    early = http.get("/v1/presence/overlap", params={"room": "a", "start": T - 6000,
                                                     "end": T - 2500, "n": 5}).json()
    assert early["overlap"] == [{"room": "b", "members": 1, "share": 1.0}]
    assert http.get("/v1/presence/overlap", params={"room": "zzz"}).json()["audience"] == 0
    for params in ({"room": "a", "end": T}, {"room": "a", "n": 0},
                   {"room": "a", "start": T, "end": T - 1}):
        r = http.get("/v1/presence/overlap", params=params)
        assert r.status_code == 400, (params, r.text)


@pytest.mark.parametrize("separately", [False, True])
@pytest.mark.parametrize("kind", sorted(MOVES))
def test_join_move_leave_is_one_migration_over_http(http: TestClient, kind: str,
                                                    separately: bool) -> None:
    for batch in _join_move_leave(separately, kind):
        assert http.post("/v1/presence", json=batch).status_code == 200
    assert http.get("/v1/migrations").json() == {
        "migrations": [{"from": "a", "to": "b", "count": 1}]}
    assert http.get("/v1/migrations", params={"from": "b"}).json() == {"migrations": []}
    flow = http.get("/v1/migrations", params={"from": "a", "to": "b", "viewers": 10}).json()
    assert [v["member"] for v in flow["viewers"]] == ["ann"]
    assert http.get("/v1/migrations", params={"from": "a", "viewers": 10}).status_code == 400
    moves = http.get("/v1/migrations", params={"member": "ann"}).json()["moves"]
    assert [(m["from"], m["to"]) for m in moves] == [("a", "b")]


def test_metrics_count_noops_and_outcomes(http: TestClient) -> None:
    http.post("/v1/presence", json=[join("r", "ann", T - 100), join("r", "ann", T - 90),
                                    join("r", "ann", T - 80), leave("r", "bob", T - 70),
                                    snap("r", ["ann"], T - 60, id="s")])
    http.post("/v1/presence", json=snap("r", ["ann"], T - 60, id="s"))
    http.post("/v1/presence", json=[leave("r", "ann", T - 200)])  # out of order
    text = http.get("/metrics").text
    assert _prom(text, "tallyboard_presence_noops", 'kind="duplicate_join"') == 2
    assert _prom(text, "tallyboard_presence_noops", 'kind="orphan_leave"') == 1
    assert _prom(text, "tallyboard_presence_ops_total", 'outcome="accepted"') == 5
    assert _prom(text, "tallyboard_presence_ops_total", 'outcome="duplicate"') == 1
    assert _prom(text, "tallyboard_presence_ops_total", 'outcome="rejected"') == 1


def test_presence_config_put_replays_history(http: TestClient) -> None:
    assert http.get("/v1/presence/config").json() == {
        "metric": METRIC, "migration_window": 300, "close_on_gap": "snapshot"}
    http.post("/v1/presence", json=[snap("r", ["ann"], T - 1000), snap("r", ["ann"], T - 900),
                                    snap("r", [], T - 100), join("s", "ann", T - 50)])
    assert http.get("/v1/migrations").json()["migrations"] == [
        {"from": "r", "to": "s", "count": 1}]
    r = http.put("/v1/presence/config", json={"close_on_gap": "last_seen"})
    assert r.status_code == 200 and r.json()["close_on_gap"] == "last_seen"
    sessions = http.get("/v1/presence/sessions", params={"member": "ann"}).json()["sessions"]
    assert sessions[0] == {"room": "r", "start": T - 1000, "end": T - 900, "seconds": 100}
    # r closed at T-900 now: the join to s at T-50 is 850 s later, no longer a migration
    assert http.get("/v1/migrations").json()["migrations"] == []
    got = http.get("/v1/sum", params={"metric": METRIC, "member": "ann"}).json()
    assert got == {"sum": 150}
    r = http.put("/v1/presence/config", json={"close_on_gap": "sometimes"})
    assert r.status_code == 400


def test_board_and_errors_over_http(http: TestClient) -> None:
    http.post("/v1/presence", json=[join("r", "ann", T - 3 * HOUR), join("s", "bob", T - HOUR)])
    got = http.get("/v1/leaderboard", params={"metric": METRIC, "window": "day"}).json()
    assert got["entries"] == [{"rank": 1, "member": "ann", "score": 3 * HOUR},
                              {"rank": 2, "member": "bob", "score": HOUR}]
    got = http.get("/v1/leaderboard", params={"metric": METRIC, "tag.room": "s"}).json()
    assert got["entries"] == [{"rank": 1, "member": "bob", "score": HOUR}]
    r = http.post("/v1/events", json={"metric": METRIC, "member": "ann", "ts": T - 1})
    assert r.status_code == 409


# ================================================================================================
# The real server: restart and kill -9; the CLI
# ================================================================================================
def _state(url: str, at: int) -> list[Any]:
    queries: list[tuple[str, dict[str, Any]]] = [
        ("/v1/presence/rooms", {}), ("/v1/presence/rooms/r1", {}), ("/v1/presence/rooms/r2", {}),
        ("/v1/leaderboard", {"metric": METRIC, "window": "all", "at": at}),
        ("/v1/sum", {"metric": METRIC, "member": "bob", "end": at}),
        ("/v1/migrations", {"member": "bob"}),
        ("/v1/presence/concurrency", {"start": at - 300, "end": at, "step": "minute"})]
    return [httpx.get(url + path, params=q).json() for path, q in queries]


@pytest.mark.slow
def test_open_sessions_survive_kill9_and_keep_counting(server: ServerProcess) -> None:
    t0 = int(time.time()) - 200
    ops = [join("r1", "ann", t0, id="1"), join("r1", "bob", t0 + 10, id="2"),
           leave("r1", "bob", t0 + 50, id="3"), join("r2", "bob", t0 + 60, id="4"),
           snap("r2", ["bob", "cy"], t0 + 70, id="5"), join("r1", "ann", t0 + 80, id="6")]
    r = httpx.post(server.url + "/v1/presence", json=ops)
    assert r.json() == {"accepted": 6, "duplicates": 0}
    at = t0 + 150
    before = _state(server.url, at)
    assert before[3]["entries"] == [{"rank": 1, "member": "ann", "score": 150},
                                    {"rank": 2, "member": "bob", "score": 130},
                                    {"rank": 3, "member": "cy", "score": 80}]
    server.kill9()
    server.start()
    assert _state(server.url, at) == before
    # the open sessions kept counting while the server was down, and still do
    lo = int(time.time()) - t0
    ann = httpx.get(server.url + "/v1/sum", params={"metric": METRIC, "member": "ann"}).json()
    assert lo <= ann["sum"] <= int(time.time()) + 1 - t0
    assert httpx.get(server.url + "/v1/presence/rooms/r1").json()["members"] == [
        {"member": "ann", "since": t0}]
    # replays of acknowledged ids are duplicates; a leave after the restart closes exactly
    assert httpx.post(server.url + "/v1/presence", json=ops).json() == \
        {"accepted": 0, "duplicates": 6}
    r = httpx.post(server.url + "/v1/presence", json=leave("r1", "ann", t0 + 190, id="7"))
    assert r.json() == {"accepted": 1, "duplicates": 0}
    server.stop()
    server.start()
    got = httpx.get(server.url + "/v1/presence/sessions", params={"member": "ann"}).json()
    assert got == {"sessions": [{"room": "r1", "start": t0, "end": t0 + 190, "seconds": 190}]}
    assert httpx.get(server.url + "/v1/sum",
                     params={"metric": METRIC, "member": "ann"}).json() == {"sum": 190}


@pytest.mark.slow
def test_presence_config_survives_kill9(server: ServerProcess) -> None:
    t0 = int(time.time()) - 1000
    httpx.put(server.url + "/v1/presence/config", json={"migration_window": 10})
    httpx.post(server.url + "/v1/presence", json=[join("a", "m", t0), leave("a", "m", t0 + 100),
                                                  join("b", "m", t0 + 120)])
    assert httpx.get(server.url + "/v1/migrations").json() == {"migrations": []}
    server.kill9()
    server.start()
    assert httpx.get(server.url + "/v1/presence/config").json()["migration_window"] == 10
    assert httpx.get(server.url + "/v1/migrations").json() == {"migrations": []}


def test_cli_presence_join_leave_snapshot(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    runner = CliRunner()
    t0 = int(time.time()) - 600

    def cli(*args: str) -> str:
        got = runner.invoke(main, ["presence", *args, "--data", data])
        assert got.exit_code == 0, got.output
        return got.output

    assert "accepted 1 · duplicates 0" in cli("join", "library", "alice", "--ts", str(t0))
    cli("join", "library", "bob", "--ts", str(t0 + 10))
    cli("leave", "library", "alice", "--ts", str(t0 + 100))
    cli("join", "lab", "alice", "--ts", str(t0 + 160))
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 + 200))
    assert "accepted 1" in cli("snapshot", "library", "carol", "dan", "--ts", iso)
    assert "accepted 1" in cli("leave", "lab", "nobody", "--ts", str(t0 + 300))  # orphan
    rooms = cli("rooms")
    assert re.search(r"library\s*│\s*2", rooms) and re.search(r"lab\s*│\s*1", rooms)
    assert re.search(r"library\s*│\s*lab\s*│\s*1", cli("migrations"))
    with tallyboard.open(data) as tb:
        assert isinstance(tb, Tallyboard)
        assert tb.sessions("bob") == [{"room": "library", "start": t0 + 10, "end": t0 + 200,
                                       "seconds": 190}]
        assert {m["member"] for m in tb.room("library")["members"]} == {"carol", "dan"}
        assert tb.sum(METRIC, "alice", end=t0 + 200) == 100 + 40
        assert tb.presence_noops() == {"orphan_leave": 1}
    bad = runner.invoke(main, ["presence", "leave", "library", "carol", "--ts", str(t0),
                               "--data", data])
    assert bad.exit_code == 1 and "out_of_order" in bad.output
