"""Prometheus metrics: request counts and latency by route and status, events, store size.

Each app gets its own registry so several apps (tests) can live in one process.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..engine import Tallyboard
from ..stores.buffered import BufferedLog
from ..stores.redis_feed import RedisFeed

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class Telemetry:
    """The metrics one app exports at /metrics."""

    def __init__(self, engine: Tallyboard) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("tallyboard_http_requests", "HTTP requests served",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("tallyboard_http_request_duration_seconds",
                                 "Time to answer an HTTP request", ["route", "status"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.events = Counter("tallyboard_events", "Events by outcome: accepted, duplicate, "
                              "rejected", ["outcome"], registry=r)
        self.presence = Counter("tallyboard_presence_ops", "Presence operations by outcome: "
                                "accepted, duplicate, rejected", ["outcome"], registry=r)
        for outcome in ("accepted", "duplicate", "rejected"):
            self.events.labels(outcome)
            self.presence.labels(outcome)
        noops = Gauge("tallyboard_presence_noops", "Joins and leaves that changed nothing "
                      "(duplicate_join, orphan_leave)", ["kind"], registry=r)
        for kind in ("duplicate_join", "orphan_leave"):
            noops.labels(kind).set_function(
                lambda kind=kind: engine.presence_noops()[kind])  # type: ignore[misc]
        stats = engine.stats
        Gauge("tallyboard_store_events", "Events held by the hot store",
              registry=r).set_function(lambda: stats()["events"])
        Gauge("tallyboard_store_metrics", "Metrics held by the hot store",
              registry=r).set_function(lambda: stats()["metrics"])
        Gauge("tallyboard_log_bytes", "Bytes the durable log takes on disk",
              registry=r).set_function(lambda: stats()["log_bytes"])
        Gauge("tallyboard_rebuild_seconds", "Seconds the last rebuild from the log took",
              registry=r).set_function(lambda: stats()["rebuild_seconds"])
        engine.on_append = Histogram(
            "tallyboard_log_append_seconds", "Time to make one request durable (the log's "
            "commit: SQLite fsync, PostgreSQL commit, or the Redis Stream add)",
            buckets=LATENCY_BUCKETS, registry=r).observe
        log = engine.log
        if isinstance(log, RedisFeed):
            self._hot_store_metrics(log)
            log = log.durable
        if isinstance(log, BufferedLog):
            self._buffer_gauges(log)

    def _hot_store_metrics(self, feed: RedisFeed) -> None:
        """Round trips to the shared hot store, and the durable write behind it."""
        r = self.registry
        feed.on_redis = Histogram(
            "tallyboard_redis_seconds", "Time of one round trip to the hot store (Redis): "
            "a batch's FCALL, a catch-up read, a lock", buckets=LATENCY_BUCKETS,
            registry=r).observe
        feed.on_durable = Histogram(
            "tallyboard_durable_append_seconds", "Time of the durable write behind the hot "
            "store (PostgreSQL commit, or the write buffer's add)", buckets=LATENCY_BUCKETS,
            registry=r).observe
        Gauge("tallyboard_hot_store_unpublished_batches", "Durable batches waiting for "
              "Redis to come back before they show", registry=r).set_function(feed.backlog)

    def _buffer_gauges(self, buffer: BufferedLog) -> None:
        """What buffered durability owes PostgreSQL, and how the flusher keeps up."""
        r = self.registry
        Gauge("tallyboard_flush_lag_seconds", "Age of the oldest batch not yet flushed to "
              "PostgreSQL", registry=r).set_function(buffer.lag_seconds)
        Gauge("tallyboard_buffer_batches", "Batches in the Redis Stream (flushed ones "
              "leave it)", registry=r).set_function(buffer.backlog)
        Gauge("tallyboard_flush_batch_size", "Stream entries moved by the last flush",
              registry=r).set_function(lambda: buffer.stats["last_flush_size"])
        Gauge("tallyboard_flush_seconds", "Time the last flush took (PostgreSQL commits)",
              registry=r).set_function(lambda: buffer.stats["last_flush_seconds"])
        Gauge("tallyboard_flush_errors", "Flushes that failed (retried) since start",
              registry=r).set_function(lambda: buffer.stats["flush_errors"])
        Gauge("tallyboard_flush_dropped_duplicates", "Accepted events PostgreSQL refused "
              "at flush time because it already held their id",
              registry=r).set_function(lambda: buffer.stats["dropped_duplicates"])


class TelemetryMiddleware:
    """Pure ASGI middleware: times every HTTP request and labels it by its route template."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route: Any = scope.get("route")
            # path_format: the template as documented, `{metric}` not `{metric:name}`
            path = getattr(route, "path_format", None) or "unmatched"
            code = str(status[0])
            self.telemetry.requests.labels(path, scope["method"], code).inc()
            self.telemetry.latency.labels(path, code).observe(time.perf_counter() - started)
