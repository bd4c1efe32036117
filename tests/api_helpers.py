"""Helpers for the in-process HTTP API tests (tests/test_api_*.py).

Each test gets its own engine, a fixed, movable clock and a Starlette TestClient around
`create_app`: no sockets, no processes. Every test runs twice (each module marks itself
with conftest's `log_backend`): on the in-memory reference log and on the PostgreSQL
log, so the whole HTTP contract is checked on both stores.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tallyboard.api import create_app
from tallyboard.engine import Tallyboard
from tallyboard.settings import Settings
from tallyboard.stores import EventLog, MemoryLog

SNAKE_CASE = re.compile(r"[a-z]+(_[a-z0-9]+)*")


def ts(text: str) -> int:
    """Unix seconds of an RFC 3339 instant, e.g. ``ts("2026-11-22T17:00:00Z")``."""
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


NOW = ts("2026-11-25T12:00:00Z")  # a Wednesday, well after every event the tests send


class Clock:
    """The engine's clock: fixed, moved by hand."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Api:
    """A test client, the engine behind it and its clock."""

    client: TestClient
    engine: Tallyboard
    clock: Clock

    def post(self, body: Any, headers: Mapping[str, str] | None = None,
             **params: Any) -> httpx.Response:
        """POST a JSON body (object or array) to /v1/events."""
        return self.client.post("/v1/events", json=body, params=params, headers=headers)

    def post_raw(self, content: bytes, content_type: str = "application/json",
                 headers: Mapping[str, str] | None = None, **params: Any) -> httpx.Response:
        return self.client.post("/v1/events", content=content, params=params,
                                headers={"content-type": content_type, **(headers or {})})

    def get(self, path: str, headers: Mapping[str, str] | None = None,
            **params: Any) -> httpx.Response:
        return self.client.get(path, params=params, headers=headers)

    def put(self, metric: str, settings: Any, headers: Mapping[str, str] | None = None,
            **params: Any) -> httpx.Response:
        return self.client.put(f"/v1/metrics/{metric}", json=settings, params=params,
                               headers=headers)

    def ok(self, path: str, **params: Any) -> Any:
        """GET `path` and return its JSON, asserting a 200."""
        r = self.get(path, **params)
        assert r.status_code == 200, r.text
        return r.json()

    def record(self, *events: dict[str, Any], headers: Mapping[str, str] | None = None,
               **params: Any) -> dict[str, Any]:
        """POST events (as one array), asserting a 200; returns the reply."""
        r = self.post(list(events), headers=headers, **params)
        assert r.status_code == 200, r.text
        reply: dict[str, Any] = r.json()
        return reply

    def sum(self, metric: str, member: str, **params: Any) -> int:
        total: int = self.ok("/v1/sum", metric=metric, member=member, **params)["sum"]
        return total


_shared: dict[str, FastAPI] = {}
# Starlette's TestClient sends ``Host: testserver``, which a server on loopback refuses.
TEST_HOSTS = ["testserver", "localhost", "127.0.0.1", "::1"]


def _app(engine: Tallyboard, settings: Settings | None, fresh: bool) -> FastAPI:
    """A new app (`fresh`), or the shared app for these settings pointed at `engine`.

    FastAPI resolves its routes on an app's first request (~50 ms); sharing one app per
    settings keeps hundreds of tests fast. Routes find the engine in ``app.state.engine``.
    Tests of /metrics or of rate limits ask for a fresh app: telemetry and the key ring's
    buckets live per app.
    """
    settings = settings or Settings(keys=[])
    if settings.allowed_hosts is None:  # the TestClient's Host, on top of the defaults'
        settings = settings.model_copy(update={"allowed_hosts": TEST_HOSTS})
    if fresh:
        return create_app(engine, settings)
    # API keys are SecretStr (dumped as ***): the secrets themselves tell settings apart
    key = settings.model_dump_json() + repr([k.key.get_secret_value() for k in settings.keys])
    if key not in _shared:
        _shared[key] = create_app(engine, settings)
    _shared[key].state.engine = engine
    return _shared[key]


# The log `api()` gives an engine when the test names none; conftest's `log_backend`
# points it at PostgreSQL for the second run of every test_api_* test.
default_log: list[Callable[[], EventLog]] = [MemoryLog]


@contextmanager
def api(log: EventLog | None = None, settings: Settings | None = None,
        clock: Clock | None = None, fresh: bool = False,
        **engine_options: Any) -> Iterator[Api]:
    """An app over a fresh engine; closes the client and the engine afterwards."""
    clock = clock or Clock()
    engine = Tallyboard(log or default_log[0](), clock=clock, **engine_options)
    app = _app(engine, settings, fresh)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield Api(client, engine, clock)
    finally:
        engine.close()


def assert_error(r: httpx.Response, status: int, code: str, **details: Any) -> dict[str, Any]:
    """The SPEC §8 error shape: JSON ``{"error": {"code", "message", ...}}`` and `details`."""
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text}"
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert error["code"] == code, error
    assert SNAKE_CASE.fullmatch(error["code"]), error
    assert isinstance(error["message"], str) and error["message"], error
    for key, value in details.items():
        assert key in error, f"{key!r} missing from {error}"
        assert error[key] == value, f"{key}: {error[key]!r} != {value!r}"
    return error


def event(member: str = "alice", value: Any = 1, at: float = NOW - 3600,
          metric: str = "points", **more: Any) -> dict[str, Any]:
    """One event (default: alice +1 on points an hour before NOW)."""
    return {"metric": metric, "member": member, "value": value, "ts": at, **more}
