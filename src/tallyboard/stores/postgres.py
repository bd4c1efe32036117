"""The scale-out durable log: PostgreSQL, one row per event, ids enforced by the database.

Events land with COPY in a table partitioned by month of `ts` (partitions are created
on demand), indexed for replay in append order and for per-member scans. Every id ever
accepted is a primary key in ``tallyboard_ids``, so several API processes sharing the
database never apply the same id twice: `append` reports the ones it already held.
The schema is versioned; `migrate` applies what is missing (``tallyboard migrate``).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, LiteralString, TypeVar

import orjson
import psycopg
from psycopg.types.json import Jsonb

from ..core.columns import Columns
from ..core.events import Event
from ..errors import StoreUnavailable
from ..presence.ledger import PresenceOp
from ..presence.ops import PresenceBatch
from .base import PRESENCE_KEY, Batch, EventLog, Journal, MetricKey, Pending, Snapshot
from .batches import by_space, without
from .copy_text import event_copy_text, partition_days
from .group_commit import GroupCommit

R = TypeVar("R")
MIGRATIONS: list[str] = [
    # 1: batches, events partitioned by month of ts, ids, presence operations, configs
    """
    CREATE TABLE tallyboard_batches (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        received_at double precision NOT NULL
    );
    CREATE TABLE tallyboard_events (
        seq bigint NOT NULL, pos integer NOT NULL,
        space text NOT NULL, metric text NOT NULL, member text NOT NULL,
        ts bigint NOT NULL, value bigint NOT NULL, tags jsonb, id text
    ) PARTITION BY RANGE (ts);
    CREATE TABLE tallyboard_events_default PARTITION OF tallyboard_events DEFAULT;
    CREATE INDEX tallyboard_events_replay ON tallyboard_events (seq, pos);
    CREATE INDEX tallyboard_events_member ON tallyboard_events (space, metric, member, ts);
    CREATE TABLE tallyboard_ids (
        space text NOT NULL, id text NOT NULL, seq bigint NOT NULL,
        PRIMARY KEY (space, id)
    );
    CREATE TABLE tallyboard_presence (
        seq bigint NOT NULL, pos integer NOT NULL, space text NOT NULL, type text NOT NULL,
        room text NOT NULL, member text, members text[], ts bigint NOT NULL, id text,
        PRIMARY KEY (seq, pos)
    );
    CREATE INDEX tallyboard_presence_space ON tallyboard_presence (space, seq, pos);
    CREATE TABLE tallyboard_metrics (
        space text NOT NULL, metric text NOT NULL, config jsonb NOT NULL,
        PRIMARY KEY (space, metric)
    );
    """,
    # 2: the buffer entry a batch was flushed from, so a repeated flush is a no-op
    """
    ALTER TABLE tallyboard_batches ADD COLUMN source text UNIQUE;
    """,
    # 3: the publication journal: a row per (batch, space) not yet known to be in the hot
    # store, written in the batch's own transaction (see Journal in stores/base.py)
    """
    CREATE TABLE tallyboard_unpublished (
        n bigint GENERATED ALWAYS AS IDENTITY,
        space text NOT NULL, token text NOT NULL,
        seq bigint, kind text NOT NULL, received_at double precision NOT NULL,
        configs jsonb NOT NULL, at double precision NOT NULL,
        PRIMARY KEY (space, token)
    );
    CREATE INDEX tallyboard_unpublished_order ON tallyboard_unpublished (n);
    """,
]
_LOCK = 7_311_846_120  # advisory lock serialising migrations and partition creation
# A space's presence settings are stored as the config of metric "" (no metric name is
# empty): the engine's key for them starts with U+0000, which PostgreSQL text cannot hold.
_PRESENCE_ROW = ""
EVENT_COLUMNS = "(seq, pos, space, metric, member, ts, value, tags, id)"
Write = tuple[float, Batch, Mapping[MetricKey, Mapping[str, Any]], bool]  # append's, journal?
Written = tuple[frozenset[int], str | None]  # positions held, journal token


def migrate(url: str) -> list[int]:
    """Apply the schema versions `url`'s database lacks; the versions applied."""
    try:
        with psycopg.connect(url) as db:
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            db.execute("CREATE TABLE IF NOT EXISTS tallyboard_schema (version integer PRIMARY "
                       "KEY, applied_at timestamptz NOT NULL DEFAULT now())")
            row = db.execute("SELECT coalesce(max(version), 0) FROM tallyboard_schema").fetchone()
            have = row[0] if row else 0
            applied = []
            for version, sql in enumerate(MIGRATIONS[have:], start=have + 1):
                db.execute(sql.encode())  # static DDL, several statements
                db.execute("INSERT INTO tallyboard_schema (version) VALUES (%s)", (version,))
                applied.append(version)
            return applied
    except psycopg.Error as exc:
        raise StoreUnavailable(f"PostgreSQL could not be migrated: {exc}") from exc


