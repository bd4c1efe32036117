"""Edges a reviewer found the hard way: instants outside the calendar's range, totals beyond
64 bits, timezone names that are directories, keys limited to a space named in the body,
readiness of a dead log, the headers 401 and 405 owe, and ``?rebuild=true`` with no change.
Each was a 500 or a wrong answer once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from api_helpers import NOW, Api, api, assert_error, event
from tallyboard.settings import ApiKey, Settings

pytestmark = pytest.mark.usefixtures("log_backend")  # each test on every store

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@pytest.fixture
def tb() -> Iterator[Api]:
    with api() as a:
        a.record(event("alice", 5), event("bob", 3))
        yield a


@pytest.mark.parametrize(("path", "params", "param"), [
    ("/v1/leaderboard", {"window": "day", "at": 1763800000000}, "at"),
    ("/v1/leaderboard", {"window": "all", "at": 10**20}, "at"),
    ("/v1/leaderboard", {"window": "year", "at": -(10**12)}, "at"),
    ("/v1/rank", {"member": "alice", "window": "week", "at": 253402300799}, "at"),
    ("/v1/streak", {"member": "alice", "at": 253402300800}, "at"),
    ("/v1/series", {"member": "alice", "step": "year", "start": 0, "end": 10**15}, "end"),
    ("/v1/sum", {"member": "alice", "start": -(10**20)}, "start"),
    ("/v1/leaderboard", {"window": "range", "start": 0, "end": "1e30"}, "end"),
])
def test_instants_beyond_the_calendar_are_400(tb: Api, path: str, params: dict[str, object],
                                              param: str) -> None:
    r = tb.get(path, metric="points", **params)
    assert_error(r, 400, "bad_query", param=param)
    assert "1000-01-01" in r.json()["error"]["message"]


def test_the_edges_of_the_range_answer(tb: Api) -> None:
    assert tb.sum("points", "alice", start=-30610224000, end=221845391999) == 5
    board = tb.ok("/v1/leaderboard", metric="points", window="all", at=221845391999)
    assert [e["member"] for e in board["entries"]] == ["alice", "bob"]
    assert tb.ok("/v1/leaderboard", metric="points", window="year",
                 at=221845391999)["window"]["start"] == 221813856000
    assert tb.ok("/v1/series", metric="points", member="alice", step="year",
                 start=221845391000, end=221845391999)["points"][0]["value"] == 0


def test_totals_beyond_64_bits_are_exact() -> None:
    with api() as tb:
        tb.record(event("low", INT64_MIN, NOW - 100), event("low", INT64_MIN, NOW - 50),
                  event("high", INT64_MAX, NOW - 50), event("high", INT64_MAX, NOW - 40))
        assert tb.sum("points", "low") == 2 * INT64_MIN
        assert tb.sum("points", "high", start=NOW - 60) == 2 * INT64_MAX
        for window in ("all", "day", "rolling:1h"):
            board = tb.ok("/v1/leaderboard", metric="points", window=window)
            assert [(e["member"], e["score"]) for e in board["entries"]] == [
                ("high", 2 * INT64_MAX), ("low", 2 * INT64_MIN)]
        assert tb.ok("/v1/rank", metric="points", member="low")["score"] == 2 * INT64_MIN
        points = tb.ok("/v1/series", metric="points", member="high", step="hour",
                       start=NOW - 3600, end=NOW)["points"]
        assert sum(p["value"] for p in points) == 2 * INT64_MAX


@pytest.mark.parametrize("zone", ["Europe", "America", "x" * 300, "Etc"])
def test_timezone_names_that_are_not_zones_are_400(tb: Api, zone: str) -> None:
    assert_error(tb.put("points", {"timezone": zone}), 400, "bad_query", param="timezone")
    assert_error(tb.get("/v1/streak", metric="points", member="alice", timezone=zone),
                 400, "bad_query", param="timezone")


def test_a_space_key_may_name_its_space_in_the_body() -> None:
    g1 = {"Authorization": "Bearer g1-writer-key"}
    settings = Settings(keys=[ApiKey(key="g1-writer-key", scopes=["write"], spaces=["g1"])])
    with api(settings=settings) as tb:
        assert tb.post([event(space="g1"), event("bob", space="g1")],
                       headers=g1).status_code == 200
        assert_error(tb.post([event(space="g1"), event()], headers=g1), 403, "forbidden")
        assert_error(tb.post(event(), headers=g1), 403, "forbidden")
        assert tb.post(event(), headers=g1, space="g1").status_code == 200


def test_readyz_fails_when_the_log_is_gone(tmp_path: object) -> None:
    from pathlib import Path

    from tallyboard.stores import SQLiteLog

    with api(SQLiteLog(Path(str(tmp_path)) / "log.db")) as tb:
        assert tb.ok("/readyz")["status"] == "ready"
        tb.engine.log.close()
        r = tb.get("/readyz")
        assert_error(r, 503, "store_unavailable")
        assert r.headers["retry-after"]


def test_405_says_what_is_allowed_and_401_how_to_authenticate() -> None:
    settings = Settings(keys=[ApiKey(key="reader-key-1", scopes=["read"])])
    with api(settings=settings) as tb:
        r = tb.client.delete("/v1/events")
        assert_error(r, 405, "method_not_allowed")
        assert r.headers["allow"] == "POST"
        r = tb.get("/v1/sum", metric="points", member="alice")
        assert_error(r, 401, "unauthorized")
        assert r.headers["www-authenticate"].startswith("Bearer")


def test_rebuild_true_always_replays(tb: Api) -> None:
    r = tb.put("points", {}, rebuild="true")
    assert r.status_code == 200, r.text
    assert r.json()["replayed"] == 2
    assert tb.sum("points", "alice") == 5


def test_a_group_too_long_for_a_url_can_be_posted(tb: Api) -> None:
    group = [f"{i:018d}" for i in range(9_998)] + ["alice", "bob"]  # ~190 KiB of snowflakes
    r = tb.client.post("/v1/leaderboard", params={"metric": "points", "n": 5},
                       json={"members": group})
    assert r.status_code == 200, r.text
    assert r.json() == tb.ok("/v1/leaderboard", metric="points", n=5, members="alice,bob")
    assert r.json()["total"] == 2
    too_many = tb.client.post("/v1/leaderboard", params={"metric": "points"},
                              json={"members": [*group, "carol"]})
    assert_error(too_many, 400, "bad_query", param="members")
    assert_error(tb.client.post("/v1/leaderboard", params={"metric": "points"},
                                json={"members": [1, 2]}), 400, "bad_query")


NUL = "a\x00b"


@pytest.mark.parametrize(("event", "field"), [
    (event(NUL), "member"), (event(metric=NUL), "metric"), (event(id=NUL), "id"),
    (event(space=NUL), "space"), (event(tags={NUL: "v"}), "tags"),
    (event(tags={"k": NUL}), "tags.k"), ({**event(NUL), "ts": "2026-11-25T10:00:00Z"}, "member"),
])
def test_nul_characters_are_refused_naming_the_field(tb: Api, event: dict[str, object],
                                                     field: str) -> None:
    """U+0000 cannot be stored by PostgreSQL: refuse it at the door, as a 422, for the
    fast and the slow validation path alike, and apply nothing of the batch."""
    r = tb.post([{"metric": "points", "member": "carol", "value": 1, "ts": NOW - 60}, event])
    assert_error(r, 422, "invalid_event", index=1, field=field)
    assert tb.sum("points", "carol") == 0


def test_nul_characters_are_refused_in_columns_presence_and_settings(tb: Api) -> None:
    from tallyboard.errors import BadQuery, InvalidEvent

    with pytest.raises(InvalidEvent) as caught:
        tb.engine.record_columns("points", ["ok", NUL], [1, 1], [NOW - 5] * 2)
    assert (caught.value.details["index"], caught.value.details["field"]) == (1, "member")
    with pytest.raises(InvalidEvent):
        tb.engine.record_columns("points", ["ok"], ids=[NUL])
    r = tb.client.post("/v1/presence", json={"type": "join", "room": NUL, "member": "m",
                                             "ts": NOW - 5})
    assert_error(r, 422, "invalid_event", field="room")
    assert_error(tb.put("points", {"dimensions": [NUL]}), 400, "bad_query", param="dimensions")
    with pytest.raises(BadQuery):
        tb.engine.set_metric(NUL)
