"""Validate raw presence operations (join, leave, snapshot) like events: strict, indexed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..core.events import check_name, check_ts
from ..errors import InvalidEvent
from .ledger import PresenceOp

OP_FIELDS = {"join": {"space", "type", "room", "member", "ts", "id"},
             "leave": {"space", "type", "room", "member", "ts", "id"},
             "snapshot": {"space", "type", "room", "members", "ts", "id"}}
MAX_SNAPSHOT = 1_000_000  # a big Twitch channel's chatters, in one snapshot


class PresenceBatch(list[PresenceOp]):
    """Presence operations accepted together (a log batch of their own kind)."""

    def members(self) -> int:
        """How many member changes the batch may make (a snapshot: one per listed
        member): what applying or replaying it costs."""
        return sum(len(op.members) if op.members else 1 for op in self)


def check_op(raw: object, index: int, space: str, now: float, skew: float) -> PresenceOp:
    """One validated operation; InvalidEvent names the index and field of a problem."""
    if not isinstance(raw, dict):
        raise InvalidEvent("each presence operation must be a JSON object", index, "event")
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in OP_FIELDS:  # {} or [] are unhashable
        raise InvalidEvent("type must be join, leave or snapshot", index, "type")
    for key in raw:
        if key not in OP_FIELDS[kind]:
            raise InvalidEvent(f"unknown field {key!r} for a {kind}; it takes "
                               f"{', '.join(sorted(OP_FIELDS[kind]))}", index, str(key))
    sp = raw.get("space")
    sp = space if sp is None else check_name(sp, "space", index)
    room = check_name(raw.get("room"), "room", index)
    member: str | None = None
    members: tuple[str, ...] | None = None
    if kind == "snapshot":
        listed = raw.get("members")
        if not isinstance(listed, list):
            raise InvalidEvent("a snapshot needs members: a list of member ids", index,
                               "members")
        if len(listed) > MAX_SNAPSHOT:
            raise InvalidEvent(f"at most {MAX_SNAPSHOT} members in a snapshot", index,
                               "members")
        members = tuple(dict.fromkeys(check_name(m, "members", index) for m in listed))
    else:
        member = check_name(raw.get("member"), "member", index)
    ts = check_ts(raw.get("ts"), index, now, skew)
    eid = raw.get("id")
    if eid is not None:
        eid = check_name(eid, "id", index)
    return PresenceOp(sp, kind, room, member, members, ts, eid)


def check_ops(raws: Sequence[Any], space: str, now: float, skew: float) -> PresenceBatch:
    """Validate a whole request; the first bad operation raises and nothing is kept."""
    return PresenceBatch(check_op(raw, i, space, now, skew) for i, raw in enumerate(raws))
