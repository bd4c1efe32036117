"""A worker's Prometheus metrics, per source (the source's URL, password hidden)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
APPLY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class QueueMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        def counter(name: str, doc: str) -> Counter:
            return Counter(f"tallyboard_queue_{name}", doc, ["source"], registry=registry)

        self.consumed = counter("consumed_messages", "Messages delivered to this worker.")
        self.redelivered = counter("redelivered_messages",
                                   "Messages delivered again (after a crash, a timeout or "
                                   "a reclaim); their events count once.")
        self.invalid = counter("invalid_messages",
                               "Messages that could not be applied: kept, then acked.")
        self.applied = counter("applied", "Events and presence operations applied.")
        self.duplicates = counter("duplicates",
                                  "Events and presence operations already applied (ids seen).")
        self.reconnects = counter("reconnects", "Times the broker connection was lost.")
        self.batch = Histogram("tallyboard_queue_batch_messages", "Messages per batch.",
                               ["source"], buckets=BATCH_BUCKETS, registry=registry)
        self.apply_seconds = Histogram("tallyboard_queue_apply_seconds",
                                       "Seconds to apply a batch durably (before the ack).",
                                       ["source"], buckets=APPLY_BUCKETS, registry=registry)
        self.pending = Gauge("tallyboard_queue_pending_messages",
                             "Messages waiting for this consumer (the consumer lag).",
                             ["source"], registry=registry)
        self.up = Gauge("tallyboard_queue_up", "1 while the broker is connected.", ["source"],
                        registry=registry)
