"""GET /v1/sum, /v1/series, /v1/leaderboard, /v1/rank, /v1/streak against SPEC §2, §4, §5."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from api_helpers import NOW, Api, api, assert_error, event, ts

pytestmark = pytest.mark.usefixtures("log_backend")  # each test on every store


@pytest.fixture
def tb() -> Iterator[Api]:
    with api() as a:
        yield a


def entries(board: dict[str, Any]) -> list[tuple[int, str, int]]:
    return [(e["rank"], e["member"], e["score"]) for e in board["entries"]]


# ---- sum ------------------------------------------------------------------------------------

def test_sum_open_and_half_open_bounds(tb: Api) -> None:
    x = NOW - 1000
    tb.record(event("alice", 1, at=x), event("alice", 10, at=x + 1), event("alice", 100, at=x + 2))
    assert tb.sum("points", "alice") == 111
    assert tb.sum("points", "alice", start=x + 1) == 110
    assert tb.sum("points", "alice", end=x + 2) == 11
    assert tb.sum("points", "alice", start=x, end=x + 1) == 1
    assert tb.sum("points", "alice", start=x + 1, end=x + 1) == 0


def test_sum_bounds_are_not_floored(tb: Api) -> None:
    x = NOW - 1000
    tb.record(event("alice", 1, at=x), event("alice", 10, at=x + 1))
    assert tb.sum("points", "alice", start=x + 0.5) == 10
    assert tb.sum("points", "alice", end=x + 0.5) == 1
    assert tb.sum("points", "alice", start=x - 0.5, end=x + 0.5) == 1


def test_sum_accepts_rfc3339_bounds(tb: Api) -> None:
    tb.record(event("alice", 3, at=ts("2026-11-24T10:00:00Z")))
    assert tb.sum("points", "alice", start="2026-11-24T11:00:00+01:00",
                  end="2026-11-24T10:00:01Z") == 3
    assert tb.sum("points", "alice", start="2026-11-24T10:00:01Z") == 0


def test_sum_unknown_member_is_zero_unknown_metric_is_404(tb: Api) -> None:
    tb.record(event("alice"))
    assert tb.sum("points", "nobody") == 0
    assert_error(tb.get("/v1/sum", metric="nope", member="alice"), 404, "not_found")


def test_sum_start_after_end_is_400(tb: Api) -> None:
    tb.record(event("alice"))
    assert_error(tb.get("/v1/sum", metric="points", member="alice", start=5, end=4), 400,
                 "bad_query", param="start")


def test_sum_tag_filter(tb: Api) -> None:
    assert tb.put("steps", {"dimensions": ["activity"]}).status_code == 200
    tb.record(event("alice", 5, metric="steps", tags={"activity": "run"}),
              event("alice", 3, metric="steps", tags={"activity": "walk"}),
              event("alice", 2, metric="steps"))
    assert tb.sum("steps", "alice") == 10
    assert tb.sum("steps", "alice", **{"tag.activity": "run"}) == 5
    assert tb.sum("steps", "alice", **{"tag.activity": "swim"}) == 0
    assert_error(tb.get("/v1/sum", metric="steps", member="alice", **{"tag.channel": "x"}),
                 400, "bad_query", param="tag.channel")
    r = tb.get("/v1/sum", metric="steps", member="alice",
               **{"tag.activity": "run", "tag.other": "x"})
    assert_error(r, 400, "bad_query")


# ---- series ---------------------------------------------------------------------------------

def test_series_hour_zero_filled_and_first_bucket_starts_before_query(tb: Api) -> None:
    day = "2026-11-24T"
    tb.record(event("alice", 2, at=ts(day + "10:15:00Z")),
              event("alice", 3, at=ts(day + "10:45:00Z")),
              event("alice", 4, at=ts(day + "12:30:00Z")),
              event("alice", 50, at=ts(day + "12:50:00Z")))
    body = tb.ok("/v1/series", metric="points", member="alice", step="hour",
                 start=ts(day + "10:30:00Z"), end=ts(day + "12:45:00Z"))
    assert body == {"points": [
        {"start": ts(day + "10:00:00Z"), "label": "2026-11-24T10:00:00Z", "value": 3},
        {"start": ts(day + "11:00:00Z"), "label": "2026-11-24T11:00:00Z", "value": 0},
        {"start": ts(day + "12:00:00Z"), "label": "2026-11-24T12:00:00Z", "value": 4},
    ]}


def test_series_end_is_exclusive(tb: Api) -> None:
    tb.record(event("alice", 1, at=ts("2026-11-24T11:00:00Z")))
    body = tb.ok("/v1/series", metric="points", member="alice", step="hour",
                 start=ts("2026-11-24T10:00:00Z"), end=ts("2026-11-24T11:00:00Z"))
    assert [(p["label"], p["value"]) for p in body["points"]] == [("2026-11-24T10:00:00Z", 0)]


@pytest.mark.parametrize(("step", "labels"), [
    ("day", ["2026-11-21", "2026-11-22", "2026-11-23"]),
    ("week", ["2026-11-16", "2026-11-23"]),
    ("month", ["2026-11"]),
    ("year", ["2026"]),
])
def test_series_calendar_labels(tb: Api, step: str, labels: list[str]) -> None:
    tb.record(event("alice", 1, at=ts("2026-11-21T12:00:00Z")),
              event("alice", 2, at=ts("2026-11-23T12:00:00Z")))
    body = tb.ok("/v1/series", metric="points", member="alice", step=step,
                 start=ts("2026-11-21T06:00:00Z"), end=ts("2026-11-23T18:00:00Z"))
    assert [p["label"] for p in body["points"]] == labels
    assert sum(p["value"] for p in body["points"]) == 3


def test_series_follows_metric_day_start_spec_example(tb: Api) -> None:
    assert tb.put("study", {"day_start": "17:00"}).status_code == 200
    tb.record(event("alice", 1, metric="study", at=ts("2026-11-22T16:59:59Z")),
              event("alice", 2, metric="study", at=ts("2026-11-22T17:00:00Z")),
              event("alice", 4, metric="study", at=ts("2026-11-23T16:59:59Z")),
              event("alice", 8, metric="study", at=ts("2026-11-23T17:00:00Z")))
    body = tb.ok("/v1/series", metric="study", member="alice", step="day",
                 start=ts("2026-11-22T12:00:00Z"), end=ts("2026-11-24T00:00:00Z"))
    assert body["points"] == [
        {"start": ts("2026-11-21T17:00:00Z"), "label": "2026-11-21", "value": 1},
        {"start": ts("2026-11-22T17:00:00Z"), "label": "2026-11-22", "value": 6},
        {"start": ts("2026-11-23T17:00:00Z"), "label": "2026-11-23", "value": 8},
    ]


def test_series_day_in_timezone(tb: Api) -> None:
    assert tb.put("steps", {"timezone": "Asia/Tokyo"}).status_code == 200
    tb.record(event("alice", 1, metric="steps", at=ts("2026-11-23T14:59:59Z")),
              event("alice", 2, metric="steps", at=ts("2026-11-23T15:00:00Z")))
    body = tb.ok("/v1/series", metric="steps", member="alice", step="day",
                 start=ts("2026-11-23T00:00:00Z"), end=ts("2026-11-23T16:00:00Z"))
    assert body["points"] == [
        {"start": ts("2026-11-22T15:00:00Z"), "label": "2026-11-23", "value": 1},
        {"start": ts("2026-11-23T15:00:00Z"), "label": "2026-11-24", "value": 2},
    ]


def test_series_defaults_start_first_event_end_now(tb: Api) -> None:
    tb.record(event("alice", 1, at=NOW - 2 * 3600 - 1), event("alice", 5, at=NOW + 10))
    body = tb.ok("/v1/series", metric="points", member="alice", step="hour")
    assert [p["value"] for p in body["points"]] == [1, 0, 0]
    assert tb.ok("/v1/series", metric="points", member="nobody", step="hour") == {"points": []}


def test_series_limits(tb: Api) -> None:
    tb.record(event("alice"))
    assert_error(tb.get("/v1/series", metric="points", member="alice", step="second",
                        start=NOW - 10_001, end=NOW), 400, "bad_query", param="step")
    assert len(tb.ok("/v1/series", metric="points", member="alice", step="second",
                     start=NOW - 10_000, end=NOW)["points"]) == 10_000
    assert_error(tb.get("/v1/series", metric="points", member="alice", step="fortnight"),
                 400, "bad_query", param="step")
    assert_error(tb.get("/v1/series", metric="points", member="alice", step="hour",
                        start=NOW, end=NOW), 400, "bad_query")
    assert_error(tb.get("/v1/series", metric="points", member="alice"), 400, "bad_query",
                 param="step")


# ---- leaderboard ----------------------------------------------------------------------------

@pytest.fixture
def board(tb: Api) -> Api:
    at = NOW - 600
    tb.record(event("a", 10, at=at), event("b", 7, at=at), event("c", 3, at=at),
              event("c", 4, at=at), event("d", 3, at=at), event("z", 5, at=at),
              event("z", -5, at=at), event("n", -2, at=at))
    return tb


def test_leaderboard_order_ranks_total(board: Api) -> None:
    body = board.ok("/v1/leaderboard", metric="points")
    assert body["window"] == {"start": None, "end": NOW}
    assert body["total"] == 5
    assert entries(body) == [(1, "a", 10), (2, "b", 7), (2, "c", 7), (4, "d", 3), (5, "n", -2)]


def test_leaderboard_ties_by_code_point(tb: Api) -> None:
    tb.record(*(event(m, 1) for m in ["b", "Zed", "a", "é", "A", "_"]))
    body = tb.ok("/v1/leaderboard", metric="points")
    assert [e["member"] for e in body["entries"]] == ["A", "Zed", "_", "a", "b", "é"]
    assert {e["rank"] for e in body["entries"]} == {1}


def test_leaderboard_n_and_offset(board: Api) -> None:
    body = board.ok("/v1/leaderboard", metric="points", n=2, offset=1)
    assert body["total"] == 5
    assert entries(body) == [(2, "b", 7), (2, "c", 7)]
    assert entries(board.ok("/v1/leaderboard", metric="points", n=1)) == [(1, "a", 10)]
    body = board.ok("/v1/leaderboard", metric="points", offset=10)
    assert body == {**body, "total": 5, "entries": []}
    assert board.ok("/v1/leaderboard", metric="points", n=1000)["total"] == 5


def test_leaderboard_default_n_is_ten(tb: Api) -> None:
    tb.record(*(event(f"m{i:02d}", 100 - i) for i in range(15)))
    body = tb.ok("/v1/leaderboard", metric="points")
    assert body["total"] == 15
    assert [e["member"] for e in body["entries"]] == [f"m{i:02d}" for i in range(10)]


@pytest.mark.parametrize(("params", "param"), [
    ({"n": 0}, "n"), ({"n": 1001}, "n"), ({"n": -1}, "n"), ({"n": "ten"}, "n"),
    ({"n": 1.5}, "n"), ({"offset": -1}, "offset"), ({"offset": "x"}, "offset"),
    ({"window": "fortnight"}, "window"), ({"window": "rolling:0s"}, "window"),
    ({"window": "rolling:5x"}, "window"), ({"window": "rolling:"}, "window"),
    ({"at": "soon"}, "at"), ({"at": "nan"}, "at"), ({"at": "2026-11-25T10:00:00"}, "at"),
])
def test_leaderboard_bad_params_are_400(board: Api, params: dict[str, Any], param: str) -> None:
    assert_error(board.get("/v1/leaderboard", metric="points", **params), 400, "bad_query",
                 param=param)


def test_leaderboard_members_group(board: Api) -> None:
    body = board.ok("/v1/leaderboard", metric="points", members="n,c,a,ghost,z")
    assert body["total"] == 3
    assert entries(body) == [(1, "a", 10), (2, "c", 7), (3, "n", -2)]
    body = board.ok("/v1/leaderboard", metric="points", members="c,a,c,a")
    assert body["total"] == 2
    assert entries(body) == [(1, "a", 10), (2, "c", 7)]
    body = board.ok("/v1/leaderboard", metric="points", members="b,c", n=1, offset=1)
    assert body["total"] == 2
    assert entries(body) == [(1, "c", 7)]


def test_leaderboard_members_limit(board: Api) -> None:
    group = ",".join(f"{i:x}" for i in range(10_000))  # short names: the URL stays < 64 KiB
    url = "/v1/leaderboard?metric=points&members="
    r = board.client.get(url + group + ",a")
    assert_error(r, 400, "bad_query", param="members")
    r = board.client.get(url + group)
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 4  # a, b, c and d are hex names too (n is not)


def test_leaderboard_tag_filter(tb: Api) -> None:
    assert tb.put("steps", {"dimensions": ["activity"]}).status_code == 200
    tb.record(event("alice", 5, metric="steps", tags={"activity": "run"}),
              event("bob", 9, metric="steps", tags={"activity": "walk"}),
              event("carol", 1, metric="steps", tags={"activity": "run", "other": "x"}))
    body = tb.ok("/v1/leaderboard", metric="steps", **{"tag.activity": "run"})
    assert entries(body) == [(1, "alice", 5), (2, "carol", 1)]
    assert_error(tb.get("/v1/leaderboard", metric="steps", **{"tag.other": "x"}), 400,
                 "bad_query", param="tag.other")


# ---- windows --------------------------------------------------------------------------------

@pytest.fixture
def history(tb: Api) -> Api:
    tb.record(event("alice", 1, at=ts("2025-06-01T00:00:00Z")),
              event("alice", 2, at=ts("2026-03-01T00:00:00Z")),
              event("alice", 4, at=ts("2026-11-10T00:00:00Z")),
              event("alice", 8, at=ts("2026-11-24T10:00:00Z")),  # Tuesday
              event("alice", 16, at=ts("2026-11-25T10:00:00Z")),  # Wednesday (today)
              event("alice", 32, at=NOW + 30))  # in the future: not yet visible
    return tb


@pytest.mark.parametrize(("window", "start", "score"), [
    ("all", None, 31),
    ("year", ts("2026-01-01T00:00:00Z"), 30),
    ("month", ts("2026-11-01T00:00:00Z"), 28),
    ("week", ts("2026-11-23T00:00:00Z"), 24),
    ("day", ts("2026-11-25T00:00:00Z"), 16),
    ("rolling:24h", NOW - 86400, 16),
    ("rolling:26h", NOW - 26 * 3600, 24),
    ("rolling:2d", NOW - 2 * 86400, 24),
    ("rolling:90m", NOW - 5400, 0),
])
def test_leaderboard_windows(history: Api, window: str, start: int | None, score: int) -> None:
    body = history.ok("/v1/leaderboard", metric="points", window=window)
    assert body["window"] == {"start": start, "end": NOW}
    assert entries(body) == ([(1, "alice", score)] if score else [])
    assert body["total"] == (1 if score else 0)


def test_week_start_setting(history: Api) -> None:
    assert history.put("points", {"week_start": "wednesday"}, rebuild="true").status_code == 200
    body = history.ok("/v1/leaderboard", metric="points", window="week")
    assert body["window"]["start"] == ts("2026-11-25T00:00:00Z")
    assert entries(body) == [(1, "alice", 16)]


def test_calendar_window_at_in_the_past(history: Api) -> None:
    body = history.ok("/v1/leaderboard", metric="points", window="day",
                      at=ts("2026-11-24T12:00:00Z"))
    assert body["window"] == {"start": ts("2026-11-24T00:00:00Z"),
                              "end": ts("2026-11-24T12:00:00Z")}
    assert entries(body) == [(1, "alice", 8)]
    body = history.ok("/v1/leaderboard", metric="points", window="month",
                      at="2026-03-15T00:00:00Z")
    assert body["window"]["start"] == ts("2026-03-01T00:00:00Z")
    assert entries(body) == [(1, "alice", 2)]


def test_calendar_window_at_exactly_period_start_is_empty(history: Api) -> None:
    body = history.ok("/v1/leaderboard", metric="points", window="day",
                      at=ts("2026-11-25T00:00:00Z"))
    assert body["total"] == 0


def test_day_window_with_day_start_spec_example(tb: Api) -> None:
    assert tb.put("study", {"day_start": "17:00"}).status_code == 200
    tb.record(event("alice", 1, metric="study", at=ts("2026-11-22T16:59:59Z")),
              event("alice", 2, metric="study", at=ts("2026-11-22T17:00:00Z")),
              event("alice", 4, metric="study", at=ts("2026-11-23T16:59:59Z")))
    body = tb.ok("/v1/leaderboard", metric="study", window="day", at="2026-11-23T16:59:59.5Z")
    assert body["window"] == {"start": ts("2026-11-22T17:00:00Z"),
                              "end": ts("2026-11-23T16:59:59Z") + 0.5}
    assert entries(body) == [(1, "alice", 6)]


def test_day_window_in_dst_timezone(tb: Api) -> None:
    # Europe/Berlin, 2026-03-29: clocks jump 02:00 -> 03:00 CET->CEST; the day is 23 h.
    assert tb.put("steps", {"timezone": "Europe/Berlin"}).status_code == 200
    tb.record(event("alice", 1, metric="steps", at=ts("2026-03-28T22:59:59Z")),
              event("alice", 2, metric="steps", at=ts("2026-03-28T23:00:00Z")),
              event("alice", 4, metric="steps", at=ts("2026-03-29T21:59:59Z")),
              event("alice", 8, metric="steps", at=ts("2026-03-29T22:00:00Z")))
    body = tb.ok("/v1/leaderboard", metric="steps", window="day",
                 at=ts("2026-03-29T21:59:59Z") + 0.5)
    assert body["window"]["start"] == ts("2026-03-28T23:00:00Z")
    assert entries(body) == [(1, "alice", 6)]
    series = tb.ok("/v1/series", metric="steps", member="alice", step="day",
                   start=ts("2026-03-28T23:00:00Z"), end=ts("2026-03-30T00:00:00Z"))
    assert [(p["label"], p["start"], p["value"]) for p in series["points"]] == [
        ("2026-03-29", ts("2026-03-28T23:00:00Z"), 6),
        ("2026-03-30", ts("2026-03-29T22:00:00Z"), 8)]


def test_rolling_window_is_exact_to_the_second(tb: Api) -> None:
    tb.record(event("alice", 1, at=NOW - 11), event("alice", 10, at=NOW - 10),
              event("alice", 100, at=NOW - 1), event("alice", 1000, at=NOW))
    body = tb.ok("/v1/leaderboard", metric="points", window="rolling:10s")
    assert body["window"] == {"start": NOW - 10, "end": NOW}
    assert entries(body) == [(1, "alice", 110)]
    body = tb.ok("/v1/leaderboard", metric="points", window="rolling:10s", at=NOW + 1)
    assert entries(body) == [(1, "alice", 1100)]


def test_range_window(tb: Api) -> None:
    x = NOW - 1000
    tb.record(event("alice", 1, at=x), event("alice", 10, at=x + 1), event("bob", 5, at=x + 2))
    body = tb.ok("/v1/leaderboard", metric="points", window="range", start=x, end=x + 2)
    assert body["window"] == {"start": x, "end": x + 2}
    assert entries(body) == [(1, "alice", 11)]
    body = tb.ok("/v1/leaderboard", metric="points", window="range", start=x + 0.5, end=x + 3)
    assert entries(body) == [(1, "alice", 10), (2, "bob", 5)]


@pytest.mark.parametrize("params", [
    {"start": 10, "end": 10}, {"start": 11, "end": 10}, {"start": 10}, {"end": 10}, {},
])
def test_range_needs_start_before_end(board: Api, params: dict[str, Any]) -> None:
    assert_error(board.get("/v1/leaderboard", metric="points", window="range", **params), 400,
                 "bad_query")


def test_other_windows_ignore_start_end(board: Api) -> None:
    body = board.ok("/v1/leaderboard", metric="points", window="all", start=NOW + 5, end=1)
    assert body["total"] == 5


def test_at_is_exclusive_and_not_floored(tb: Api) -> None:
    x = NOW - 100
    tb.record(event("alice", 1, at=x))
    assert tb.ok("/v1/leaderboard", metric="points", at=x)["total"] == 0
    body = tb.ok("/v1/leaderboard", metric="points", at=x + 0.5)
    assert body["window"]["end"] == x + 0.5
    assert entries(body) == [(1, "alice", 1)]


# ---- rank -----------------------------------------------------------------------------------

def test_rank_with_radius(board: Api) -> None:
    body = board.ok("/v1/rank", metric="points", member="c", radius=1)
    assert body["rank"] == 2
    assert body["score"] == 7
    assert body["total"] == 5
    assert [(e["rank"], e["member"], e["score"]) for e in body["around"]] == [
        (2, "b", 7), (2, "c", 7), (4, "d", 3)]


def test_rank_default_radius_and_edges(board: Api) -> None:
    body = board.ok("/v1/rank", metric="points", member="d")
    assert body == {"rank": 4, "score": 3, "total": 5,
                    "around": [{"rank": 4, "member": "d", "score": 3}]}
    around = board.ok("/v1/rank", metric="points", member="a", radius=2)["around"]
    assert [e["member"] for e in around] == ["a", "b", "c"]
    around = board.ok("/v1/rank", metric="points", member="n", radius=1000)["around"]
    assert [e["member"] for e in around] == ["a", "b", "c", "d", "n"]


@pytest.mark.parametrize("member", ["z", "ghost"])
def test_rank_of_unlisted_member(board: Api, member: str) -> None:
    assert board.ok("/v1/rank", metric="points", member=member, radius=3) == {
        "rank": None, "score": 0, "total": 5, "around": []}


def test_rank_in_a_window(history: Api) -> None:
    history.record(event("bob", 20, at=ts("2026-11-25T09:00:00Z")))
    assert history.ok("/v1/rank", metric="points", member="alice", window="day")["rank"] == 2
    assert history.ok("/v1/rank", metric="points", member="alice", window="all")["rank"] == 1
    body = history.ok("/v1/rank", metric="points", member="alice", window="range",
                      start=ts("2026-11-24T00:00:00Z"), end=ts("2026-11-25T00:00:00Z"))
    assert (body["rank"], body["score"], body["total"]) == (1, 8, 1)


@pytest.mark.parametrize(("params", "param"), [
    ({"radius": -1}, "radius"), ({"radius": 1001}, "radius"), ({"radius": "x"}, "radius"),
    ({"window": "hourly"}, "window"), ({"member": ""}, "member"), ({"member": "m" * 129},
                                                                    "member"),
])
def test_rank_bad_params_are_400(board: Api, params: dict[str, Any], param: str) -> None:
    query = {"metric": "points", "member": "a", **params}
    assert_error(board.get("/v1/rank", **query), 400, "bad_query", param=param)


# ---- streak ---------------------------------------------------------------------------------

EMPTY = {"length": 0, "first_day": None, "last_day": None}


def run(length: int, first: str, last: str) -> dict[str, Any]:
    return {"length": length, "first_day": first, "last_day": last}


@pytest.fixture
def days(tb: Api) -> Api:
    for day, value in [("10", 1), ("11", 2), ("12", 2), ("15", 1), ("16", 1), ("17", 1),
                       ("24", 1), ("25", 1)]:
        tb.record(event("alice", value, at=ts(f"2026-11-{day}T10:00:00Z")))
    return tb


def test_streak_current_and_longest_earliest_on_tie(days: Api) -> None:
    assert days.ok("/v1/streak", metric="points", member="alice") == {
        "current": run(2, "2026-11-24", "2026-11-25"),
        "longest": run(3, "2026-11-10", "2026-11-12")}


def test_streak_today_not_over_yet(days: Api) -> None:
    body = days.ok("/v1/streak", metric="points", member="alice", at=ts("2026-11-25T09:00:00Z"))
    assert body["current"] == run(1, "2026-11-24", "2026-11-24")


def test_streak_broken(days: Api) -> None:
    body = days.ok("/v1/streak", metric="points", member="alice", at=ts("2026-11-19T12:00:00Z"))
    assert body == {"current": EMPTY, "longest": run(3, "2026-11-10", "2026-11-12")}


def test_streak_longest_only_up_to_at(days: Api) -> None:
    body = days.ok("/v1/streak", metric="points", member="alice", at=ts("2026-11-11T12:00:00Z"))
    assert body == {"current": run(2, "2026-11-10", "2026-11-11"),
                    "longest": run(2, "2026-11-10", "2026-11-11")}


def test_streak_min(days: Api) -> None:
    body = days.ok("/v1/streak", metric="points", member="alice", min=2)
    assert body == {"current": EMPTY, "longest": run(2, "2026-11-11", "2026-11-12")}
    body = days.ok("/v1/streak", metric="points", member="alice", min=3)
    assert body == {"current": EMPTY, "longest": EMPTY}


def test_streak_of_member_without_events(days: Api) -> None:
    assert days.ok("/v1/streak", metric="points", member="nobody") == {
        "current": EMPTY, "longest": EMPTY}


@pytest.mark.parametrize(("params", "param"), [
    ({"min": 0}, "min"), ({"min": -1}, "min"), ({"min": 1.5}, "min"), ({"min": "x"}, "min"),
    ({"timezone": "Mars/Olympus"}, "timezone"), ({"day_start": "25:00"}, "day_start"),
    ({"day_start": "7:00"}, "day_start"), ({"at": "later"}, "at"),
])
def test_streak_bad_params_are_400(days: Api, params: dict[str, Any], param: str) -> None:
    query = {"metric": "points", "member": "alice", **params}
    assert_error(days.get("/v1/streak", **query), 400, "bad_query", param=param)


def test_streak_unknown_metric_is_404(days: Api) -> None:
    assert_error(days.get("/v1/streak", metric="nope", member="alice"), 404, "not_found")


def test_streak_timezone_override(tb: Api) -> None:
    # 23:30Z on the 23rd and 00:30Z on the 24th: two UTC days, one Tokyo day,
    # one New York day (the 23rd).
    tb.record(event("alice", 1, at=ts("2026-11-23T23:30:00Z")),
              event("alice", 1, at=ts("2026-11-24T00:30:00Z")))
    at = ts("2026-11-24T12:00:00Z")
    utc = tb.ok("/v1/streak", metric="points", member="alice", at=at)
    assert utc["current"] == run(2, "2026-11-23", "2026-11-24")
    tokyo = tb.ok("/v1/streak", metric="points", member="alice", at=at, timezone="Asia/Tokyo")
    assert tokyo["current"] == run(1, "2026-11-24", "2026-11-24")
    ny = tb.ok("/v1/streak", metric="points", member="alice", at=at,
               timezone="America/New_York")
    assert ny["current"] == run(1, "2026-11-23", "2026-11-23")


def test_streak_timezone_override_resets_day_start(tb: Api) -> None:
    assert tb.put("study", {"day_start": "17:00"}).status_code == 200
    tb.record(event("alice", 1, metric="study", at=ts("2026-11-23T10:00:00Z")),
              event("alice", 1, metric="study", at=ts("2026-11-23T18:00:00Z")))
    at = ts("2026-11-24T12:00:00Z")
    own = tb.ok("/v1/streak", metric="study", member="alice", at=at)
    assert own["longest"] == run(2, "2026-11-22", "2026-11-23")
    utc = tb.ok("/v1/streak", metric="study", member="alice", at=at, timezone="UTC")
    assert utc["longest"] == run(1, "2026-11-23", "2026-11-23")
    shifted = tb.ok("/v1/streak", metric="study", member="alice", at=at, timezone="UTC",
                    day_start="12:00")
    assert shifted["longest"] == run(2, "2026-11-22", "2026-11-23")


def test_streak_day_start_override(tb: Api) -> None:
    tb.record(event("alice", 1, at=ts("2026-11-23T10:00:00Z")),
              event("alice", 1, at=ts("2026-11-23T18:00:00Z")))
    at = ts("2026-11-24T12:00:00Z")
    assert tb.ok("/v1/streak", metric="points", member="alice", at=at)["longest"]["length"] == 1
    body = tb.ok("/v1/streak", metric="points", member="alice", at=at, day_start="17:00")
    assert body["longest"] == run(2, "2026-11-22", "2026-11-23")


# ---- calendar edge cases (SPEC §2) ----------------------------------------------------------

def test_dst_gap_and_repeat_with_day_start_spec_example(tb: Api) -> None:
    # 02:30 in Europe/Berlin on 2025-03-30 falls in the gap: it is 01:30Z (offset before
    # the gap). On 2025-10-26 02:30 happens twice: the first one, 00:30Z, counts.
    assert tb.put("steps", {"timezone": "Europe/Berlin", "day_start": "02:30"}).status_code \
        == 200
    tb.record(event("alice", 1, metric="steps", at=ts("2025-03-30T01:29:59Z")),
              event("alice", 2, metric="steps", at=ts("2025-03-30T01:30:00Z")),
              event("alice", 4, metric="steps", at=ts("2025-10-26T00:29:59Z")),
              event("alice", 8, metric="steps", at=ts("2025-10-26T00:30:00Z")))
    spring = tb.ok("/v1/series", metric="steps", member="alice", step="day",
                   start=ts("2025-03-30T00:00:00Z"), end=ts("2025-03-31T12:00:00Z"))
    assert [(p["label"], p["start"], p["value"]) for p in spring["points"]] == [
        ("2025-03-29", ts("2025-03-29T01:30:00Z"), 1),
        ("2025-03-30", ts("2025-03-30T01:30:00Z"), 2),  # 23 hours long
        ("2025-03-31", ts("2025-03-31T00:30:00Z"), 0)]
    autumn = tb.ok("/v1/series", metric="steps", member="alice", step="day",
                   start=ts("2025-10-26T00:00:00Z"), end=ts("2025-10-27T12:00:00Z"))
    assert [(p["label"], p["start"], p["value"]) for p in autumn["points"]] == [
        ("2025-10-25", ts("2025-10-25T00:30:00Z"), 4),
        ("2025-10-26", ts("2025-10-26T00:30:00Z"), 8),  # 25 hours long
        ("2025-10-27", ts("2025-10-27T01:30:00Z"), 0)]


def test_week_month_year_start_at_day_start(tb: Api) -> None:
    assert tb.put("study", {"day_start": "17:00", "week_start": "sunday"}).status_code == 200
    tb.record(event("alice", 1, metric="study", at=ts("2026-10-01T16:59:59Z")),
              event("alice", 2, metric="study", at=ts("2026-10-01T17:00:00Z")))
    at = ts("2026-11-01T10:00:00Z")  # a Sunday, before 17:00: still October's last day
    month = tb.ok("/v1/leaderboard", metric="study", window="month", at=at)
    assert month["window"]["start"] == ts("2026-10-01T17:00:00Z")
    assert entries(month) == [(1, "alice", 2)]
    week = tb.ok("/v1/leaderboard", metric="study", window="week", at=at)
    assert week["window"]["start"] == ts("2026-10-25T17:00:00Z")
    year = tb.ok("/v1/leaderboard", metric="study", window="year", at=at)
    assert year["window"]["start"] == ts("2026-01-01T17:00:00Z")
    assert entries(year) == [(1, "alice", 3)]
    series = tb.ok("/v1/series", metric="study", member="alice", step="week",
                   start=ts("2026-09-30T00:00:00Z"), end=ts("2026-10-02T00:00:00Z"))
    assert [(p["label"], p["start"], p["value"]) for p in series["points"]] == [
        ("2026-09-27", ts("2026-09-27T17:00:00Z"), 3)]


def test_sub_day_buckets_align_to_epoch_whatever_the_timezone(tb: Api) -> None:
    assert tb.put("steps", {"timezone": "Asia/Kolkata", "day_start": "00:30"}).status_code \
        == 200
    tb.record(event("alice", 1, metric="steps", at=ts("2026-11-24T10:15:00Z")))
    body = tb.ok("/v1/series", metric="steps", member="alice", step="hour",
                 start=ts("2026-11-24T10:00:00Z"), end=ts("2026-11-24T11:00:00Z"))
    assert body["points"] == [{"start": ts("2026-11-24T10:00:00Z"),
                               "label": "2026-11-24T10:00:00Z", "value": 1}]
