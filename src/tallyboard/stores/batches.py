"""Batches as bytes and in parts: the one encoding stream entries use (the write buffer
and the shared hot store), and the cuts the engine and stores make of a batch."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, TypeVar, cast

import numpy as np
import orjson

from ..core.columns import Columns
from ..core.events import Event
from ..presence.ledger import PresenceOp
from ..presence.ops import PresenceBatch
from .base import PRESENCE_KEY, Batch, MetricKey

B = TypeVar("B", bound=Batch)


def without(batch: B, held: Collection[int]) -> B:
    """`batch` less the positions whose id a log shared with other processes already held
    (they were not written; the request counts them as duplicates)."""
    if not held:
        return batch
    if isinstance(batch, Columns):
        keep = np.ones(len(batch), dtype=bool)
        keep[list(held)] = False
        return cast(B, batch.select(keep))
    kept: list[Any] = [x for i, x in enumerate(batch) if i not in held]
    return cast(B, PresenceBatch(kept) if isinstance(batch, PresenceBatch) else kept)


def by_space(batch: Batch) -> dict[str, tuple[list[int], Batch]]:
    """`batch` cut per space: each part with the positions it came from (one part, the
    whole batch, in the usual case of a single space)."""
    if isinstance(batch, Columns):
        return {batch.space: (list(range(len(batch))), batch)}
    rows = cast(Sequence[Event | PresenceOp], batch)  # mypy joins the two NamedTuples
    spaces = {x.space for x in rows}
    if len(spaces) <= 1:
        return {next(iter(spaces)): (list(range(len(batch))), batch)} if spaces else {}
    parts: dict[str, tuple[list[int], Batch]] = {}
    for i, x in enumerate(rows):
        pos, part = parts.setdefault(x.space, ([], type(batch)()))
        pos.append(i)
        cast(list[Any], part).append(x)
    return parts


def ids_of(batch: Batch) -> list[tuple[int, str]]:
    """``(position, id)`` of the events or operations in `batch` that carry an id."""
    if isinstance(batch, Columns):
        return list(enumerate(batch.ids)) if batch.ids else []
    rows = cast(Sequence[Event | PresenceOp], batch)
    return [(i, x.id) for i, x in enumerate(rows) if x.id is not None]


def encode(received_at: float, events: Batch,
           configs: Mapping[MetricKey, Mapping[str, Any]], journal: bool = False) -> bytes:
    """One stream entry's payload: the batch, its arrival time and new metric configs
    (and, in a write buffer, whether its publication to the hot store is journaled)."""
    if isinstance(events, PresenceBatch):
        body: Any = {"presence": [tuple(op) for op in events]}
    elif isinstance(events, Columns):
        body = {"columns": orjson.loads(events.to_json())}
    else:
        body = {"events": [tuple(e) for e in events]}
    body["t"] = received_at
    body["configs"] = [[s, m, dict(c)] for (s, m), c in configs.items()]
    if journal:
        body["j"] = 1
    return orjson.dumps(body)


def decode(payload: bytes) -> tuple[float, Batch, dict[MetricKey, dict[str, Any]]]:
    received_at, batch, configs, _ = decode_journaled(payload)
    return received_at, batch, configs


def decode_journaled(payload: bytes
                     ) -> tuple[float, Batch, dict[MetricKey, dict[str, Any]], bool]:
    """`decode`, and whether the entry's publication is journaled."""
    data = orjson.loads(payload)
    configs = {(s, m): c for s, m, c in data["configs"]}
    if "presence" in data:
        batch: Batch = PresenceBatch(PresenceOp(r[0], r[1], r[2], r[3],
                                                None if r[4] is None else tuple(r[4]), r[5],
                                                r[6]) for r in data["presence"])
    elif "columns" in data:
        batch = Columns.from_json(data["columns"])
    else:
        batch = [Event(*r) for r in data["events"]]
    return data["t"], batch, configs, bool(data.get("j"))



def wanted(batch: Batch, metric: MetricKey | None) -> Batch | None:
    """The part of `batch` a replay of `metric` wants (None: nothing)."""
    if metric is None:
        return batch
    if isinstance(batch, PresenceBatch):
        return PresenceBatch(op for op in batch if op.space == metric[0]) \
            if metric[1] == PRESENCE_KEY else None
    if isinstance(batch, Columns):
        return batch if (batch.space, batch.metric) == metric else None
    return [e for e in batch if isinstance(e, Event) and (e.space, e.metric) == metric]
