"""The producer side: put tallyboard events on a queue without writing broker code.

>>> from tallyboard.queue import publish
>>> publish("redis-stream://127.0.0.1:6379/0/events", [{"metric": "points",
...          "member": "alice", "value": 5}])  # doctest: +SKIP
1

Each message is a JSON array of up to `per_message` events (or presence operations),
published durably on the broker's side before `publish` returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

import orjson

from .sources import Source, open_source

PER_MESSAGE = 1000


class Publisher:
    """A connection to one queue, kept open for many sends (from synchronous code)."""

    def __init__(self, url: str) -> None:
        self._source: Source = open_source(url)
        self._runner = asyncio.Runner()

    def __enter__(self) -> Publisher:
        try:
            self._runner.run(self._source.connect())
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._runner.run(self._source.close())
        self._runner.close()

    def send(self, bodies: Sequence[bytes]) -> None:
        """Publish messages as they are (bytes)."""
        self._runner.run(self._source.send(bodies))

    def send_events(self, events: Iterable[Mapping[str, Any]],
                    per_message: int = PER_MESSAGE) -> int:
        """Publish `events` as JSON-array messages of up to `per_message` each; how many
        messages that made."""
        bodies = list(bodies_of(events, per_message))
        self.send(bodies)
        return len(bodies)


def bodies_of(events: Iterable[Mapping[str, Any]], per_message: int) -> Iterator[bytes]:
    """`events` as messages of up to `per_message` each."""
    if per_message < 1:
        raise ValueError("per_message must be at least 1")
    it = iter(events)
    while chunk := list(islice(it, per_message)):
        yield orjson.dumps(chunk)


def publish(url: str, events: Iterable[Mapping[str, Any]], *,
            per_message: int = PER_MESSAGE) -> int:
    """Publish `events` to the queue at `url` (``nats://…``, ``redis-stream://…``,
    ``amqp://…``, as ``tallyboard worker --from`` takes them); the number of messages."""
    with Publisher(url) as publisher:
        return publisher.send_events(events, per_message)
