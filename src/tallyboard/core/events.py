"""Validate raw events (parsed JSON) into normalised tuples, naming the first bad field.

Strict on purpose: nothing is coerced, so ``"5"`` is not a value and ``5`` is not a tag.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from ..errors import InvalidEvent
from ..windows import EPOCH_MIN, WindowError, parse_instant

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
MAX_TAGS = 16
MAX_NAME = 128
EVENT_FIELDS = frozenset({"space", "metric", "member", "value", "ts", "tags", "id"})


class Event(NamedTuple):
    """One accepted event: `value` added to `member`'s total of `metric` at second `ts`."""

    space: str
    metric: str
    member: str
    ts: int
    value: int = 1
    tags: Mapping[str, str] | None = None
    id: str | None = None


# U+0000 is refused everywhere: PostgreSQL text and jsonb cannot hold it, and no name needs it.
NUL = "\x00"
NUL_NAME = "the NUL character (U+0000)"


def check_name(value: object, what: str, index: int, limit: int = MAX_NAME) -> str:
    """A non-empty string of at most `limit` characters, else InvalidEvent on `what`."""
    if type(value) is not str:
        raise InvalidEvent(f"{what} must be a string", index, what)
    if not 1 <= len(value) <= limit:
        raise InvalidEvent(f"{what} must be 1-{limit} characters", index, what)
    if NUL in value:
        raise InvalidEvent(f"{what} must not contain {NUL_NAME}", index, what)
    return value


def check_ts(raw: object, index: int, now: float, skew: float, field: str = "ts") -> int:
    """Whole Unix second of `raw` (floored), within ``[2000-01-01, now + skew]``."""
    if raw is None:
        return math.floor(now)
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise InvalidEvent(f"{field} must be Unix seconds or an RFC 3339 string", index, field)
    if isinstance(raw, str):
        if _numeric(raw):
            raise InvalidEvent(f"{field} must be a JSON number or an RFC 3339 string, "
                               "not a numeric string", index, field)
        try:
            sec = math.floor(parse_instant(raw, field))
        except WindowError as exc:
            raise InvalidEvent(str(exc), index, field) from None
    else:
        if isinstance(raw, float) and not math.isfinite(raw):
            raise InvalidEvent(f"{field} must be finite", index, field)
        sec = math.floor(raw)
    if sec < EPOCH_MIN:
        raise InvalidEvent(f"{field} is before 2000-01-01T00:00:00Z", index, field)
    if sec > now + skew:
        raise InvalidEvent(f"{field} is more than {skew:g}s in the future", index, field)
    return int(sec)


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_event(raw: object, index: int, space: str, now: float, skew: float) -> Event:
    """Validate one raw event; `space` is the default when the event names none."""
    if not isinstance(raw, dict):
        raise InvalidEvent("each event must be a JSON object", index, "event")
    for key in raw:
        if key not in EVENT_FIELDS:
            raise InvalidEvent(f"unknown field {key!r}; events have "
                               f"{', '.join(sorted(EVENT_FIELDS))}", index, str(key))
    sp = raw.get("space")
    sp = space if sp is None else check_name(sp, "space", index)
    metric = check_name(raw.get("metric"), "metric", index)
    member = check_name(raw.get("member"), "member", index)
    value = raw.get("value", 1)
    if type(value) is not int and not _huge(value):
        raise InvalidEvent("value must be a JSON integer (no floats, strings or booleans)",
                           index, "value")
    if _huge(value) or not INT64_MIN <= value <= INT64_MAX:
        raise InvalidEvent(f"value is out of the signed 64-bit range ({INT64_MIN} to "
                           f"{INT64_MAX})", index, "value")
    ts = check_ts(raw.get("ts"), index, now, skew)
    tags = check_tags(raw.get("tags"), index)
    eid = raw.get("id")
    if eid is not None:
        eid = check_name(eid, "id", index)
    return Event(sp, metric, member, ts, value, tags, eid)


def _huge(value: object) -> bool:
    """A number past the 64-bit range that the JSON parser could only give as a float
    (orjson reads an integer literal beyond 64 bits, like 2**64, as a float)."""
    return type(value) is float and math.isfinite(value) and abs(value) >= 2.0 ** 63


def check_tags(tags: object, index: int) -> dict[str, str] | None:
    """At most 16 string pairs; keys 1-64 and values 1-256 characters."""
    if tags is None:
        return None
    if not isinstance(tags, dict):
        raise InvalidEvent("tags must be a JSON object of strings", index, "tags")
    if len(tags) > MAX_TAGS:
        raise InvalidEvent(f"at most {MAX_TAGS} tags", index, "tags")
    for k, v in tags.items():
        if type(k) is not str or not 1 <= len(k) <= 64 or NUL in k:
            raise InvalidEvent(f"tag keys must be strings of 1-64 characters without "
                               f"{NUL_NAME}", index, "tags")
        if type(v) is not str or not 1 <= len(v) <= 256 or NUL in v:
            raise InvalidEvent(f"tag {k!r} must be a string of 1-256 characters without "
                               f"{NUL_NAME}", index, f"tags.{k}")
    return tags or None


def check_events(raws: Sequence[Any], space: str, now: float, skew: float) -> list[Event]:
    """Validate a whole request; the first bad event raises and nothing is returned.

    The common shape (int ts and value, short strings) is checked inline; anything else
    goes through `check_event`, which also words the error.
    """
    latest = now + skew
    out: list[Event] = []
    append = out.append
    new = tuple.__new__
    for i, raw in enumerate(raws):
        if type(raw) is dict and raw.keys() <= EVENT_FIELDS:
            get = raw.get
            metric, member, ts = get("metric"), get("member"), get("ts")
            value, tags, eid, sp = get("value", 1), get("tags"), get("id"), get("space")
            if (type(metric) is str and 0 < len(metric) <= MAX_NAME and NUL not in metric
                    and type(member) is str and 0 < len(member) <= MAX_NAME
                    and NUL not in member
                    and type(value) is int and INT64_MIN <= value <= INT64_MAX
                    and type(ts) is int and EPOCH_MIN <= ts <= latest
                    and (tags is None or _plain_tags(tags))
                    and (eid is None or (type(eid) is str and 0 < len(eid) <= MAX_NAME
                                         and NUL not in eid))
                    and (sp is None or (type(sp) is str and 0 < len(sp) <= MAX_NAME
                                        and NUL not in sp))):
                append(new(Event, (space if sp is None else sp, metric, member, ts, value,
                                   tags or None, eid)))
                continue
        append(check_event(raw, i, space, now, skew))
    return out


def _plain_tags(tags: object) -> bool:
    if type(tags) is not dict or len(tags) > MAX_TAGS:
        return False
    for k, v in tags.items():
        if not (type(k) is str and 0 < len(k) <= 64 and type(v) is str and 0 < len(v) <= 256
                and NUL not in k and NUL not in v):
            return False
    return True
