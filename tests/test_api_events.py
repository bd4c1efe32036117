"""POST /v1/events over HTTP, against SPEC §2 (time) and §3 (events)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from api_helpers import NOW, Api, api, assert_error, event, ts
from tallyboard.core.config import MetricConfig
from tallyboard.stores import SQLiteLog

pytestmark = pytest.mark.usefixtures("log_backend")  # each test on every store

INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)
MAX_BYTES = 10 * 1024 * 1024
DROP = object()  # leave the field out


@pytest.fixture
def tb() -> Iterator[Api]:
    with api() as a:
        yield a


# ---- the three body shapes ------------------------------------------------------------------

def test_single_object(tb: Api) -> None:
    r = tb.post(event("alice", 10))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"accepted": 1, "duplicates": 0}
    assert tb.sum("points", "alice") == 10


def test_spec_example_event(tb: Api) -> None:
    body = {"space": "g1", "metric": "points", "member": "u42", "value": 10,
            "ts": 1763800000, "tags": {"activity": "run"}, "id": "evt-0001"}
    assert tb.post(body).json() == {"accepted": 1, "duplicates": 0}
    assert tb.sum("points", "u42", space="g1") == 10


def test_json_array(tb: Api) -> None:
    r = tb.post([event("alice", 3), event("bob", 4), event("alice", 5)])
    assert r.status_code == 200
    assert r.json() == {"accepted": 3, "duplicates": 0}
    assert tb.sum("points", "alice") == 8
    assert tb.sum("points", "bob") == 4


@pytest.mark.parametrize("ctype", ["application/x-ndjson", "application/x-ndjson; charset=utf-8"])
def test_ndjson(tb: Api, ctype: str) -> None:
    lines = [orjson.dumps(event("alice", 2)), b"", orjson.dumps(event("bob", 7)), b"  "]
    r = tb.post_raw(b"\n".join(lines) + b"\n", ctype)
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 2, "duplicates": 0}
    assert tb.sum("points", "alice") == 2
    assert tb.sum("points", "bob") == 7


def test_ndjson_bad_line_is_400_naming_the_line(tb: Api) -> None:
    body = orjson.dumps(event("alice")) + b"\n{not json\n"
    assert_error(tb.post_raw(body, "application/x-ndjson"), 400, "bad_request", line=2)
    assert_error(tb.get("/v1/sum", metric="points", member="alice"), 404, "not_found")


# ---- fields ---------------------------------------------------------------------------------

def test_value_defaults_to_one_and_may_be_negative(tb: Api) -> None:
    e = event("alice")
    del e["value"]
    tb.record(e, event("alice", -5), event("alice", 2))
    assert tb.sum("points", "alice") == -2


def test_value_int64_bounds_accepted(tb: Api) -> None:
    tb.record(event("big", INT64_MAX), event("small", INT64_MIN))
    assert tb.sum("points", "big") == INT64_MAX
    assert tb.sum("points", "small") == INT64_MIN


def test_ts_forms(tb: Api) -> None:
    second = NOW - 7200
    tb.record(event("int", at=second),
              event("float", at=second + 0.999),
              {"metric": "points", "member": "rfc", "ts": "2026-11-25T11:00:00+01:00"},
              {"metric": "points", "member": "zulu", "ts": "2026-11-25T10:00:00Z"})
    for member, at in [("int", second), ("float", second), ("rfc", ts("2026-11-25T10:00:00Z")),
                       ("zulu", ts("2026-11-25T10:00:00Z"))]:
        assert tb.sum("points", member, start=at, end=at + 1) == 1, member
        assert tb.sum("points", member, start=at + 1) == 0, member


def test_missing_ts_is_receive_time(tb: Api) -> None:
    tb.record({"metric": "points", "member": "alice", "value": 4})
    assert tb.sum("points", "alice", start=NOW, end=NOW + 1) == 4
    assert tb.sum("points", "alice", end=NOW) == 0


def test_ts_range_limits(tb: Api) -> None:
    tb.record(event("first", at=ts("2000-01-01T00:00:00Z")), event("late", at=NOW + 60))
    assert_error(tb.post(event(at=ts("2000-01-01T00:00:00Z") - 1)), 422, "invalid_event",
                 index=0, field="ts")
    assert_error(tb.post(event(at=NOW + 61)), 422, "invalid_event", index=0, field="ts")


def test_skew_tolerance_is_configurable() -> None:
    with api(skew=5) as tb:
        tb.record(event(at=NOW + 5))
        assert_error(tb.post(event(at=NOW + 6)), 422, "invalid_event", field="ts")


def test_future_event_visible_once_at_passes_it(tb: Api) -> None:
    tb.record(event("alice", 3, at=NOW + 30))
    board = tb.ok("/v1/leaderboard", metric="points")
    assert board["total"] == 0
    assert tb.ok("/v1/leaderboard", metric="points", at=NOW + 30)["total"] == 0
    board = tb.ok("/v1/leaderboard", metric="points", at=NOW + 30.5)
    assert board["entries"] == [{"rank": 1, "member": "alice", "score": 3}]
    tb.clock.now = NOW + 31
    assert tb.ok("/v1/leaderboard", metric="points")["total"] == 1


def test_tag_limits_accepted(tb: Api) -> None:
    tags = {f"{i:02d}" + "k" * 62: "v" * 256 for i in range(16)}
    tb.record(event("alice", tags=tags), event("bob", tags={"k": "v"}))
    assert tb.sum("points", "alice") == 1


def test_name_limits_accepted(tb: Api) -> None:
    tb.record(event("m" * 128, metric="x" * 128, id="i" * 128, space="s" * 128))
    assert tb.sum("x" * 128, "m" * 128, space="s" * 128) == 1


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("value float", {"value": 1.5}, "value"),
    ("value whole float", {"value": 2.0}, "value"),
    ("value string", {"value": "5"}, "value"),
    ("value bool", {"value": True}, "value"),
    ("value null", {"value": None}, "value"),
    ("value over int64", {"value": INT64_MAX + 1}, "value"),
    ("value under int64", {"value": INT64_MIN - 1}, "value"),
    ("member missing", {"member": DROP}, "member"),
    ("member empty", {"member": ""}, "member"),
    ("member too long", {"member": "m" * 129}, "member"),
    ("member number", {"member": 42}, "member"),
    ("metric missing", {"metric": DROP}, "metric"),
    ("metric number", {"metric": 1}, "metric"),
    ("metric too long", {"metric": "x" * 129}, "metric"),
    ("ts before 2000", {"ts": 946684799}, "ts"),
    ("ts far future", {"ts": NOW + 3600}, "ts"),
    ("ts no offset", {"ts": "2026-11-25T10:00:00"}, "ts"),
    ("ts date only", {"ts": "2026-11-25"}, "ts"),
    ("ts garbage", {"ts": "yesterday"}, "ts"),
    ("ts numeric string", {"ts": str(NOW - 10)}, "ts"),
    ("ts bool", {"ts": True}, "ts"),
    ("ts list", {"ts": [NOW]}, "ts"),
    ("tags not object", {"tags": ["a", "b"]}, "tags"),
    ("tags too many", {"tags": {f"k{i}": "v" for i in range(17)}}, "tags"),
    ("tag key too long", {"tags": {"k" * 65: "v"}}, "tags"),
    ("tag value number", {"tags": {"k": 5}}, "tags.k"),
    ("tag value bool", {"tags": {"k": True}}, "tags.k"),
    ("tag value empty", {"tags": {"k": ""}}, "tags.k"),
    ("tag value too long", {"tags": {"k": "v" * 257}}, "tags.k"),
    ("id too long", {"id": "i" * 129}, "id"),
    ("id number", {"id": 7}, "id"),
    ("id empty", {"id": ""}, "id"),
    ("space empty", {"space": ""}, "space"),
    ("space number", {"space": 3}, "space"),
    ("unknown field", {"valu": 3}, "valu"),
]


@pytest.mark.parametrize(("change", "field"), [(c, f) for _, c, f in INVALID],
                         ids=[name for name, _, _ in INVALID])
def test_invalid_event_is_422_with_index_and_field(tb: Api, change: dict[str, Any],
                                                   field: str) -> None:
    bad = {k: v for k, v in {**event("bad"), **change}.items() if v is not DROP}
    r = tb.post([event("good1"), event("good2"), bad, event("good3")])
    assert_error(r, 422, "invalid_event", index=2, field=field)
    for member in ("good1", "good2", "good3"):
        r = tb.get("/v1/sum", metric="points", member=member)
        assert r.status_code == 404 or r.json() == {"sum": 0}


def test_item_that_is_not_an_object_is_422(tb: Api) -> None:
    assert_error(tb.post([event(), 5]), 422, "invalid_event", index=1, field="event")
    assert_error(tb.post_raw(b'"text"'), 422, "invalid_event", index=0, field="event")


def test_first_invalid_event_is_named(tb: Api) -> None:
    r = tb.post([event(), event(value="x"), event(member="")])
    assert_error(r, 422, "invalid_event", index=1, field="value")


def test_ndjson_invalid_event_index_counts_events_not_lines(tb: Api) -> None:
    body = b"\n".join([orjson.dumps(event()), b"", orjson.dumps(event(value=1.5))])
    assert_error(tb.post_raw(body, "application/x-ndjson"), 422, "invalid_event", index=1,
                 field="value")


# ---- atomicity ------------------------------------------------------------------------------

def test_batch_with_one_bad_event_in_the_middle_stores_nothing(tb: Api) -> None:
    tb.record(event("alice", 10))
    before = tb.ok("/v1/metrics")
    batch = [event("alice", 1), event("bob", 2), event("carol", 3, metric="brand_new"),
             event("alice", "lots"), event("alice", 4), event("dave", 5)]
    assert_error(tb.post(batch), 422, "invalid_event", index=3, field="value")
    assert tb.sum("points", "alice") == 10
    assert tb.sum("points", "bob") == 0
    assert tb.ok("/v1/leaderboard", metric="points")["total"] == 1
    assert tb.ok("/v1/metrics") == before
    assert_error(tb.get("/v1/metrics/brand_new"), 404, "not_found")
    assert tb.engine.events_total == 1


def test_failed_batch_does_not_consume_its_ids(tb: Api) -> None:
    assert tb.post([event("alice", 1, id="a1"), event(value=1.5)]).status_code == 422
    assert tb.post(event("alice", 1, id="a1")).json() == {"accepted": 1, "duplicates": 0}


# ---- idempotency ----------------------------------------------------------------------------

def test_same_id_twice_counts_once(tb: Api) -> None:
    assert tb.post(event("alice", 5, id="evt-1")).json() == {"accepted": 1, "duplicates": 0}
    assert tb.post(event("alice", 5, id="evt-1")).json() == {"accepted": 0, "duplicates": 1}
    assert tb.sum("points", "alice") == 5


def test_replayed_id_is_skipped_even_with_other_content(tb: Api) -> None:
    tb.record(event("alice", 5, id="evt-1"))
    assert tb.record(event("bob", 50, id="evt-1", metric="other")) == {"accepted": 0,
                                                                       "duplicates": 1}
    assert tb.sum("points", "alice") == 5
    assert_error(tb.get("/v1/sum", metric="other", member="bob"), 404, "not_found")


def test_same_id_inside_one_batch(tb: Api) -> None:
    reply = tb.record(event("alice", 5, id="x"), event("alice", 5, id="x"), event("alice", 1))
    assert reply == {"accepted": 2, "duplicates": 1}
    assert tb.sum("points", "alice") == 6


def test_batch_mixing_new_and_seen_ids(tb: Api) -> None:
    tb.record(event("alice", 1, id="a"), event("alice", 2, id="b"))
    reply = tb.record(event("alice", 1, id="a"), event("alice", 4, id="c"),
                      event("alice", 2, id="b"))
    assert reply == {"accepted": 1, "duplicates": 2}
    assert tb.sum("points", "alice") == 7


def test_ids_are_per_space(tb: Api) -> None:
    assert tb.record(event("alice", id="same", space="g1"))["accepted"] == 1
    assert tb.record(event("alice", id="same", space="g2"))["accepted"] == 1
    assert tb.record(event("alice", id="same"), space="g3")["accepted"] == 1
    assert tb.record(event("alice", id="same", space="g1"))["duplicates"] == 1


def test_ids_remembered_for_seven_days(tb: Api) -> None:
    tb.record(event("alice", 5, id="evt-1"))
    tb.clock.now = NOW + 7 * 86400 - 1
    assert tb.post(event("alice", 5, at=NOW, id="evt-1")).json() == {"accepted": 0,
                                                                      "duplicates": 1}
    assert tb.sum("points", "alice") == 5


def test_ids_remembered_across_restart(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite3"
    with api(SQLiteLog(path)) as tb:
        tb.record(event("alice", 5, id="evt-1"))
    with api(SQLiteLog(path)) as tb:
        assert tb.post(event("alice", 5, id="evt-1")).json() == {"accepted": 0,
                                                                 "duplicates": 1}
        assert tb.sum("points", "alice") == 5


# ---- spaces ---------------------------------------------------------------------------------

def test_spaces_are_isolated(tb: Api) -> None:
    tb.record(event("alice", 5, space="g1"), event("alice", 7, space="g2"))
    tb.record(event("alice", 100))
    assert tb.sum("points", "alice", space="g1") == 5
    assert tb.sum("points", "alice", space="g2") == 7
    assert tb.sum("points", "alice") == 100
    assert tb.ok("/v1/leaderboard", metric="points", space="g1")["entries"] == [
        {"rank": 1, "member": "alice", "score": 5}]
    assert_error(tb.get("/v1/sum", metric="points", member="alice", space="g3"), 404,
                 "not_found")


def test_space_query_param_is_the_default_and_event_space_wins(tb: Api) -> None:
    tb.record(event("alice", 1), event("alice", 2, space="g2"), space="g1")
    assert tb.sum("points", "alice", space="g1") == 1
    assert tb.sum("points", "alice", space="g2") == 2
    assert_error(tb.get("/v1/sum", metric="points", member="alice"), 404, "not_found")


def test_space_query_param_is_validated(tb: Api) -> None:
    assert_error(tb.post(event(), space=""), 400, "bad_query", param="space")
    assert_error(tb.post(event(), space="s" * 129), 400, "bad_query", param="space")


# ---- metric creation ------------------------------------------------------------------------

def test_unknown_metric_is_created_with_default_config(tb: Api) -> None:
    tb.record(event(metric="steps"))
    info = tb.ok("/v1/metrics/steps")
    assert info["timezone"] == "UTC"
    assert info["day_start"] == "00:00"
    assert info["week_start"] == "monday"
    assert info["dimensions"] == []
    assert info["events"] == 1


def test_server_default_metric_config_applies() -> None:
    default = MetricConfig(timezone="Europe/Berlin", day_start="05:00", dimensions=("room",))
    with api(default_config=default) as tb:
        tb.record(event(metric="steps"))
        info = tb.ok("/v1/metrics/steps")
        assert (info["timezone"], info["day_start"], info["dimensions"]) == (
            "Europe/Berlin", "05:00", ["room"])


# ---- 400 and 413 ----------------------------------------------------------------------------

@pytest.mark.parametrize("body", [b"", b"   \n  ", b"{", b"[1,", b"nope", b"[]"],
                         ids=["empty", "blank", "open brace", "open array", "text", "no events"])
def test_empty_or_malformed_body_is_400(tb: Api, body: bytes) -> None:
    assert_error(tb.post_raw(body), 400, "bad_request")


def test_empty_ndjson_is_400(tb: Api) -> None:
    assert_error(tb.post_raw(b"\n\n", "application/x-ndjson"), 400, "bad_request")


def test_ten_thousand_events_accepted(tb: Api) -> None:
    batch = [event(f"m{i:05d}", id=f"e{i}") for i in range(10_000)]
    assert tb.post(batch).json() == {"accepted": 10_000, "duplicates": 0}
    assert tb.ok("/v1/leaderboard", metric="points")["total"] == 10_000


def test_more_than_ten_thousand_events_is_413(tb: Api) -> None:
    batch = [event(f"m{i:05d}") for i in range(10_001)]
    assert_error(tb.post(batch), 413, "too_large")
    ndjson = b"\n".join(orjson.dumps(e) for e in batch)
    assert_error(tb.post_raw(ndjson, "application/x-ndjson"), 413, "too_large")
    assert_error(tb.get("/v1/sum", metric="points", member="m00000"), 404, "not_found")


def test_body_of_ten_mib_accepted_one_byte_more_is_413(tb: Api) -> None:
    one = orjson.dumps(event("alice"))
    assert tb.post_raw(one + b" " * (MAX_BYTES - len(one))).status_code == 200
    assert_error(tb.post_raw(one + b" " * (MAX_BYTES - len(one) + 1)), 413, "too_large")
    assert tb.sum("points", "alice") == 1


def test_chunked_body_over_ten_mib_is_413(tb: Api) -> None:
    one = orjson.dumps(event("alice"))

    def chunks() -> Iterator[bytes]:
        yield one
        for _ in range(11):
            yield b" " * (1024 * 1024)

    r = tb.client.post("/v1/events", content=chunks(),
                       headers={"content-type": "application/json"})
    assert_error(r, 413, "too_large")
    assert_error(tb.get("/v1/sum", metric="points", member="alice"), 404, "not_found")


# ---- 503 ------------------------------------------------------------------------------------

def test_store_unavailable_is_503_with_retry_after_and_nothing_applied(tmp_path: Path) -> None:
    log = SQLiteLog(tmp_path / "log.sqlite3")
    with api(log) as tb:
        tb.record(event("alice", 5))
        log.close()  # the durable log stops answering
        r = tb.post([event("alice", 1), event("bob", 1, metric="fresh")])
        assert_error(r, 503, "store_unavailable")
        assert int(r.headers["retry-after"]) >= 1
        assert tb.sum("points", "alice") == 5
        assert_error(tb.get("/v1/metrics/fresh"), 404, "not_found")
        r = tb.put("points", {"timezone": "Europe/Berlin"}, rebuild="true")
        assert_error(r, 503, "store_unavailable")
        assert int(r.headers["retry-after"]) >= 1
        assert tb.ok("/v1/metrics/points")["timezone"] == "UTC"
