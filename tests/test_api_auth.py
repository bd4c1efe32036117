"""SPEC §8 security: API keys with scopes and spaces (401, 403) and rate limits (429)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api_helpers import Api, api, assert_error, event
from tallyboard.settings import ApiKey, Settings

pytestmark = pytest.mark.usefixtures("log_backend")  # each test on every store

READ = {"Authorization": "Bearer reader-key-1"}
WRITE = {"Authorization": "Bearer writer-key-1"}
G1 = {"Authorization": "Bearer g1-readwrite-key"}
ADMIN = {"Authorization": "Bearer admin-key-1"}
G1_ADMIN = {"Authorization": "Bearer g1-admin-key"}

KEYS = Settings(keys=[
    ApiKey(key="reader-key-1", scopes=["read"]),
    ApiKey(key="writer-key-1", scopes=["write"]),
    ApiKey(key="g1-readwrite-key", scopes=["read", "write"], spaces=["g1"]),
    ApiKey(key="admin-key-1", scopes=["read", "write", "admin"], spaces=["*"]),
    ApiKey(key="g1-admin-key", scopes=["admin"], spaces=["g1"]),
])


@pytest.fixture
def tb() -> Iterator[Api]:
    with api(settings=KEYS) as a:
        yield a


def every_v1_call(tb: Api, headers: dict[str, str] | None,
                  space: str = "default") -> list[tuple[str, httpx.Response]]:
    q: dict[str, Any] = {"metric": "points", "member": "alice", "space": space}
    return [
        ("post events", tb.post(event(), headers=headers, space=space)),
        ("sum", tb.get("/v1/sum", headers=headers, **q)),
        ("series", tb.get("/v1/series", headers=headers, step="hour", **q)),
        ("leaderboard", tb.get("/v1/leaderboard", headers=headers, **q)),
        ("rank", tb.get("/v1/rank", headers=headers, **q)),
        ("streak", tb.get("/v1/streak", headers=headers, **q)),
        ("metrics", tb.get("/v1/metrics", headers=headers, space=space)),
        ("metric", tb.get("/v1/metrics/points", headers=headers, space=space)),
        ("put metric", tb.put("points", {"rolling": ["1h"]}, headers=headers, space=space)),
    ]


def test_no_keys_configured_means_every_scope() -> None:
    with api() as tb:
        for name, r in every_v1_call(tb, None, space="any"):
            assert r.status_code == 200, (name, r.text)
        for name, r in every_v1_call(tb, {"Authorization": "Bearer whatever"}, space="x"):
            assert r.status_code == 200, (name, r.text)


@pytest.mark.parametrize("headers", [
    None, {"Authorization": ""}, {"Authorization": "Bearer"}, {"Authorization": "Bearer "},
    {"Authorization": "Bearer wrong-key-1"}, {"Authorization": "Basic cmVhZGVyLWtleS0xOg=="},
    {"Authorization": "reader-key-1"}, {"Authorization": "Bearer reader-key-"},
    {"Authorization": "Bearer reader-key-12"}, {"X-Api-Key": "reader-key-1"},
], ids=["none", "empty", "bearer only", "bearer space", "unknown", "basic", "no scheme",
        "prefix", "longer", "other header"])
def test_missing_or_unknown_key_is_401_everywhere(tb: Api, headers: dict[str, str] | None) -> None:
    for name, r in every_v1_call(tb, headers):
        assert r.status_code == 401, name
        assert_error(r, 401, "unauthorized")
    assert tb.engine.events_total == 0


def test_401_comes_before_404(tb: Api) -> None:
    assert_error(tb.get("/v1/leaderboard", metric="nope"), 401, "unauthorized")
    assert_error(tb.get("/v1/metrics/nope"), 401, "unauthorized")


def test_bearer_scheme_is_case_insensitive(tb: Api) -> None:
    r = tb.get("/v1/metrics", headers={"Authorization": "bearer reader-key-1"})
    assert r.status_code == 200, r.text


def test_read_key(tb: Api) -> None:
    tb.record(event("alice", 4), headers=ADMIN)
    assert tb.get("/v1/sum", headers=READ, metric="points", member="alice").json() == {"sum": 4}
    assert tb.get("/v1/leaderboard", headers=READ, metric="points", space="g7").status_code \
        == 404
    assert_error(tb.post(event(), headers=READ), 403, "forbidden", scope="write")
    assert_error(tb.put("points", {"rolling": ["1h"]}, headers=READ), 403, "forbidden",
                 scope="admin")
    assert tb.engine.events_total == 1


def test_write_key_without_read(tb: Api) -> None:
    assert tb.post(event("alice", 2), headers=WRITE).status_code == 200
    assert tb.post(event("alice", 2, space="g9"), headers=WRITE).status_code == 200
    assert_error(tb.get("/v1/sum", headers=WRITE, metric="points", member="alice"), 403,
                 "forbidden", scope="read")
    assert_error(tb.get("/v1/metrics", headers=WRITE), 403, "forbidden", scope="read")
    assert_error(tb.put("points", {}, headers=WRITE), 403, "forbidden", scope="admin")


def test_admin_key(tb: Api) -> None:
    for name, r in every_v1_call(tb, ADMIN, space="anywhere"):
        assert r.status_code == 200, (name, r.text)


def test_space_limited_key(tb: Api) -> None:
    for name, r in every_v1_call(tb, G1, space="g1"):
        expected = 403 if name == "put metric" else 200
        assert r.status_code == expected, (name, r.text)
    for name, r in every_v1_call(tb, G1, space="g2"):
        if name == "put metric":
            assert_error(r, 403, "forbidden", scope="admin")
        else:
            assert_error(r, 403, "forbidden", space="g2")
    for name, r in every_v1_call(tb, G1):
        assert r.status_code == 403, name


def test_event_naming_a_forbidden_space_is_403_and_stores_nothing(tb: Api) -> None:
    r = tb.post([event("alice", 1), event("alice", 1, space="g2")], headers=G1, space="g1")
    assert_error(r, 403, "forbidden", space="g2")
    assert tb.engine.events_total == 0
    assert_error(tb.get("/v1/sum", headers=ADMIN, metric="points", member="alice", space="g1"),
                 404, "not_found")


def test_space_limited_admin(tb: Api) -> None:
    assert tb.put("points", {"rolling": ["1h"]}, headers=G1_ADMIN, space="g1").status_code \
        == 200
    assert_error(tb.put("points", {"rolling": ["1h"]}, headers=G1_ADMIN, space="g2"), 403,
                 "forbidden", space="g2")
    assert_error(tb.get("/v1/metrics", headers=G1_ADMIN, space="g1"), 403, "forbidden",
                 scope="read")


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json", "/",
                                  "/docs"])
def test_operations_need_no_key(tb: Api, path: str) -> None:
    assert tb.get(path).status_code == 200


# ---- 429 ------------------------------------------------------------------------------------

def limited(rate: float, burst: int) -> Settings:
    return Settings(keys=KEYS.keys, rate_limit=rate, rate_burst=burst)


def test_rate_limit_is_429_with_retry_after() -> None:
    with api(settings=limited(0.001, 2), fresh=True) as tb:
        assert tb.post(event("alice", 1), headers=ADMIN).status_code == 200
        assert tb.get("/v1/metrics", headers=ADMIN).status_code == 200
        r = tb.post(event("alice", 1), headers=ADMIN)
        assert_error(r, 429, "rate_limited")
        assert int(r.headers["retry-after"]) >= 1
        assert tb.engine.events_total == 1
        r = tb.get("/v1/metrics", headers=ADMIN)
        assert_error(r, 429, "rate_limited")
        assert int(r.headers["retry-after"]) >= 1
        # buckets are per key
        assert tb.get("/v1/metrics", headers=READ).status_code == 200
        # operations are not limited
        assert tb.get("/healthz").status_code == 200


def test_rate_limit_refills() -> None:
    with api(settings=limited(50, 1), fresh=True) as tb:
        assert tb.get("/v1/metrics", headers=READ).status_code == 200
        r = tb.get("/v1/metrics", headers=READ)
        assert_error(r, 429, "rate_limited")
        assert r.headers["retry-after"] == "1"
        time.sleep(0.05)
        assert tb.get("/v1/metrics", headers=READ).status_code == 200


def test_no_rate_limit_by_default(tb: Api) -> None:
    for _ in range(150):
        assert tb.get("/v1/metrics", headers=READ).status_code == 200
