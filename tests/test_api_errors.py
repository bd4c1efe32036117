"""SPEC §8: every error is JSON ``{"error": {"code", "message", ...}}`` with the right status;
never a 500 for bad input."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from api_helpers import NOW, Api, api, assert_error, event

pytestmark = pytest.mark.usefixtures("log_backend")  # each test on every store

QUERIES = ["/v1/sum", "/v1/series", "/v1/leaderboard", "/v1/rank", "/v1/streak"]
BASE = {"metric": "points", "member": "alice", "step": "hour", "start": NOW - 7200, "end": NOW}


@pytest.fixture
def tb() -> Iterator[Api]:
    with api() as a:
        a.record(event("alice", 5), event("bob", 3))
        assert a.put("points", {"dimensions": ["k"]}, rebuild="true").status_code == 200
        yield a


# ---- 404 ------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/nope", "/v1", "/v1/sums", "/v2/sum", "/v1/events/x",
                                  "/v1/presence/x", "/healthz/x"])
def test_unknown_route_is_404_json(tb: Api, path: str) -> None:
    assert_error(tb.get(path), 404, "not_found")
    assert_error(tb.client.post(path, json={}), 404, "not_found")


@pytest.mark.parametrize("path", QUERIES)
def test_unknown_metric_is_404_on_every_query(tb: Api, path: str) -> None:
    err = assert_error(tb.get(path, **{**BASE, "metric": "nope"}), 404, "not_found")
    assert "nope" in err["message"]


def test_unknown_metric_in_another_space_is_404(tb: Api) -> None:
    assert_error(tb.get("/v1/leaderboard", metric="points", space="other"), 404, "not_found")
    assert_error(tb.get("/v1/metrics/points", space="other"), 404, "not_found")


# ---- 405 ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/events"), ("PUT", "/v1/events"), ("POST", "/v1/sum"),
    ("DELETE", "/v1/leaderboard"), ("POST", "/v1/rank"), ("PATCH", "/v1/streak"),
    ("POST", "/v1/series"), ("DELETE", "/v1/metrics/points"), ("POST", "/v1/metrics"),
    ("POST", "/healthz"), ("DELETE", "/metrics"),
])
def test_wrong_method_is_405_json(tb: Api, method: str, path: str) -> None:
    err = assert_error(tb.client.request(method, path), 405, "method_not_allowed")
    assert method in err["message"]


# ---- 400: query parameters name themselves ------------------------------------------------

MISSING = [
    ("/v1/sum", "metric"), ("/v1/sum", "member"),
    ("/v1/series", "metric"), ("/v1/series", "member"), ("/v1/series", "step"),
    ("/v1/leaderboard", "metric"),
    ("/v1/rank", "metric"), ("/v1/rank", "member"),
    ("/v1/streak", "metric"), ("/v1/streak", "member"),
]


@pytest.mark.parametrize(("path", "param"), MISSING)
def test_missing_required_param_is_400_naming_it(tb: Api, path: str, param: str) -> None:
    query = {k: v for k, v in BASE.items() if k != param}
    err = assert_error(tb.get(path, **query), 400, "bad_query", param=param)
    assert param in err["message"]


@pytest.mark.parametrize("path", QUERIES)
@pytest.mark.parametrize(("param", "value"), [
    ("space", ""), ("space", "s" * 129), ("metric", ""), ("metric", "m" * 129),
])
def test_bad_names_are_400(tb: Api, path: str, param: str, value: str) -> None:
    assert_error(tb.get(path, **{**BASE, param: value}), 400, "bad_query", param=param)


@pytest.mark.parametrize("path", QUERIES)
def test_undeclared_tag_filter_is_400_on_every_query(tb: Api, path: str) -> None:
    assert_error(tb.get(path, **{**BASE, "tag.nope": "x"}), 400, "bad_query", param="tag.nope")
    assert tb.get(path, **{**BASE, "tag.k": "x"}).status_code == 200


@pytest.mark.parametrize("path", QUERIES)
def test_two_tag_filters_are_400(tb: Api, path: str) -> None:
    assert_error(tb.get(path, **{**BASE, "tag.k": "x", "tag.j": "y"}), 400, "bad_query")


@pytest.mark.parametrize(("path", "param"), [
    ("/v1/sum", "start"), ("/v1/sum", "end"), ("/v1/series", "start"), ("/v1/series", "end"),
    ("/v1/leaderboard", "at"), ("/v1/rank", "at"), ("/v1/streak", "at"),
])
@pytest.mark.parametrize("value", ["soon", "nan", "inf", "-inf", "2026-11-25",
                                   "2026-11-25T10:00:00", "2026-13-01T00:00:00Z", ""])
def test_bad_instants_are_400_naming_the_param(tb: Api, path: str, param: str,
                                               value: str) -> None:
    r = tb.get(path, **{**BASE, param: value})
    if value == "" and r.status_code == 200:
        return  # an empty value may reasonably mean "not given"
    assert_error(r, 400, "bad_query", param=param)


# ---- never a 500 ----------------------------------------------------------------------------

WEIRD = ["", " ", "\x00", "é", "💥", "x" * 200, "-0", "1e5", "0x10", "True", "null", "[]",
         "{}", "1,2", "%", "%00", "2026-11-22T17:00:00Z", "2026-11-22T17:00:00+25:00",
         "2026-11-22T24:00:00Z", "9" * 10, "-9" * 100, "1e-400", "1_000", " 5 ", "+5", "1.",
         ".5", "2000-01-01T00:00:00Z", "1795435200.999999999", "-1e10", "1e11", "../..",
         "rolling:1d", "range", "Europe/Berlin", "17:00", "day", "\n", "a" * 129]
PARAMS: dict[str, list[str]] = {
    "/v1/sum": ["metric", "member", "start", "end", "space", "tag.k"],
    "/v1/series": ["metric", "member", "start", "end", "step", "space", "tag.k"],
    "/v1/leaderboard": ["metric", "window", "n", "offset", "at", "start", "end", "members",
                        "space", "tag.k"],
    "/v1/rank": ["metric", "member", "window", "radius", "at", "start", "end", "space"],
    "/v1/streak": ["metric", "member", "min", "at", "timezone", "day_start", "space"],
    "/v1/metrics": ["space"],
}


@pytest.mark.parametrize("path", list(PARAMS))
def test_weird_query_values_never_500(tb: Api, path: str) -> None:
    for param in PARAMS[path]:
        for value in WEIRD:
            query: dict[str, Any] = {**BASE, param: value}
            if path == "/v1/leaderboard" and param in ("start", "end"):
                query["window"] = "range"
            r = tb.get(path, **query)
            assert r.status_code in (200, 400, 404), (path, param, value, r.text)
            assert r.headers["content-type"].startswith("application/json")
            if r.status_code != 200:
                assert_error(r, r.status_code, r.json()["error"]["code"])


@pytest.mark.parametrize(("path", "param"), [
    ("/v1/sum", "start"), ("/v1/sum", "end"), ("/v1/series", "start"), ("/v1/leaderboard", "at"),
    ("/v1/rank", "at"), ("/v1/streak", "at"),
])
def test_huge_numeric_instants_are_400(tb: Api, path: str, param: str) -> None:
    assert_error(tb.get(path, **{**BASE, param: "9" * 400}), 400, "bad_query", param=param)


@pytest.mark.parametrize("value", WEIRD)
def test_weird_metric_settings_never_500(tb: Api, value: str) -> None:
    for field in ("timezone", "day_start", "week_start"):
        r = tb.put("fresh", {field: value})
        assert r.status_code in (200, 400), (field, value, r.text)
    for field in ("dimensions", "rolling"):
        r = tb.put("fresh", {field: [value]})
        assert r.status_code in (200, 400), (field, value, r.text)


@pytest.mark.parametrize("body", [
    b"null", b"0", b"true", b"[[]]", b"[null]", b'{"metric": {}}', b"\xff\xfe", b"\x00",
    b'{"metric":"p","member":"a","value":1e400}', b'{"metric":"p","member":"a","ts":-1e400}',
    b'{"metric":"p","member":"a","value":123456789012345678901234567890}',
    b'{"metric":"p","member":"a","ts":123456789012345678901234567890}',
    b'{"metric":"p","member":"a","tags":{"":"x"}}', b'{"metric":"p","member":"a","id":null}' * 2,
    b'[' + b'[' * 5000 + b']' * 5000 + b']',
])
def test_weird_event_bodies_never_500(tb: Api, body: bytes) -> None:
    for ctype in ("application/json", "application/x-ndjson", "text/plain"):
        r = tb.post_raw(body, ctype)
        ok = (415,) if ctype == "text/plain" else (200, 400, 413, 422)
        assert r.status_code in ok, (body[:60], ctype, r.text)
        if r.status_code != 200:
            assert_error(r, r.status_code, r.json()["error"]["code"])


# ---- one of each: the body shape ------------------------------------------------------------

def test_every_spec_status_has_the_json_error_shape(tb: Api) -> None:
    tb.record(event("alice", 1, metric="cal"))
    cases: list[tuple[Any, int, str]] = [
        (tb.get("/v1/leaderboard", metric="points", n=0), 400, "bad_query"),
        (tb.post_raw(b""), 400, "bad_request"),
        (tb.get("/v1/leaderboard", metric="nope"), 404, "not_found"),
        (tb.get("/nope"), 404, "not_found"),
        (tb.client.delete("/v1/sum"), 405, "method_not_allowed"),
        (tb.put("cal", {"timezone": "Asia/Tokyo"}), 409, "conflict"),
        (tb.post([event()] * 10_001), 413, "too_large"),
        (tb.post(event(value=1.5)), 422, "invalid_event"),
    ]
    for r, status, code in cases:
        assert_error(r, status, code)
