"""Queue ingest: workers that consume tallyboard events from a message broker (NATS
JetStream, Redis Streams, RabbitMQ), and the producer side (`publish`)."""

from __future__ import annotations

from .publish import publish

__all__ = ["publish"]
