"""Hostile input a tester found (issue 12): 500s on odd presence types and steps, names with
``/`` the path routes could not reach, non-ASCII digits and non-zones taken as settings,
``start > end`` answered empty, and a 2^64 value called "not an integer"."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from api_helpers import NOW, Api, api, assert_error, event
from tallyboard.client import path_segment

pytestmark = pytest.mark.usefixtures("log_backend")  # each test on every store


@pytest.fixture
def tb() -> Iterator[Api]:
    with api() as a:
        a.record(event("alice", 5), event("bob", 3))
        yield a


def presence(tb: Api, body: Any) -> Any:
    return tb.client.post("/v1/presence", json=body)


# ---- item 5: the two 500s ------------------------------------------------------------------

@pytest.mark.parametrize("kind", [{}, [], ["join"], 1, None, True])
def test_an_unhashable_or_odd_presence_type_is_422(tb: Api, kind: Any) -> None:
    r = presence(tb, {"type": kind, "room": "r", "member": "m"})
    assert_error(r, 422, "invalid_event", index=0, field="type")


@pytest.mark.parametrize("step", ["bogus", "", "Hour", "hours"])
def test_an_unknown_concurrency_step_is_400(tb: Api, step: str) -> None:
    r = tb.get("/v1/presence/concurrency", start=NOW - 7200, step=step)
    assert_error(r, 400, "bad_query", param="step")
    with pytest.raises(ValueError, match="step must be one of"):
        tb.engine.concurrency(start=NOW - 7200, step=step)


# ---- item 8: names with "/" ----------------------------------------------------------------

# (a name with "%" is tested against a real server in test_http_guards.py: Starlette's
# TestClient decodes the path twice)
@pytest.mark.parametrize("name", ["a/b", "a/b/c", "/lead", "trail/", "a b?c#d", ".", "..",
                                  "line\nbreak", "tab\tand\r"])
def test_metric_names_with_slashes_and_oddities_are_reachable(tb: Api, name: str) -> None:
    tb.record(event("alice", 7, metric=name))
    quoted = path_segment(name)
    r = tb.client.put(f"/v1/metrics/{quoted}", json={"rolling": ["1h"]})
    assert r.status_code == 200, r.text
    assert r.json()["metric"] == name and r.json()["events"] == 1
    got = tb.client.get(f"/v1/metrics/{quoted}")
    assert got.status_code == 200 and got.json()["rolling"] == ["1h"], got.text


def test_a_slash_may_also_be_sent_unencoded(tb: Api) -> None:
    tb.record(event("alice", 7, metric="a/b"))
    assert tb.ok("/v1/metrics/a/b")["metric"] == "a/b"
    assert_error(tb.get("/v1/metrics/a/c"), 404, "not_found", metric="a/c")


def test_room_names_with_slashes_are_reachable(tb: Api) -> None:
    r = presence(tb, [{"type": "join", "room": "voice/general", "member": "m1", "ts": NOW - 60},
                      {"type": "join", "room": "voice", "member": "m2", "ts": NOW - 60}])
    assert r.status_code == 200, r.text
    for path in ("/v1/presence/rooms/voice%2Fgeneral", "/v1/presence/rooms/voice/general"):
        room = tb.ok(path)
        assert room["room"] == "voice/general"
        assert [m["member"] for m in room["members"]] == ["m1"]
    assert [m["member"] for m in tb.ok("/v1/presence/rooms/voice")["members"]] == ["m2"]


def test_path_names_follow_the_name_rules(tb: Api) -> None:
    assert_error(tb.get("/v1/metrics/"), 400, "bad_query", param="metric")
    assert_error(tb.get("/v1/metrics/" + "m" * 129), 400, "bad_query", param="metric")
    assert_error(tb.get("/v1/presence/rooms/a%00b"), 400, "bad_query", param="room")


# ---- item 8: non-ASCII digits and zones that are no places ----------------------------------

@pytest.mark.parametrize("window", ["rolling:٣h", "rolling:３h", "rolling:3h\n", "rolling:03h",
                                    "rolling:0h"])
def test_rolling_windows_take_plain_ascii_digits_only(tb: Api, window: str) -> None:
    r = tb.get("/v1/leaderboard", metric="points", window=window)
    assert_error(r, 400, "bad_query", param="window")
    assert tb.ok("/v1/leaderboard", metric="points", window="rolling:3h")["total"] == 2


@pytest.mark.parametrize(("settings", "param"), [
    ({"rolling": ["٣h"]}, "rolling"), ({"rolling": ["24h\n"]}, "rolling"),
    ({"rolling": ["024h"]}, "rolling"), ({"day_start": "١٧:٠٠"}, "day_start"),
    ({"day_start": "17:00\n"}, "day_start"),
])
def test_metric_settings_take_plain_ascii_digits_only(tb: Api, settings: dict[str, Any],
                                                      param: str) -> None:
    assert_error(tb.put("points", settings), 400, "bad_query", param=param)


@pytest.mark.parametrize("value", ["١٧٦٣٨٠٠٠٠٠", "1_763_800_000", " 1763800000", "1763800000 "])
def test_unix_seconds_take_plain_ascii_digits_only(tb: Api, value: str) -> None:
    assert_error(tb.get("/v1/sum", metric="points", member="alice", start=value), 400,
                 "bad_query", param="start")


@pytest.mark.parametrize("zone", ["localtime", "Factory", "posixrules", "posix/Europe/Berlin",
                                  "right/UTC", "zone.tab", "tzdata.zi"])
def test_timezones_that_are_no_place_are_400(tb: Api, zone: str) -> None:
    assert_error(tb.put("points", {"timezone": zone}), 400, "bad_query", param="timezone")
    assert_error(tb.get("/v1/streak", metric="points", member="alice", timezone=zone),
                 400, "bad_query", param="timezone")


def test_real_zones_and_lowercase_rfc3339_still_answer(tb: Api) -> None:
    for zone in ("UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires", "Etc/GMT+5"):
        assert tb.put("points", {"timezone": zone}, rebuild="true").status_code == 200
    assert tb.sum("points", "alice", start="2000-01-01t00:00:00z") == 5


# ---- item 8: start after end ---------------------------------------------------------------

@pytest.mark.parametrize(("path", "params"), [
    ("/v1/sum", {"metric": "points", "member": "alice"}),
    ("/v1/series", {"metric": "points", "member": "alice", "step": "hour"}),
    ("/v1/presence/sessions", {"member": "alice"}),
    ("/v1/presence/concurrency", {}),
    ("/v1/migrations", {}),
    ("/v1/leaderboard", {"metric": "points", "window": "range"}),
])
def test_start_after_end_is_400_everywhere(tb: Api, path: str, params: dict[str, Any]) -> None:
    r = tb.get(path, start=NOW - 100, end=NOW - 200, **params)
    assert_error(r, 400, "bad_query")


def test_start_equal_to_end_is_an_empty_span_where_one_may_be(tb: Api) -> None:
    assert tb.sum("points", "alice", start=NOW - 100, end=NOW - 100) == 0
    assert tb.ok("/v1/presence/sessions", member="a", start=NOW, end=NOW) == {"sessions": []}
    assert tb.ok("/v1/migrations", start=NOW, end=NOW) == {"migrations": []}


# ---- item 8: a 2^64 value ------------------------------------------------------------------

@pytest.mark.parametrize("value", [b"18446744073709551616", b"18446744073709551615",
                                   b"9223372036854775808", b"-9223372036854775809",
                                   b"100000000000000000000000000000"])
def test_a_value_beyond_64_bits_is_out_of_range(tb: Api, value: bytes) -> None:
    body = b'{"metric": "points", "member": "alice", "value": %s}' % value
    err = assert_error(tb.post_raw(body), 422, "invalid_event", index=0, field="value")
    assert "out of the signed 64-bit range" in err["message"], err


def test_a_fractional_value_is_still_not_an_integer(tb: Api) -> None:
    err = assert_error(tb.post(event(value=1.5)), 422, "invalid_event", field="value")
    assert "must be a JSON integer" in err["message"]
