"""COPY text encoding of event batches: what PostgreSQL reads back is exactly the events,
whatever their names hold (backslashes, tabs, newlines, carriage returns, "\\N", any
Unicode), for row batches and column batches, with held positions left out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pg_support import PgDatabase
from tallyboard.core.columns import Columns
from tallyboard.core.events import Event
from tallyboard.stores.copy_text import event_copy_text, partition_days

TRICKY = st.sampled_from(["\\", "\t", "\n", "\r", "\\N", "N", "a", "é", "🎉", '"', " "])
NAMES = st.lists(st.one_of(TRICKY, st.characters(exclude_categories=("Cs",),
                                                 exclude_characters="\x00")),
                 min_size=1, max_size=6).map("".join)
INT64 = st.integers(-(2**63), 2**63 - 1)


@st.composite
def column_batches(draw: st.DrawFn) -> Columns:
    n = draw(st.integers(1, 12))
    keys = draw(st.lists(NAMES, max_size=3, unique=True))
    return Columns(
        draw(NAMES), draw(NAMES), draw(st.lists(NAMES, min_size=n, max_size=n)),
        np.asarray(draw(st.lists(st.integers(0, 2**40), min_size=n, max_size=n)),
                   dtype=np.int64),
        np.asarray(draw(st.lists(INT64, min_size=n, max_size=n)), dtype=np.int64),
        {k: draw(st.lists(st.none() | NAMES, min_size=n, max_size=n)) for k in keys},
        draw(st.none() | st.lists(NAMES, min_size=n, max_size=n)))


EVENTS = st.lists(st.builds(
    Event, NAMES, NAMES, NAMES, st.integers(0, 2**40), INT64,
    st.none() | st.dictionaries(NAMES, NAMES, max_size=3), st.none() | NAMES),
    min_size=1, max_size=12)


@pytest.fixture(scope="module")
def table(postgres: PgDatabase) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(postgres.url) as db:
        db.execute("CREATE TEMP TABLE t (LIKE tallyboard_events)")
        db.commit()
        yield db


def _as_events(batch: Columns) -> list[Event]:
    return [Event(batch.space, batch.metric, m, int(s), int(v),
                  {k: c[i] for k, c in batch.tags.items() if c[i] is not None} or None,
                  None if batch.ids is None else batch.ids[i])
            for i, (m, s, v) in enumerate(zip(batch.members, batch.secs, batch.values,
                                              strict=True))]


def _copied(db: psycopg.Connection[Any], text: str) -> list[tuple[Any, ...]]:
    try:
        with db.cursor().copy("COPY t FROM STDIN") as copy:
            copy.write(text)
        return db.execute("SELECT * FROM t ORDER BY pos").fetchall()
    finally:
        db.rollback()


def _expected(seq: int, events: list[Event], skip: frozenset[int]) -> list[tuple[Any, ...]]:
    return [(seq, pos, e.space, e.metric, e.member, e.ts, e.value,
             dict(e.tags) if e.tags else None, e.id)
            for pos, e in enumerate(events) if pos not in skip]


@settings(max_examples=150, deadline=None)
@given(batch=column_batches(), data=st.data())
def test_column_batches_read_back_exactly(table: psycopg.Connection[Any], batch: Columns,
                                          data: st.DataObject) -> None:
    skip = frozenset(data.draw(st.sets(st.integers(0, len(batch) - 1))))
    events = _as_events(batch)
    assert _copied(table, event_copy_text(7, batch, skip)) == _expected(7, events, skip)
    assert sorted(partition_days(batch)) == sorted({e.ts - e.ts % 86400 for e in events})


@settings(max_examples=150, deadline=None)
@given(events=EVENTS, data=st.data())
def test_row_batches_read_back_exactly(table: psycopg.Connection[Any], events: list[Event],
                                       data: st.DataObject) -> None:
    skip = frozenset(data.draw(st.sets(st.integers(0, len(events) - 1))))
    assert _copied(table, event_copy_text(3, events, skip)) == _expected(3, events, skip)


def test_nothing_left_is_no_text() -> None:
    events = [Event("s", "m", "a", 0)]
    assert event_copy_text(1, events, frozenset({0})) == ""
