"""PUT/GET /v1/metrics against SPEC §6: settings, 409 on calendar change, ?rebuild=true."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api_helpers import NOW, Api, api, assert_error, event, ts
from tallyboard.core.config import MAX_ROLLING
from tallyboard.core.metric import WARM_FROM
from tallyboard.stores import SQLiteLog

pytestmark = pytest.mark.usefixtures("log_backend")  # each test on every store

DEFAULTS = {"timezone": "UTC", "day_start": "00:00", "week_start": "monday",
            "dimensions": [], "rolling": ["24h", "7d"]}


@pytest.fixture
def tb() -> Iterator[Api]:
    with api() as a:
        yield a


def test_put_creates_and_get_reads(tb: Api) -> None:
    r = tb.put("steps", {"timezone": "Europe/Berlin", "day_start": "05:00",
                         "week_start": "sunday", "dimensions": ["activity"],
                         "rolling": ["1h", "30d"]})
    assert r.status_code == 200, r.text
    info = r.json()
    assert info == {"metric": "steps", "space": "default", "timezone": "Europe/Berlin",
                    "day_start": "05:00", "week_start": "sunday", "dimensions": ["activity"],
                    "rolling": ["1h", "30d"], "events": 0}
    assert tb.ok("/v1/metrics/steps") == info
    assert tb.ok("/v1/metrics") == {"metrics": [info]}


def test_fields_left_out_keep_their_value(tb: Api) -> None:
    tb.put("steps", {"timezone": "Asia/Tokyo", "dimensions": ["a"]})
    info = tb.put("steps", {"rolling": ["2h"]}).json()
    assert (info["timezone"], info["dimensions"], info["rolling"]) == ("Asia/Tokyo", ["a"],
                                                                       ["2h"])
    info = tb.put("steps", {}).json()
    assert info["timezone"] == "Asia/Tokyo"


def test_list_has_event_counts_per_space(tb: Api) -> None:
    tb.record(event("a"), event("b"), event("c", metric="steps"))
    tb.record(event("a"), space="g1")
    listed = {m["metric"]: m for m in tb.ok("/v1/metrics")["metrics"]}
    assert {k: v["events"] for k, v in listed.items()} == {"points": 2, "steps": 1}
    assert all({**v, **DEFAULTS} == v for v in listed.values())
    assert [(m["metric"], m["space"], m["events"])
            for m in tb.ok("/v1/metrics", space="g1")["metrics"]] == [("points", "g1", 1)]
    assert tb.ok("/v1/metrics", space="empty") == {"metrics": []}


def test_get_unknown_metric_is_404(tb: Api) -> None:
    tb.record(event("a"), space="g1")
    assert_error(tb.get("/v1/metrics/points"), 404, "not_found")
    assert tb.ok("/v1/metrics/points", space="g1")["events"] == 1


@pytest.mark.parametrize(("change", "field"), [
    ({"timezone": "Europe/Berlin"}, "timezone"),
    ({"day_start": "05:00"}, "day_start"),
    ({"week_start": "sunday"}, "week_start"),
    ({"dimensions": ["activity"]}, "dimensions"),
])
def test_calendar_change_with_data_is_409(tb: Api, change: dict[str, Any], field: str) -> None:
    tb.record(event("alice"))
    assert_error(tb.put("points", change), 409, "conflict", fields=[field])
    assert tb.ok("/v1/metrics/points")[field] == DEFAULTS[field]


def test_409_names_every_changed_field(tb: Api) -> None:
    tb.record(event("alice"))
    err = assert_error(tb.put("points", {"timezone": "Asia/Tokyo", "day_start": "01:00",
                                         "rolling": ["1h"]}), 409, "conflict")
    assert sorted(err["fields"]) == ["day_start", "timezone"]
    assert tb.ok("/v1/metrics/points")["rolling"] == DEFAULTS["rolling"]


def test_unchanged_or_rolling_only_is_no_conflict(tb: Api) -> None:
    tb.record(event("alice"))
    assert tb.put("points", {"timezone": "UTC", "day_start": "00:00"}).status_code == 200
    assert tb.put("points", {"rolling": ["1h"]}).json()["rolling"] == ["1h"]


def test_calendar_change_without_data_is_fine(tb: Api) -> None:
    assert tb.put("steps", {"timezone": "UTC"}).status_code == 200
    assert tb.put("steps", {"timezone": "Asia/Tokyo"}).json()["timezone"] == "Asia/Tokyo"


def test_rebuild_replays_and_changes_answers(tb: Api) -> None:
    tb.record(event("alice", 1, at=ts("2026-11-24T18:00:00Z"), tags={"activity": "run"}),
              event("alice", 2, at=ts("2026-11-25T10:00:00Z"), tags={"activity": "walk"}),
              event("bob", 4, at=ts("2026-11-25T11:00:00Z"), tags={"activity": "run"}))
    before = tb.ok("/v1/leaderboard", metric="points", window="day")
    assert [(e["member"], e["score"]) for e in before["entries"]] == [("bob", 4), ("alice", 2)]
    r = tb.put("points", {"day_start": "17:00", "dimensions": ["activity"]}, rebuild="true")
    assert r.status_code == 200, r.text
    info = r.json()
    assert info["replayed"] == 3
    assert (info["day_start"], info["dimensions"], info["events"]) == ("17:00", ["activity"], 3)
    after = tb.ok("/v1/leaderboard", metric="points", window="day")
    assert after["window"]["start"] == ts("2026-11-24T17:00:00Z")
    assert [(e["member"], e["score"]) for e in after["entries"]] == [("bob", 4), ("alice", 3)]
    run = tb.ok("/v1/leaderboard", metric="points", **{"tag.activity": "run"})
    assert [(e["member"], e["score"]) for e in run["entries"]] == [("bob", 4), ("alice", 1)]


def test_rebuild_on_empty_or_unchanged_metric_answers_a_count(tb: Api) -> None:
    assert tb.put("steps", {"timezone": "UTC"}, rebuild="true").json()["replayed"] == 0
    tb.record(event("alice", metric="steps"))
    replayed = tb.put("steps", {"rolling": ["1h"]}, rebuild="true").json()["replayed"]
    assert isinstance(replayed, int)  # 0 today: nothing calendar-wise changed (see report)


def test_rebuild_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite3"
    with api(SQLiteLog(path)) as tb:
        tb.record(event("alice", 1, at=ts("2026-11-24T18:00:00Z")))
        assert tb.put("points", {"day_start": "17:00"}, rebuild="true").status_code == 200
    with api(SQLiteLog(path)) as tb:
        assert tb.ok("/v1/metrics/points")["day_start"] == "17:00"
        body = tb.ok("/v1/leaderboard", metric="points", window="day")
        assert body["window"]["start"] == ts("2026-11-24T17:00:00Z")
        assert body["total"] == 1


@pytest.mark.parametrize(("settings", "param"), [
    ({"colour": "red"}, "colour"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"timezone": 5}, "timezone"),
    ({"day_start": "5pm"}, "day_start"),
    ({"day_start": "24:00"}, "day_start"),
    ({"week_start": "funday"}, "week_start"),
    ({"dimensions": "activity"}, "dimensions"),
    ({"dimensions": [1]}, "dimensions"),
    ({"dimensions": ["d" * 65]}, "dimensions"),
    ({"rolling": ["0h"]}, "rolling"),
    ({"rolling": ["24"]}, "rolling"),
    ({"rolling": "24h"}, "rolling"),
])
def test_invalid_settings_are_400(tb: Api, settings: dict[str, Any], param: str) -> None:
    assert_error(tb.put("steps", settings), 400, "bad_query", param=param)
    assert_error(tb.get("/v1/metrics/steps"), 404, "not_found")


def test_hot_rolling_windows_are_capped_and_the_rest_stay_queryable(tb: Api) -> None:
    """Each hot rolling window is a board over every member, built on PUT and restart:
    at most MAX_ROLLING per metric; any other rolling window is computed per query."""
    many = [f"{i}h" for i in range(1, MAX_ROLLING + 2)]
    error = assert_error(tb.put("points", {"rolling": many}), 400, "bad_query",
                         param="rolling")
    assert str(MAX_ROLLING) in error["message"]
    assert tb.put("points", {"rolling": many[:MAX_ROLLING]}).json()["rolling"] == \
        many[:MAX_ROLLING]
    tb.record(event("alice", 3, at=NOW - 3600 * (MAX_ROLLING + 0.5)), event("bob", 1))
    board = tb.ok("/v1/leaderboard", metric="points", window=f"rolling:{MAX_ROLLING + 1}h")
    assert [(e["member"], e["score"]) for e in board["entries"]] == [("alice", 3), ("bob", 1)]


def test_a_stored_config_over_the_cap_still_loads(tmp_path: Path) -> None:
    """A log written before the cap: the first MAX_ROLLING windows stay hot."""
    path = tmp_path / "log.sqlite3"
    log = SQLiteLog(path)
    many = [f"{i}m" for i in range(1, 3 * MAX_ROLLING)]
    log.put_config(("default", "points"), {**DEFAULTS, "rolling": many})
    log.close()
    with api(SQLiteLog(path)) as tb:
        assert tb.ok("/v1/metrics/points")["rolling"] == many[:MAX_ROLLING]
        tb.record(event("alice", 2, at=NOW - 60 * (2 * MAX_ROLLING)))
        board = tb.ok("/v1/leaderboard", metric="points", window=f"rolling:{len(many)}m")
        assert board["entries"] == [{"rank": 1, "member": "alice", "score": 2}]


def test_restart_builds_hot_boards_of_big_metrics_only(tmp_path: Path) -> None:
    """Start-up builds the configured boards of a metric with WARM_FROM members or more;
    a smaller one builds its board on first use (as a live server does), same answers."""
    path = tmp_path / "log.sqlite3"
    with api(SQLiteLog(path)) as tb:
        tb.record(*(event(f"u{i}", i + 1, metric="big") for i in range(WARM_FROM)),
                  event("alice", 2, metric="small"), event("bob", 1, metric="small"))
    with api(SQLiteLog(path)) as tb:
        big, small = (tb.engine._metrics[("default", m)] for m in ("big", "small"))
        assert len(big._boards) == 7 and not small._boards  # all, 4 periods, 24h, 7d
        board = tb.ok("/v1/leaderboard", metric="small", window="rolling:24h")
        assert [(e["member"], e["score"]) for e in board["entries"]] == [("alice", 2),
                                                                       ("bob", 1)]
        assert tb.ok("/v1/leaderboard", metric="big", n=1)["entries"] == [
            {"rank": 1, "member": f"u{WARM_FROM - 1}", "score": WARM_FROM}]


@pytest.mark.parametrize("body", [b"[1]", b"{not json", b'"x"'])
def test_body_not_a_json_object_is_400(tb: Api, body: bytes) -> None:
    r = tb.client.put("/v1/metrics/steps", content=body,
                      headers={"content-type": "application/json"})
    assert_error(r, 400, "bad_request")


def test_bad_rebuild_flag_and_long_name_are_400(tb: Api) -> None:
    assert_error(tb.put("steps", {}, rebuild="maybe"), 400, "bad_query", param="rebuild")
    assert_error(tb.put("m" * 129, {}), 400, "bad_query", param="metric")


def test_dimension_declared_later_with_rebuild_filters_old_events(tb: Api) -> None:
    tb.record(event("alice", 5, tags={"channel": "general"}), event("alice", 1))
    assert_error(tb.get("/v1/sum", metric="points", member="alice", **{"tag.channel": "general"}),
                 400, "bad_query", param="tag.channel")
    assert tb.put("points", {"dimensions": ["channel"]}, rebuild="true").status_code == 200
    assert tb.sum("points", "alice", **{"tag.channel": "general"}) == 5
