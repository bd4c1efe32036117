"""A queue message's items, as ``POST /v1/events`` and ``POST /v1/presence`` take them:
one JSON object, a JSON array or NDJSON lines, within the same limits (10 MiB, 10,000
items). Items with a ``type`` (join, leave, snapshot) are presence; the others are events.

Items without an ``id`` get one from the message's place in its broker
(`sources.stable_id`), so a redelivered message counts once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from ..api.body import MAX_EVENTS, parse_items
from ..errors import TallyboardError
from .sources import Delivery, stable_id


class BadMessage(Exception):
    """A message that can never be applied as it is: kept, with this reason, and acked."""


@dataclass(slots=True)
class Items:
    """The events and presence operations of one message, and where each operation sat
    in it (events are the rest)."""

    delivery: Delivery
    events: list[Any] = field(default_factory=list)
    ops: list[Any] = field(default_factory=list)
    op_at: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.events) + len(self.ops)

    def position(self, phase: str, nth: int) -> int:
        """The index in the message of the `nth` item of `phase` (events or ops)."""
        if phase == "ops":
            return self.op_at[nth]
        taken = set(self.op_at)
        return [i for i in range(len(self)) if i not in taken][nth]


def decode(delivery: Delivery) -> Items:
    """The items of `delivery`, each with an id; BadMessage if it is not tallyboard JSON."""
    body = delivery.body
    try:
        items = parse_items(body, _ndjson(body), MAX_EVENTS)
    except TallyboardError as exc:
        raise BadMessage(exc.message.replace("the body", "the message")
                         .replace("one request", "one message")) from None
    found = Items(delivery)
    for i, item in enumerate(with_ids(items, delivery.origin)):
        if isinstance(item, dict):
            if "type" in item:
                found.ops.append(item)
                found.op_at.append(i)
            else:
                found.events.append(item)
        else:  # the engine names what is wrong with it, and where
            found.events.append(item)
    return found


def with_ids(items: list[Any], origin: str) -> list[Any]:
    """`items` with an id on each object that has none: the one its place gives it in the
    message at `origin` (in place; the same list)."""
    for i, item in enumerate(items):
        if isinstance(item, dict) and "id" not in item:
            item["id"] = stable_id(origin, i)
    return items


def replayable(body: bytes, origin: str) -> bytes:
    """A kept message, to publish again: its items with the ids its first delivery gave
    them, so what was applied of it then (a mixed message's events, before its presence
    was refused) counts once; bytes that are not tallyboard JSON go as they are."""
    try:
        items = parse_items(body, _ndjson(body), MAX_EVENTS)
    except TallyboardError:
        return body
    return orjson.dumps(with_ids(items, origin))


def _ndjson(body: bytes) -> str | None:
    """NDJSON when the first line is a whole JSON value and more lines follow."""
    first, newline, rest = body.strip().partition(b"\n")
    if not newline or not rest.strip():
        return None
    try:
        orjson.loads(first)
    except orjson.JSONDecodeError:
        return None
    return "application/x-ndjson"