def _month(ts: int) -> tuple[str, int, int]:
    """The partition holding second `ts`: its name and ``[start, end)`` in Unix seconds."""
    d = datetime.fromtimestamp(ts, UTC)
    start = datetime(d.year, d.month, 1, tzinfo=UTC)
    end = datetime(d.year + d.month // 12, d.month % 12 + 1, 1, tzinfo=UTC)
    return f"tallyboard_events_y{d.year:04d}m{d.month:02d}", int(start.timestamp()), \
        int(end.timestamp())


def _op(r: Sequence[Any]) -> PresenceOp:
    """A presence operation from its row ``(space, type, room, member, members, ts, id)``."""
    return PresenceOp(r[0], r[1], r[2], r[3], None if r[4] is None else tuple(r[4]), r[5], r[6])


def _space_and_id(events: Batch) -> list[tuple[int, str, str]]:
    """``(position, space, id)`` of each event or operation that has an id."""
    if isinstance(events, Columns):
        return [(i, events.space, eid) for i, eid in enumerate(events.ids or ())]
    return [(i, e.space, e.id) for i, e in enumerate(events)
            if isinstance(e, Event | PresenceOp) and e.id is not None]


class PostgresLog(EventLog, Journal):
    """Durable log in PostgreSQL; safe to share between threads and between processes."""

    def __init__(self, url: str, *, auto_migrate: bool = True) -> None:
        self.url = url
        self._lock = threading.Lock()
        self._partitions: set[str] = set()
        self._group: GroupCommit[Write, Written] = GroupCommit(self._write_group)
        if auto_migrate:
            migrate(url)
        self._db = self._connect()

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.url, connect_timeout=5)
        except psycopg.Error as exc:
            raise StoreUnavailable(f"PostgreSQL is unavailable: {exc}") from exc

    def _conn(self) -> psycopg.Connection[Any]:
        """The connection, reopened if the server dropped it (a restart, a failover)."""
        if self._db.closed or self._db.broken:
            self._db = self._connect()
        return self._db

    # ---- writes ---------------------------------------------------------------------------
    def append(self, received_at: float, events: Batch,
               configs: Mapping[MetricKey, Mapping[str, Any]]) -> Collection[int]:
        return self._group.submit((received_at, events, configs, False))[0]

    def append_journaled(self, received_at: float, events: Batch,
                         configs: Mapping[MetricKey, Mapping[str, Any]]
                         ) -> tuple[Collection[int], str]:
        held, token = self._group.submit((received_at, events, configs, True))
        return held, token or ""

    def _write_group(self, group: Sequence[Write]) -> list[Written]:
        """Concurrent appends in one transaction: one commit makes them all durable."""
        return self._in_transaction(lambda db: self._write_all(db, group))

    def append_once(self, source: str, received_at: float, events: Batch,
                    configs: Mapping[MetricKey, Mapping[str, Any]],
                    journal: bool = False) -> Collection[int]:
        """`append`, unless the batch from `source` (a buffer entry) was committed before:
        a flush repeated after a crash changes nothing. With `journal` its publication is
        journaled under the token `source`."""
        return self._in_transaction(lambda db: self._write_all(
            db, [(received_at, events, configs, journal)], source))[0][0]

    def _in_transaction(self, write: Callable[[psycopg.Connection[Any]], R]) -> R:
        with self._lock:
            try:
                db = self._conn()
                with db.transaction():
                    return write(db)
            except psycopg.Error as exc:
                raise StoreUnavailable(f"the event log could not be written: {exc}") from exc

    def _write_all(self, db: psycopg.Connection[Any], group: Sequence[Write],
                   source: str | None = None) -> list[Written]:
        """Write appends in order, in a fixed number of statements whatever their count;
        for each, the positions skipped because the database already held their id, and
        its journal token if it asked for one."""
        full = [i for i, (_, events, _, _) in enumerate(group) if len(events)]
        seqs = self._new_batches(db, [group[i][0] for i in full], source)
        if seqs is None:  # flushed from `source` before
            return [(frozenset(), None)]
        batches = [(seqs[k], group[i][1]) for k, i in enumerate(full)]
        known = self._claim_ids(db, batches)
        self._copy_events(db, [(seq, b, known[seq]) for seq, b in batches
                               if not isinstance(b, PresenceBatch)])
        self._copy_presence(db, [(seq, b, known[seq]) for seq, b in batches
                                 if isinstance(b, PresenceBatch)])
        by_index = dict(zip(full, seqs, strict=True))
        held = [known[by_index[i]] if i in by_index else frozenset() for i in range(len(group))]
        for (_, events, configs, _), skipped in zip(group, held, strict=True):
            if not len(events):  # a settings change (the write buffer's put_config)
                self._put_configs(db, configs, replace=True)
            elif len(skipped) < len(events):  # creations, unless every event was held
                self._put_configs(db, configs, replace=False)
        tokens = [None if not journal else source or
                  (str(by_index[i]) if i in by_index else f"c{uuid.uuid4().hex}")
                  for i, (_, _, _, journal) in enumerate(group)]
        self._journal(db, [(token, by_index.get(i), *group[i][:3], held[i])
                           for i, token in enumerate(tokens) if token is not None])
        return list(zip(held, tokens, strict=True))

    @staticmethod
    def _journal(db: psycopg.Connection[Any],
                 writes: list[tuple[str, int | None, float, Batch,
                                    Mapping[MetricKey, Mapping[str, Any]], frozenset[int]]]
                 ) -> None:
        """A journal row per space of each journaled write that will be published (one
        whose events were all held publishes nothing)."""
        rows: list[tuple[str, str, int | None, str, float, str]] = []
        for token, seq, received_at, events, configs, skipped in writes:
            if not len(events):
                parts = {space: "configs" for space, _ in configs}
            elif len(skipped) < len(events):
                kind = "presence" if isinstance(events, PresenceBatch) else "events"
                parts = dict.fromkeys(by_space(without(events, skipped)), kind)
            else:
                continue
            for space, kind in parts.items():
                own = [[_PRESENCE_ROW if m == PRESENCE_KEY else m, dict(c)]
                       for (s, m), c in configs.items() if s == space]
                rows.append((space, token, seq, kind, received_at,
                             orjson.dumps(own).decode()))
        if rows:
            columns = list(zip(*rows, strict=True))
            db.execute(
                "INSERT INTO tallyboard_unpublished (space, token, seq, kind, received_at, "
                "configs, at) SELECT s, t, q, k, r, c::jsonb, %s FROM unnest(%s::text[], "
                "%s::text[], %s::bigint[], %s::text[], %s::float8[], %s::text[]) "
                "AS u(s, t, q, k, r, c) ON CONFLICT DO NOTHING",
                (time.time(), *map(list, columns)))

    @staticmethod
    def _new_batches(db: psycopg.Connection[Any], arrivals: list[float],
                     source: str | None) -> list[int] | None:
        """Ascending batch numbers for `arrivals` (None: `source` was flushed before)."""
        if not arrivals:
            return []
        if len(arrivals) == 1:  # one round trip (and `source` makes a repeat a no-op)
            row = db.execute("INSERT INTO tallyboard_batches (received_at, source) VALUES "
                             "(%s, %s) ON CONFLICT (source) DO NOTHING RETURNING seq",
                             (arrivals[0], source)).fetchone()
            return None if row is None else [row[0]]
        seqs = sorted(r[0] for r in db.execute(
            "SELECT nextval(pg_get_serial_sequence('tallyboard_batches', 'seq')) "
            "FROM generate_series(1, %s)", (len(arrivals),)))
        db.execute("INSERT INTO tallyboard_batches (seq, received_at) OVERRIDING SYSTEM VALUE "
                   "SELECT * FROM unnest(%s::bigint[], %s::float8[])", (seqs, arrivals))
        return seqs

    @staticmethod
    def _claim_ids(db: psycopg.Connection[Any],
                   batches: list[tuple[int, Batch]]) -> dict[int, frozenset[int]]:
        """Insert the batches' ids; per batch, positions of ids the database held."""
        wanted = [(seq, pos, space, eid) for seq, batch in batches
                  for pos, space, eid in _space_and_id(batch)]
        known: dict[int, frozenset[int]] = {seq: frozenset() for seq, _ in batches}
        if not wanted:
            return known
        new = set(db.execute(
            "INSERT INTO tallyboard_ids (space, id, seq) SELECT * FROM unnest(%s::text[], "
            "%s::text[], %s::bigint[]) ON CONFLICT DO NOTHING RETURNING space, id",
            ([w[2] for w in wanted], [w[3] for w in wanted], [w[0] for w in wanted])))
        held: dict[int, set[int]] = {}
        for seq, pos, space, eid in wanted:
            if (space, eid) not in new:
                held.setdefault(seq, set()).add(pos)
        known.update((seq, frozenset(p)) for seq, p in held.items())
        return known

    def _copy_events(self, db: psycopg.Connection[Any],
                     batches: list[tuple[int, Batch, frozenset[int]]]) -> None:
        texts = []
        for seq, batch, known in batches:
            assert not isinstance(batch, PresenceBatch)
            if len(known) < len(batch):
                self._ensure_partitions(db, partition_days(batch))
                texts.append(event_copy_text(seq, batch, known))
        if not texts:
            return
        with db.cursor().copy(f"COPY tallyboard_events {EVENT_COLUMNS} FROM STDIN") as copy:
            for text in texts:
                copy.write(text)

    def _ensure_partitions(self, db: psycopg.Connection[Any], days: Iterable[int]) -> None:
        months = {_month(day) for day in days}
        missing = [m for m in months if m[0] not in self._partitions]
        if not missing:
            return
        db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        for name, start, end in missing:
            exists = db.execute("SELECT to_regclass(%s)", (name,)).fetchone()
            if exists is None or exists[0] is None:
                db.execute(f"CREATE TABLE {name} PARTITION OF tallyboard_events "
                           f"FOR VALUES FROM ({start}) TO ({end})")
        self._partitions.update(m[0] for m in missing)

    @staticmethod
    def _copy_presence(db: psycopg.Connection[Any],
                       batches: list[tuple[int, Batch, frozenset[int]]]) -> None:
        if not batches:
            return
        with db.cursor().copy("COPY tallyboard_presence (seq, pos, space, type, room, member,"
                              " members, ts, id) FROM STDIN") as copy:
            for seq, ops, known in batches:
                assert isinstance(ops, PresenceBatch)
                for pos, op in enumerate(ops):
                    if pos not in known:
                        copy.write_row((seq, pos, op.space, op.type, op.room, op.member,
                                        None if op.members is None else list(op.members),
                                        op.ts, op.id))

    @staticmethod
    def _put_configs(db: psycopg.Connection[Any],
                     configs: Mapping[MetricKey, Mapping[str, Any]], *, replace: bool) -> None:
        """Store configs; a metric's creation (`replace` False) keeps a config another
        process stored first (its own creation, or a settings change)."""
        conflict = "DO UPDATE SET config = EXCLUDED.config" if replace else "DO NOTHING"
        for (space, metric), cfg in configs.items():
            db.execute(f"INSERT INTO tallyboard_metrics VALUES (%s, %s, %s) ON CONFLICT "
                       f"(space, metric) {conflict}".encode(),
                       (space, _PRESENCE_ROW if metric == PRESENCE_KEY else metric,
                        Jsonb(dict(cfg))))

    def put_config(self, key: MetricKey, config: Mapping[str, Any]) -> None:
        self._in_transaction(lambda db: self._put_configs(db, {key: config}, replace=True))

    def put_config_journaled(self, key: MetricKey, config: Mapping[str, Any]) -> str:
        token = f"c{uuid.uuid4().hex}"

        def write(db: psycopg.Connection[Any]) -> None:
            self._put_configs(db, {key: config}, replace=True)
            self._journal(db, [(token, None, time.time(), [], {key: config}, frozenset())])

        self._in_transaction(write)
        return token

    # ---- the publication journal ------------------------------------------------------------
    def pending(self, spaces: Collection[str] | None = None,
                older_than: float = 0.0) -> list[Pending]:
        try:
            rows = self._read(
                "SELECT space, token, received_at, configs, seq, kind FROM "
                "tallyboard_unpublished WHERE at <= %s AND (%s OR space = ANY(%s)) ORDER BY n",
                (time.time() - older_than, spaces is None, list(spaces or ())))
        except psycopg.Error as exc:
            raise StoreUnavailable(f"the publication journal could not be read: {exc}") from exc
        return [Pending(token, space, received_at, {
            (space, PRESENCE_KEY if m == _PRESENCE_ROW else m): c for m, c in configs},
            [] if kind == "configs" else None, (seq, kind))
            for space, token, received_at, configs, seq, kind in rows]

    def load(self, pending: Pending) -> Batch:
        if pending.batch is not None:
            return pending.batch
        seq, kind = pending.ref
        try:
            if kind == "presence":
                rows = self._read(
                    "SELECT space, type, room, member, members, ts, id FROM tallyboard_presence "
                    "WHERE seq = %s AND space = %s ORDER BY pos", (seq, pending.space))
                return PresenceBatch(_op(r) for r in rows)
            rows = self._read(
                "SELECT space, metric, member, ts, value, tags, id FROM tallyboard_events "
                "WHERE seq = %s AND space = %s ORDER BY pos", (seq, pending.space))
            return [Event(*r) for r in rows]
        except psycopg.Error as exc:
            raise StoreUnavailable(f"the event log could not be read: {exc}") from exc

    def settle(self, rows: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
        if not rows:
            return set()
        spaces, tokens = (list(c) for c in zip(*rows, strict=True))
        return {(s, t) for s, t in self._in_transaction(lambda db: db.execute(
            "DELETE FROM tallyboard_unpublished WHERE (space, token) IN (SELECT * FROM "
            "unnest(%s::text[], %s::text[])) RETURNING space, token",
            (spaces, tokens)).fetchall())}

    def snapshot(self) -> Snapshot:
        """One REPEATABLE READ transaction on a connection of its own, closed when
        `batches` is exhausted."""
        try:
            db = psycopg.connect(self.url)
            db.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            configs = {(s, PRESENCE_KEY if m == _PRESENCE_ROW else m): dict(c) for s, m, c in
                       db.execute("SELECT space, metric, config FROM tallyboard_metrics")}
            covered = {(s, t) for s, t in db.execute(
                "SELECT space, token FROM tallyboard_unpublished")}
        except psycopg.Error as exc:
            raise StoreUnavailable(f"the event log could not be read: {exc}") from exc

        def batches() -> Iterator[tuple[str, float, Batch]]:
            try:
                with db:
                    for seq, received_at, source, batch in self._merged(db, None):
                        yield source or str(seq), received_at, batch
            except psycopg.Error as exc:
                raise StoreUnavailable(f"the event log could not be read: {exc}") from exc

        return Snapshot(configs, covered, batches())

    # ---- reads ------------------------------------------------------------------------------
    def replay(self, metric: MetricKey | None = None) -> Iterator[tuple[float, Batch]]:
        """Batches in append order, streamed from server-side cursors on a connection of
        their own (a replay may outlast many appends)."""
        return self.replay_checking(metric, (), set())

    def replay_checking(self, metric: MetricKey | None, sources: Collection[str],
                        flushed: set[str]) -> Iterator[tuple[float, Batch]]:
        """`replay`, first adding to `flushed` which of `sources` are committed, all in
        one snapshot: a buffer's entries are then either replayed here or not flushed."""
        try:
            with psycopg.connect(self.url) as db:
                db.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                if sources:
                    flushed.update(r[0] for r in db.execute(
                        "SELECT source FROM tallyboard_batches WHERE source = ANY(%s)",
                        (list(sources),)))
                for _, received_at, _, batch in self._merged(db, metric):
                    yield received_at, batch
        except psycopg.Error as exc:
            raise StoreUnavailable(f"the event log could not be read: {exc}") from exc

    @classmethod
    def _merged(cls, db: psycopg.Connection[Any], metric: MetricKey | None
                ) -> Iterator[tuple[int, float, str | None, Batch]]:
        """Event and presence batches ``(seq, received_at, source, batch)`` in seq order."""
        streams: list[Iterator[tuple[int, float, str | None, Batch]]] = []
        if metric is None or metric[1] != PRESENCE_KEY:
            streams.append(cls._replay_events(db, metric))
        if metric is None or metric[1] == PRESENCE_KEY:
            streams.append(cls._replay_presence(db, None if metric is None else metric[0]))
        return heapq.merge(*streams, key=lambda x: x[0])

    @classmethod
    def _replay_events(cls, db: psycopg.Connection[Any],
                       metric: MetricKey | None) -> Iterator[tuple[int, float, str | None, Batch]]:
        where, args = ("WHERE e.space = %s AND e.metric = %s", metric) if metric else ("", ())
        return cls._batches(db, "events", (
            "SELECT e.seq, b.received_at, b.source, e.space, e.metric, e.member, e.ts, "
            "e.value, e.tags, e.id FROM tallyboard_events e JOIN tallyboard_batches b USING (seq) "
            f"{where} ORDER BY e.seq, e.pos"), args,
            lambda rows: [Event(*r[3:]) for r in rows])

    @classmethod
    def _replay_presence(cls, db: psycopg.Connection[Any],
                         space: str | None) -> Iterator[tuple[int, float, str | None, Batch]]:
        where, args = ("WHERE p.space = %s", (space,)) if space is not None else ("", ())
        return cls._batches(db, "presence", (
            "SELECT p.seq, b.received_at, b.source, p.space, p.type, p.room, p.member, "
            "p.members, p.ts, p.id FROM tallyboard_presence p "
            f"JOIN tallyboard_batches b USING (seq) {where} ORDER BY p.seq, p.pos"), args,
            lambda rows: PresenceBatch(_op(r[3:]) for r in rows))

    @staticmethod
    def _batches(db: psycopg.Connection[Any], name: str, sql: str, args: Sequence[Any],
                 make: Callable[[Iterable[tuple[Any, ...]]], Batch]
                 ) -> Iterator[tuple[int, float, str | None, Batch]]:
        """Rows ``(seq, received_at, source, ...)`` from a server-side cursor, one batch
        per seq."""
        with db.cursor(name=f"tallyboard_replay_{name}") as cur:
            cur.itersize = 20_000
            cur.execute(sql.encode(), args)
            for (seq, received_at, source), rows in itertools.groupby(
                    cur, key=lambda r: (r[0], r[1], r[2])):
                yield seq, received_at, source, make(rows)

    def _read(self, sql: LiteralString,
              args: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of one read on the shared connection, its transaction ended at once."""
        with self._lock:
            db = self._conn()
            rows = db.execute(sql, args).fetchall()
            db.rollback()
        return rows

    def configs(self) -> dict[MetricKey, dict[str, Any]]:
        try:
            rows = self._read("SELECT space, metric, config FROM tallyboard_metrics")
        except psycopg.Error as exc:
            raise StoreUnavailable(f"the configs could not be read: {exc}") from exc
        return {(s, PRESENCE_KEY if m == _PRESENCE_ROW else m): dict(c) for s, m, c in rows}

    def size_bytes(self) -> int:
        try:
            return int(self._read(
                "SELECT coalesce(sum(pg_total_relation_size(oid)), 0) FROM pg_class "
                "WHERE relname LIKE 'tallyboard\\_%' AND relkind = 'r'")[0][0])
        except psycopg.Error:
            return 0

    def batch_count(self) -> int | None:
        try:
            return int(self._read("SELECT count(*) FROM tallyboard_batches")[0][0])
        except psycopg.Error:
            return None

    def ping(self) -> None:
        try:
            self._read("SELECT 1")
        except psycopg.Error as exc:
            raise StoreUnavailable(f"PostgreSQL does not answer: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()
