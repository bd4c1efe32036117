"""A log kept in memory only: for tests and throwaway runs (``memory://``). Not durable."""

from __future__ import annotations

import copy
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from ..core.columns import Columns
from ..errors import StoreUnavailable
from ..presence.ops import PresenceBatch
from .base import PRESENCE_KEY, Batch, EventLog, MetricKey


class MemoryLog(EventLog):
    """The reference log: the same contract as the others, minus surviving the process."""

    def __init__(self) -> None:
        self._batches: list[tuple[float, Batch]] = []
        self._configs: dict[MetricKey, dict[str, Any]] = {}
        self._closed = False

    def append(self, received_at: float, events: Batch,
               configs: Mapping[MetricKey, Mapping[str, Any]]) -> Collection[int]:
        self._batches.append((received_at, events if isinstance(events, Columns | PresenceBatch)
                              else list(events)))
        for key, cfg in configs.items():
            self.put_config(key, cfg)
        return ()  # one process: the engine's own id memory is the whole truth

    def replay(self, metric: MetricKey | None = None) -> Iterator[tuple[float, Batch]]:
        for received_at, events in self._batches:
            if isinstance(events, PresenceBatch):
                if metric is None:
                    yield received_at, events
                elif metric[1] == PRESENCE_KEY:
                    yield received_at, PresenceBatch(op for op in events if op.space == metric[0])
                continue
            if isinstance(events, Columns):
                if metric is None or (events.space, events.metric) == metric:
                    yield received_at, events
                continue
            if metric is not None:
                events = [e for e in events if (e.space, e.metric) == metric]
            yield received_at, events

    def put_config(self, key: MetricKey, config: Mapping[str, Any]) -> None:
        self._configs[key] = copy.deepcopy(dict(config))

    def configs(self) -> dict[MetricKey, dict[str, Any]]:
        return copy.deepcopy(self._configs)

    def size_bytes(self) -> int:
        return 0

    def batch_count(self) -> int | None:
        return len(self._batches)

    def ping(self) -> None:
        if self._closed:
            raise StoreUnavailable("the in-memory log is closed")

    def close(self) -> None:
        self._closed = True
        self._batches.clear()
