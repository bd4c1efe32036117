"""What a worker needs of a broker, whichever it is: connect, subscribe, fetch a batch,
ack it, say how much is waiting, and publish (for producers and replays).

Delivery is at least once on every broker. What makes it exactly once in effect is
`Delivery.origin`: the same message, delivered again, has the same origin, and the ids the
worker gives its id-less events are derived from it.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from ..redact import redact

MAX_ID = 128  # an event id's longest (core.events.MAX_NAME)


@dataclass(slots=True)
class Delivery:
    """One message as delivered: its bytes, where it sits in its broker (`origin`, the
    same on every redelivery) and what the broker needs to ack it (`token`)."""

    body: bytes
    origin: str
    redelivered: bool
    token: Any = None


def stable_id(origin: str, index: int) -> str:
    """The id of item `index` of the message at `origin`: readable while it fits in an
    event id, else a digest of it."""
    whole = f"{origin}:{index}"
    if len(whole) <= MAX_ID:
        return whole
    return "q:" + hashlib.sha256(whole.encode()).hexdigest()


class Source(ABC):
    """One broker stream, queue or key a worker consumes (or a producer feeds).

    `FAILURES` are the errors that mean "the broker is not there right now": the worker
    closes the source, waits and connects again, and acks nothing meanwhile."""

    FAILURES: ClassVar[tuple[type[BaseException], ...]] = (OSError,)

    def __init__(self, url: str) -> None:
        self.url = url
        self.name = redact(url)  # the metrics label and what logs say
        parts = urlsplit(url)
        self.options = {k: v[-1] for k, v in parse_qs(parts.query).items()}

    def option(self, name: str, default: int) -> int:
        """A numeric ``?name=`` of the URL."""
        raw = self.options.get(name)
        if raw is None:
            return default
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"{name}={raw!r} in {self.name}: a whole number >= 1")
        return int(raw)

    @abstractmethod
    async def connect(self) -> None:
        """Open the connection (and create the stream or queue if it is missing)."""

    @abstractmethod
    async def subscribe(self, most: int) -> None:
        """Join the consumer group / durable consumer, with at most `most` messages
        delivered and not yet acked (the backpressure)."""

    @abstractmethod
    async def fetch(self, most: int, wait: float) -> list[Delivery]:
        """Up to `most` messages, waiting at most `wait` seconds for the first."""

    @abstractmethod
    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Take `deliveries` off the stream for good (they are durable, or kept)."""

    @abstractmethod
    async def pending(self) -> int | None:
        """Messages waiting for this consumer (the consumer lag), if the broker says."""

    @abstractmethod
    async def send(self, bodies: Sequence[bytes]) -> None:
        """Publish `bodies`, durably on the broker's side, before returning."""

    @abstractmethod
    async def close(self) -> None:
        """Let go of the connection (never raises)."""


def open_source(url: str) -> Source:
    """The source a URL names: ``nats://host:4222/STREAM/subject``,
    ``redis-stream://host:6379/0/key?group=g`` or ``amqp://user:pass@host:5672/queue``."""
    scheme = urlsplit(url).scheme
    if scheme in ("nats", "tls"):
        from .jetstream import JetStreamSource

        return JetStreamSource(url)
    if scheme in ("redis-stream", "rediss-stream"):
        from .redis_streams import RedisStreamSource

        return RedisStreamSource(url)
    if scheme in ("amqp", "amqps"):
        from .rabbitmq import RabbitSource

        return RabbitSource(url)
    raise ValueError(f"unsupported queue URL {redact(url)!r}: use nats://host:4222/STREAM/"
                     "subject, redis-stream://host:6379/0/key?group=g or "
                     "amqp://user:pass@host:5672/queue")


def path_parts(url: str, least: int, most: int, shape: str) -> list[str]:
    """The path segments of `url` (``%2F`` and friends decoded), between `least` and
    `most` of them, else a ValueError showing `shape`."""
    from urllib.parse import unquote

    parts = [unquote(p) for p in urlsplit(url).path.split("/")[1:] if p]
    if not least <= len(parts) <= most:
        raise ValueError(f"{redact(url)!r} is not {shape}")
    return parts
