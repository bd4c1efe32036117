"""SPEC §10 operations endpoints: /healthz, /readyz, /metrics (Prometheus), /openapi.json."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.cluster import RedisCluster

from api_helpers import Api, api, event
from tallyboard.stores.redis_feed import RedisFeed

pytestmark = pytest.mark.usefixtures("log_backend")  # each test on every store


@pytest.fixture
def tb() -> Iterator[Api]:
    with api(fresh=True) as a:  # its own telemetry
        yield a


def samples(tb: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = tb.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def test_healthz(tb: Api) -> None:
    r = tb.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_readyz(tb: Api) -> None:
    tb.record(event("alice"), event("bob"))
    r = tb.get("/readyz")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["status"] == "ready"


def test_prometheus_counts_requests_and_event_outcomes(tb: Api) -> None:
    assert tb.post([event("a", id="1"), event("b", id="2")]).json() == {"accepted": 2,
                                                                         "duplicates": 0}
    assert tb.post([event("a", id="1"), event("c", id="3")]).json() == {"accepted": 1,
                                                                         "duplicates": 1}
    assert tb.post([event("d"), event("e"), event(value=1.5)]).status_code == 422
    assert tb.get("/v1/leaderboard", metric="points").status_code == 200
    assert tb.get("/v1/metrics/points").status_code == 200
    assert tb.get("/v1/metrics/nope").status_code == 404
    assert tb.get("/nowhere").status_code == 404
    got = samples(tb)

    def requests(route: str, method: str, status: str) -> float:
        labels = (("method", method), ("route", route), ("status", status))
        return got[("tallyboard_http_requests_total", labels)]

    assert requests("/v1/events", "POST", "200") == 2
    assert requests("/v1/events", "POST", "422") == 1
    assert requests("/v1/leaderboard", "GET", "200") == 1
    assert requests("/v1/metrics/{metric}", "GET", "200") == 1
    assert requests("/v1/metrics/{metric}", "GET", "404") == 1
    assert sum(v for (name, labels), v in got.items()
               if name == "tallyboard_http_requests_total" and ("status", "404") in labels
               and ("route", "/v1/metrics/{metric}") not in labels) == 1

    def events(outcome: str) -> float:
        return got[("tallyboard_events_total", (("outcome", outcome),))]

    assert events("accepted") == 3
    assert events("duplicate") == 1
    assert events("rejected") == 3

    assert got[("tallyboard_store_events", ())] == 3
    assert got[("tallyboard_store_metrics", ())] == 1
    assert any(name == "tallyboard_http_request_duration_seconds_count" for name, _ in got)


def test_prometheus_starts_with_zero_outcomes(tb: Api) -> None:
    got = samples(tb)
    for outcome in ("accepted", "duplicate", "rejected"):
        assert got[("tallyboard_events_total", (("outcome", outcome),))] == 0


def test_openapi_lists_every_endpoint(tb: Api) -> None:
    r = tb.get("/openapi.json")
    assert r.status_code == 200
    schema = r.json()
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    expected = {"/v1/events": "post", "/v1/sum": "get", "/v1/series": "get",
                "/v1/leaderboard": "get", "/v1/rank": "get", "/v1/streak": "get",
                "/v1/metrics": "get", "/healthz": "get", "/readyz": "get", "/metrics": "get"}
    for path, method in expected.items():
        assert method in paths.get(path, {}), path
    assert {"get", "put"} <= set(paths["/v1/metrics/{metric}"])
    names = {p["name"] for p in paths["/v1/leaderboard"]["get"]["parameters"]}
    assert {"metric", "window", "n", "offset", "at", "start", "end", "members",
            "space"} <= names
    body = paths["/v1/events"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/x-ndjson"} <= set(body)
    assert "EventIn" in schema["components"]["schemas"]


def test_docs_and_dashboard_are_html(tb: Api) -> None:
    for path in ("/docs", "/"):
        r = tb.get(path)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")


def test_each_test_runs_on_the_store_it_says(tb: Api, log_backend: str) -> None:
    """Guards the four-store run itself: the engine really sits on the named store."""
    log = tb.engine.log
    assert type(log).__name__ == {"memory": "MemoryLog", "postgres": "PostgresLog",
                                  "redis": "RedisFeed", "cluster": "RedisFeed"}[log_backend]
    if isinstance(log, RedisFeed):
        assert type(log.durable).__name__ == "PostgresLog"
        assert isinstance(log._redis, RedisCluster) == (log_backend == "cluster")
