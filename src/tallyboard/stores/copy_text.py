"""Event batches in PostgreSQL COPY's text format, encoded a column at a time.

psycopg's `Copy.write_row` spends ~1.5 µs of Python per row; a 100,000-event column
batch was half of a hot-store write. Here each column becomes strings with C-level
maps and joins, and only a column that holds one of COPY's special characters
(backslash, tab, newline, carriage return) is escaped value by value. The rows read back
exactly as `write_row` would have written them (tests/test_copy_text.py checks that
against PostgreSQL itself).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import orjson

from ..core.columns import Columns
from ..core.events import Event

NULL = "\\N"
_SPECIAL = re.compile(r"[\\\t\n\r]")
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def event_copy_text(seq: int, batch: Columns | Sequence[Event], skip: frozenset[int]) -> str:
    """Lines ``seq, pos, space, metric, member, ts, value, tags, id`` of the batch's
    events, leaving out the positions in `skip`; empty if none is left."""
    n = len(batch)
    if isinstance(batch, Columns):
        spaces: Iterable[str] = itertools.repeat(_escaped(batch.space), n)
        metrics: Iterable[str] = itertools.repeat(_escaped(batch.metric), n)
        members: Iterable[str] = _text(batch.members)
        secs: Iterable[str] = map(str, batch.secs.tolist())
        values: Iterable[str] = map(str, batch.values.tolist())
        tags = _text(_column_tags_json(batch.tags, n))
        ids = itertools.repeat(NULL, n) if batch.ids is None else _text(batch.ids)
    else:
        space, metric, member, ts, value, tag, eid = zip(*batch, strict=True)  # Event fields
        spaces, metrics, members = _text(space), _text(metric), _text(member)
        secs, values = map(str, ts), map(str, value)
        tags = _text([orjson.dumps(dict(t)).decode() if t else None for t in tag])
        ids = _text(eid)
    rows: Iterable[tuple[str, ...]] = zip(
        itertools.repeat(str(seq), n), map(str, range(n)), spaces, metrics, members, secs,
        values, tags, ids, strict=True)
    if skip:
        rows = itertools.compress(rows, [i not in skip for i in range(n)])
    text = "\n".join(map("\t".join, rows))
    return text + "\n" if text else ""


def partition_days(batch: Columns | Sequence[Event]) -> list[int]:
    """The distinct days (Unix seconds of their midnight, UTC) the batch's events fall in."""
    secs = batch.secs if isinstance(batch, Columns) else np.fromiter(
        (e.ts for e in batch), dtype=np.int64, count=len(batch))
    return [int(day) for day in np.unique(secs - secs % 86400)]


def _column_tags_json(tags: Mapping[str, Sequence[str | None]], n: int) -> list[str | None]:
    """Each row's tags as a JSON object (None without any), dumped once per distinct row."""
    if not tags:
        return [None] * n
    keys = list(tags)
    rows = list(zip(*tags.values(), strict=True))
    dumped = {row: _tags_json(keys, row) for row in set(rows)}
    return list(map(dumped.__getitem__, rows))


def _tags_json(keys: list[str], values: tuple[str | None, ...]) -> str | None:
    """One row's tags as a JSON object, without the tags it lacks (None if it has none)."""
    present = {k: v for k, v in zip(keys, values, strict=True) if v is not None}
    return orjson.dumps(present).decode() if present else None


def _escaped(value: str) -> str:
    return value.translate(_ESCAPES) if _SPECIAL.search(value) else value


def _text(column: Sequence[str | None]) -> list[str]:
    """A text column as COPY reads it: special characters escaped, None as ``\\N``."""
    if _SPECIAL.search("".join(c for c in column if c is not None)):
        return [NULL if c is None else c.translate(_ESCAPES) for c in column]
    return [NULL if c is None else c for c in column]
