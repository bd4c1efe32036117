"""The engine: validated events in, durable log first, then exact in-memory aggregates out.

`Tallyboard` is what `tallyboard.open()` returns for an embedded store and what the HTTP
API calls. It owns the log, the clock and one lock: writes are serialised (log, then
memory) and queries see a consistent state.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from .bounds import Instant, instant, span
from .calendar import STEPS, Calendar, CalendarError
from .checkpoint import Checkpoints, Unusable, load, save, sweep
from .core.columns import Columns, check_columns
from .core.config import ConfigError, MetricConfig
from .core.events import MAX_NAME, NUL, Event, check_events
from .core.metric import FilterKey, MetricState, TooManyPoints
from .core.results import Accepted, Leaderboard, Point, Rank, Streak
from .errors import BadQuery, Conflict, InvalidEvent, NotFound, StoreUnavailable
from .heap import gc_paused
from .presence.ledger import PresenceLedger, PresenceSettings
from .presence.ops import PresenceBatch
from .presence_engine import PresenceEngine
from .stores.base import PRESENCE_KEY, Batch, EventLog, MetricKey, Position, StateReset
from .stores.batches import by_space, without
from .windows import Window, WindowError

log = logging.getLogger("tallyboard")

DEFAULT_SPACE = "default"
ID_RETENTION = 7 * 86400  # ids are remembered at least this long (SPEC §3)
MAX_RADIUS = 1000
MAX_N = 1000
MAX_GROUP = 10_000
KEEP_UP_EVERY = 0.05  # seconds between a server's keep_up steps: a read's most lag
READ_TURNS_MAX = 0.002  # seconds a long write waits, between turns, for reads to pass
SYNC_TURN = 256  # changes a board takes per turn of the lock (~1 ms) when kept up
CHECKPOINT_EVERY = 2_000_000  # replay work between checkpoints, in events (~2 s of replay)
PRESENCE_WEIGHT = 20  # a presence change costs about 20 events' replay time
CLOSE_CHECKPOINT_FROM = 10_000  # a clean close checkpoints if this much came since
COLUMNS_FROM = 256  # row batches this big are applied as columns: same result, faster


# Give the GIL to another thread: sched_yield releases it for ~1 us where sleep(0) takes
# ~90 us on a VM's timer.
_yield: Callable[[], object] = getattr(os, "sched_yield", lambda: time.sleep(0))


class Tallyboard(PresenceEngine):
    """Embedded tallyboard: every query is exact, every accepted event is durable first."""

    def __init__(self, log_: EventLog, *, clock: Callable[[], float] = time.time,
                 default_config: MetricConfig | None = None, skew: float = 60.0,
                 id_retention: float = ID_RETENTION,
                 on_replay: Callable[[int, int | None], None] | None = None,
                 checkpoint_every: int = CHECKPOINT_EVERY) -> None:
        """`on_replay(batches done, batches in all or None)` follows the rebuild from the
        log (for progress bars). A log on a disk of its own (the embedded store) is
        checkpointed once `checkpoint_every` events were applied since the last time (a
        presence change counts PRESENCE_WEIGHT: its replay costs that much more), so a
        restart replays only what came after (0: never; the whole log is replayed)."""
        self.log = log_
        self.clock = clock
        self.default_config = default_config or MetricConfig()
        self.skew = skew
        self.id_retention = id_retention
        self.lock = threading.RLock()
        # Writes in flight (durable write running, lock released): their ids, and a
        # condition to wait on for them to settle (see record_many).
        self._settled = threading.Condition(self.lock)
        self._claimed: set[tuple[str, str]] = set()
        self._applying: set[str] = set()  # spaces of presence writes not yet applied
        self._reads_waiting: list[None] = []  # one entry per read waiting for the lock
        self._reads_admitted = 0  # reads that got the lock so far
        self._in_flight = 0
        self._draining = 0
        self._metrics: dict[MetricKey, MetricState] = {}
        self._ledgers: dict[str, PresenceLedger] = {}
        self._presence_settings: dict[str, PresenceSettings] = {}
        self._ids: dict[str, dict[str, float]] = {}
        self._ids_pruned = 0.0
        self._behind: set[MetricState] = set()  # metrics whose hot boards lack writes
        # metrics that may have hot boards (queried or warmed): what keep_up moves with
        # time, without walking 50,000 small metrics nobody reads every 50 ms
        self._hot: weakref.WeakSet[MetricState] = weakref.WeakSet()
        self.rebuild_seconds = 0.0
        self.on_append: Callable[[float], None] | None = None  # durable-write timings sink
        self.events_total = 0
        self._units = 0  # replay work applied, in events: see Checkpoints
        path = log_.checkpoint_path
        self._checkpoints = (Checkpoints(path, checkpoint_every)
                             if path is not None and checkpoint_every > 0 else None)
        self.from_checkpoint: Position | None = None  # what the last load started from
        with gc_paused():  # no collections while the load makes the state: see heap.py
            self._load(on_replay)

    # ---- lifecycle ----------------------------------------------------------------------
    def _load(self, on_replay: Callable[[int, int | None], None] | None) -> None:
        started = time.perf_counter()
        configs = self.log.configs()
        self.from_checkpoint = self._restore(configs)
        for (space, name), cfg in configs.items():
            if name == PRESENCE_KEY:
                self._presence_settings.setdefault(space, PresenceSettings(**cfg))
        for (space, name), cfg in configs.items():
            if name != PRESENCE_KEY and (space, name) not in self._metrics:
                self._metrics[(space, name)] = MetricState(
                    MetricConfig.from_stored(cfg),
                    presence=name == self._presence_metric_name(space))
        del configs  # 50,000 small metrics' JSON: freed before the replay's peak
        horizon = self.clock() - self.id_retention
        if self.from_checkpoint is None:
            batches, total = self.log.replay(), self.log.batch_count() if on_replay else None
        else:
            batches, total = self.log.replay_after(self.from_checkpoint), None
        for done, (received_at, events) in enumerate(batches, start=1):
            self._apply(events)
            if received_at >= horizon:
                self._remember_ids(events, received_at)
            if on_replay is not None and done % 256 == 0:
                on_replay(done, total)
        self._prune_ids(self.clock())
        now = self.clock()
        for state in self._metrics.values():
            # boards from a checkpoint take the tail on their first read or keep-up step
            # (in turns, reads let in), not here: the server answers meanwhile
            if state.has_boards() or state.warm(now):
                self._hot.add(state)
        if self.from_checkpoint is None:
            self._behind.clear()  # every board there is was just built from all of it
        self.rebuild_seconds = time.perf_counter() - started
        log.info("loaded %d events in %d metrics in %.2fs%s", self.events_total,
                 len(self._metrics), self.rebuild_seconds,
                 "" if self.from_checkpoint is None else
                 f" (from the checkpoint at batch {self.from_checkpoint.seq}, then the rest)")

    def _restore(self, configs: Mapping[MetricKey, Mapping[str, Any]]) -> Position | None:
        """Take the state from this log's checkpoint if it can be used (see
        tallyboard.checkpoint); the batch it ends at, or None to replay the whole log."""
        if self._checkpoints is None:
            return None
        sweep(self._checkpoints.path)
        try:
            position, state = load(self._checkpoints.path)
            if not self.log.holds(position):
                raise Unusable("it is of another log, or of batches it no longer holds")
            metrics, ledgers, presence_settings, ids, events_total = state
            for key, mstate in metrics.items():
                cfg = configs.get(key)
                if cfg is None or MetricConfig.from_stored(cfg) != mstate.config:
                    raise Unusable(f"metric {key[1]!r} of space {key[0]!r} was "
                                   "reconfigured after it")
            stored = {space: PresenceSettings(**cfg) for (space, name), cfg in configs.items()
                      if name == PRESENCE_KEY}
            for space in {*stored, *presence_settings}:
                if stored.get(space, PresenceSettings()) != \
                        presence_settings.get(space, PresenceSettings()):
                    raise Unusable(f"presence settings of space {space!r} changed after it")
        except Unusable as exc:
            log.info("checkpoint %s not used (%s): replaying the whole log",
                     self._checkpoints.path, exc)
            return None
        self._metrics, self._ledgers = metrics, ledgers
        self._presence_settings, self._ids = presence_settings, ids
        self.events_total = events_total
        self._behind.update(s for s in metrics.values() if s.has_boards())
        return position

    def _checkpoint_state(self) -> tuple[Any, ...]:
        """What a checkpoint holds (and `_restore` takes back), in this order."""
        return (self._metrics, self._ledgers, self._presence_settings, self._ids,
                self.events_total)

    def _maybe_checkpoint(self) -> None:
        """Start a checkpoint in a forked child when one is due: under the lock, with no
        write in flight, so the state forked is exactly the log up to its last batch."""
        cp = self._checkpoints
        if cp is None or not cp.due(self._units):
            return
        with self.lock:
            if not cp.due(self._units):
                return
            self._drained()
            try:
                position = self.log.position()
                if position is not None:
                    cp.start(position, self._checkpoint_state(), self._units,
                             self.log.release_in_child)
            except (StoreUnavailable, OSError) as exc:  # a write's answer never depends
                cp.taken_at = self._units  # on it: tried again `every` units later
                log.warning("checkpoint not started: %s", exc)

    def close(self) -> None:
        """Close the log (after a last checkpoint, if much came since the previous one);
        the engine is unusable afterwards."""
        cp = self._checkpoints
        if cp is not None:
            cp.finish()
            try:
                with self.lock:
                    self._drained()
                    position = self.log.position()
                    if position is not None and \
                            self._units - cp.taken_at >= CLOSE_CHECKPOINT_FROM:
                        started = time.perf_counter()
                        save(cp.path, position, self._checkpoint_state())
                        log.info("checkpoint written to %s in %.2fs", cp.path,
                                 time.perf_counter() - started)
            except (StoreUnavailable, OSError) as exc:  # the next start replays more
                log.warning("no checkpoint at close: %s", exc)
        self.log.close()

    def __enter__(self) -> Tallyboard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- writes -------------------------------------------------------------------------
    def record(self, metric: str, member: str, value: int = 1, *, ts: Instant | None = None,
               tags: Mapping[str, str] | None = None, id: str | None = None,
               space: str = DEFAULT_SPACE) -> Accepted:
        """Record one event; see `record_many`."""
        raw: dict[str, Any] = {"metric": metric, "member": member, "value": value}
        if ts is not None:
            raw["ts"] = ts.isoformat() if isinstance(ts, datetime) else ts
        if tags is not None:
            raw["tags"] = dict(tags)
        if id is not None:
            raw["id"] = id
        return self.record_many([raw], space=space)

    def record_many(self, events: Iterable[Mapping[str, Any] | Event], *,
                    space: str = DEFAULT_SPACE) -> Accepted:
        """Validate, deduplicate by id, write durably, then apply: all or nothing.

        Raises InvalidEvent (naming the index and field of the first bad event) before
        anything is written, and StoreUnavailable if the log refuses the write.
        """
        accepted = self._record_many(events, space)
        self._after_write()
        return accepted

    def _record_many(self, events: Iterable[Mapping[str, Any] | Event],
                     space: str) -> Accepted:
        now = self.clock()
        raws = [e._asdict() if isinstance(e, Event) else e for e in events]
        checked = check_events(raws, space, now, self.skew)
        with self.lock:
            for sp, name in {e[:2] for e in checked}:  # once per metric, not per event
                if name == self._presence_metric_name(sp):
                    first = next(i for i, e in enumerate(checked) if e[:2] == (sp, name))
                    self._refuse_presence_metric(sp, name, first)
            ids = {(e.space, e.id) for e in checked if e.id is not None}
            self._wait_for(ids)
            fresh, duplicates = self._dedupe(checked)
            created = {}
            for e in fresh:
                key = (e.space, e.metric)
                if key not in self._metrics and key not in created:
                    created[key] = self.default_config.to_dict()
            if created:  # a new metric (rare): create it and write under the lock
                known = self._append(now, fresh, created)
                return self._applied(now, fresh, duplicates, known, created)
            self._claim(ids)
        # The durable write runs without the engine lock, so concurrent requests share
        # one commit (the log groups them). Events add up in any order, so applying them
        # in a different order than they commit changes no answer.
        try:
            known = self._append(now, fresh, {})
        except BaseException:
            with self.lock:
                self._settle(ids)
            raise
        with self.lock:
            try:
                return self._applied(now, fresh, duplicates, known, {})
            finally:
                self._settle(ids)

    def _applied(self, now: float, fresh: list[Event], duplicates: int,
                 known: Collection[int],
                 created: Mapping[MetricKey, Mapping[str, Any]]) -> Accepted:
        """Apply a durable batch in memory (under the lock); what the request answers."""
        return Accepted(self._take(now, fresh, known, created), duplicates + len(known))

    def _take(self, now: float, batch: Batch, held: Collection[int],
              created: Mapping[MetricKey, Mapping[str, Any]], presence: bool = False) -> int:
        """Apply a batch the log accepted, less the `held` positions; how many it added.

        On a shared log the batch comes back through the log's order instead (with what
        other servers wrote before it), so every server applies the same sequence.
        """
        kept = without(batch, held)
        if self.log.shared:
            with contextlib.suppress(StoreUnavailable):  # durable: shows once Redis answers
                self._catch_up(*by_space(batch), own=True)
            return len(kept)
        self._remember_ids(batch, now)
        for key, cfg in created.items():
            self._metrics[key] = MetricState(MetricConfig.from_stored(cfg), presence=presence)
        self._apply(kept)
        self._prune_ids(now)
        return len(kept)

    def _settle(self, ids: set[tuple[str, str]]) -> None:
        """A write in flight is done (applied or failed): wake whoever waits on it."""
        self._claimed -= ids
        self._in_flight -= 1
        self._settled.notify_all()

    def _wait_for(self, ids: set[tuple[str, str]], spaces: Collection[str] = ()) -> None:
        """Wait (holding the lock) while a write in flight holds one of `ids` (whether
        ours is a duplicate depends on whether that write commits), or is a presence
        write of one of `spaces` not yet applied (ours is validated against all of it)."""
        while self._draining or not self._claimed.isdisjoint(ids) or \
                not self._applying.isdisjoint(spaces):
            self._settled.wait()

    def _claim(self, ids: set[tuple[str, str]], spaces: Collection[str] = ()) -> None:
        """A write goes in flight (under the lock): its ids and spaces are held, and
        drains (a metric replay, a checkpoint) wait for it, until `_settle`."""
        self._claimed |= ids
        self._applying.update(spaces)
        self._in_flight += 1

    def _unclaim(self, ids: set[tuple[str, str]], spaces: Collection[str] = ()) -> None:
        """`_claim` undone: the write is applied or failed (under the lock)."""
        self._applying.difference_update(spaces)
        self._settle(ids)

    def _apply_in_turns(self, parts: Iterator[None], touched: dict[MetricKey, MetricState],
                        units: int, ids: set[tuple[str, str]], spaces: Collection[str],
                        now: float, turns: bool) -> None:
        """Run a durable write's in-memory apply (claimed by `_claim`), one part per turn
        of the lock with reads let in between if `turns`, else in one: each part leaves a
        state that some prefix of the write makes."""
        try:
            if not turns:
                with self.lock:
                    for _ in parts:
                        pass
            done = not turns
            while not done:
                self._let_reads_in()
                with self.lock:
                    done = next(parts, StopIteration) is StopIteration
        finally:
            with self.lock:
                self._units += PRESENCE_WEIGHT * units
                self._behind.update(touched.values())
                self._prune_ids(now)
                self._unclaim(ids, spaces)

    def _drained(self) -> None:
        """Wait (holding the lock) until no write is in flight, keeping new ones out:
        a replay of the log must not meet a batch that is committed but not applied."""
        self._draining += 1
        try:
            while self._in_flight:
                self._settled.wait()
        finally:
            self._draining -= 1
            self._settled.notify_all()

    def record_columns(self, metric: str, members: Sequence[str], values: Any = None,
                       ts: Any = None, *, tags: Mapping[str, Sequence[str]] | None = None,
                       ids: Sequence[str] | None = None,
                       space: str = DEFAULT_SPACE) -> Accepted:
        """Record many events of one metric given as columns (lists or numpy arrays).

        ``members[i]`` gets ``values[i]`` (default 1) at ``ts[i]`` (Unix seconds, floored;
        default now), with ``tags[key][i]`` and ``ids[i]``. Same rules and result as
        `record_many`, several times faster for bulk loads.
        """
        accepted = self._record_columns(metric, members, values, ts, tags, ids, space)
        self._after_write()
        return accepted

    def _record_columns(self, metric: str, members: Sequence[str], values: Any, ts: Any,
                        tags: Mapping[str, Sequence[str]] | None, ids: Sequence[str] | None,
                        space: str) -> Accepted:
        now = self.clock()
        cols = check_columns(space, metric, members, values, ts, tags, ids, now, self.skew)
        with self.lock:
            self._refuse_presence_metric(space, metric, 0)
            self._wait_for({(space, eid) for eid in cols.ids or ()})
            duplicates = 0
            if cols.ids is not None:
                known = self._ids.get(space, {})
                seen: set[str] = set()
                keep = np.ones(len(cols), dtype=bool)
                for i, eid in enumerate(cols.ids):
                    if eid in known or eid in seen:
                        keep[i] = False
                    seen.add(eid)
                duplicates = int(len(cols) - keep.sum())
                if duplicates:
                    cols = cols.select(keep)
            key = (space, metric)
            created = {} if key in self._metrics else {key: self.default_config.to_dict()}
            held = self._append(now, cols, created)
            return Accepted(self._take(now, cols, held, created), duplicates + len(held))

    def _append(self, now: float, batch: Batch,
                configs: Mapping[MetricKey, Mapping[str, Any]]) -> Collection[int]:
        """The durable write of a request, timed for /metrics."""
        started = time.perf_counter()
        held = self.log.append(now, batch, configs)
        if self.on_append is not None:
            self.on_append(time.perf_counter() - started)
        return held

    def _refuse_presence_metric(self, space: str, metric: str, index: int) -> None:
        if metric == self._presence_metric_name(space):
            raise Conflict(f"metric {metric!r} is fed by presence (POST /v1/presence); "
                           "send events to another metric", index=index, field="metric")

    def _remember_ids(self, events: Batch, when: float) -> None:
        if isinstance(events, Columns):
            if events.ids:
                ids = self._ids.setdefault(events.space, {})
                ids.update(dict.fromkeys(events.ids, when))
            return
        for e in events:
            if e.id is not None:
                self._ids.setdefault(e.space, {})[e.id] = when

    def _dedupe(self, events: list[Event]) -> tuple[list[Event], int]:
        if all(e.id is None for e in events):
            return events, 0
        fresh: list[Event] = []
        seen: set[tuple[str, str]] = set()
        for e in events:
            if e.id is not None:
                if e.id in self._ids.get(e.space, ()) or (e.space, e.id) in seen:
                    continue
                seen.add((e.space, e.id))
            fresh.append(e)
        return fresh, len(events) - len(fresh)

    def _apply(self, events: Batch) -> None:
        """Apply a batch in memory; the metrics it touched are behind until the write
        that applied it brings their hot boards up (see _keep_boards_up)."""
        if isinstance(events, PresenceBatch):
            touched = self._apply_presence(events)
            self._units += PRESENCE_WEIGHT * events.members()
        elif isinstance(events, Columns):
            touched = [self._apply_columns(events)]
            self._units += len(events)
        else:
            touched = self._apply_rows(events)
            self._units += len(events)
        self._behind.update(touched)

    def _apply_columns(self, events: Columns) -> MetricState:
        key = (events.space, events.metric)
        state = self._metrics.get(key)
        if state is None:
            state = self._metrics[key] = MetricState(self.default_config)
        state.apply_columns(events)
        self.events_total += len(events)
        return state

    def _apply_rows(self, events: Sequence[Event]) -> list[MetricState]:
        by_metric: dict[MetricKey, list[Event]] = {}
        first = events[0][:2] if events else None
        if all(e[:2] == first for e in events):  # the usual request: one metric
            by_metric = {first: list(events)} if first else {}
        else:
            for e in events:
                by_metric.setdefault((e.space, e.metric), []).append(e)
        touched: list[MetricState] = []
        for key, rows in by_metric.items():
            state = self._metrics.get(key)
            if state is None:  # a log written before its config: use today's defaults
                state = self._metrics[key] = MetricState(self.default_config)
            if len(rows) >= COLUMNS_FROM:
                state.apply_columns(Columns.of_events(rows, state.config.dimensions))
            else:
                state.apply(rows)
            touched.append(state)
        self.events_total += len(events)
        return touched

    def _prune_ids(self, now: float) -> None:
        if now - self._ids_pruned < 3600:
            return
        self._ids_pruned = now
        horizon = now - self.id_retention
        for space, ids in self._ids.items():
            self._ids[space] = {k: t for k, t in ids.items() if t >= horizon}

    # ---- metric configs ---------------------------------------------------------------------
    def set_metric(self, metric: str, settings: Mapping[str, Any] | None = None, *,
                   space: str = DEFAULT_SPACE, rebuild: bool = False,
                   **more: Any) -> dict[str, Any]:
        """Create or change a metric's settings (fields left out keep their value).

        Changing the calendar or dimensions of a metric with data is a Conflict unless
        `rebuild`, which replays that metric from the durable log.
        """
        key = (space, metric)
        changes = {**(settings or {}), **more}
        for name, param in ((metric, "metric"), (space, "space")):
            if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME or NUL in name:
                raise BadQuery(f"{param} names are 1-128 characters, without U+0000", param)
        with self.lock, self.log.exclusive([space]):
            self._catch_up(space)
            self._drained()
            state = self._metrics.get(key)
            is_presence = metric == self._presence_metric_name(space)
            old = state.config if state else \
                self._presence_config() if is_presence else self.default_config
            try:
                new = old.updated(changes)
            except ConfigError as exc:
                raise BadQuery(str(exc), exc.setting) from None
            if is_presence:
                new = self.presence_metric_config(new)
            changed = old.calendar_changed(new) if state else []
            if changed and state is not None and state.events and not rebuild:
                raise Conflict(f"metric {metric!r} has data; changing {', '.join(changed)} "
                               "needs ?rebuild=true (replays it from the log)",
                               fields=changed)
            self.log.put_config(key, new.to_dict())
            replayed = self._configure(key, new, bool(changed) or rebuild)  # ?rebuild=true
            info = self._info(key)                                         # always replays
        if rebuild:
            info["replayed"] = replayed
        return info

    def _configure(self, key: MetricKey, new: MetricConfig, recompute: bool) -> int:
        """Give a metric (new or not) `new` settings, replaying its history from the log
        when `recompute`; how many events (or presence operations) were replayed."""
        state = self._metrics.get(key)
        replayed = 0
        if state is not None and state.presence and recompute:
            state.config = new
            replayed = self._replay_presence(key[0])
        elif state is not None and recompute and state.events:
            fresh = MetricState(new)
            for _, events in self.log.replay(key):
                if isinstance(events, Columns):
                    fresh.apply_columns(events)
                elif not isinstance(events, PresenceBatch):
                    fresh.apply(events)
                replayed += len(events)
            self._metrics[key] = fresh
        elif state is not None:
            state.config = new
        else:
            self._metrics[key] = MetricState(
                new, presence=key[1] == self._presence_metric_name(key[0]))
        if self._metrics[key].warm(self.clock()):
            self._hot.add(self._metrics[key])
        return replayed

    def metrics(self, *, space: str = DEFAULT_SPACE) -> list[dict[str, Any]]:
        """Every metric of `space` with its settings and event count."""
        with self._reading(space):
            return [self._info(k) for k in sorted(self._metrics) if k[0] == space]

    def metric(self, metric: str, *, space: str = DEFAULT_SPACE) -> dict[str, Any]:
        """One metric's settings and event count (NotFound if unknown)."""
        with self._reading(space):
            self._state(space, metric)
            return self._info((space, metric))

    def _info(self, key: MetricKey) -> dict[str, Any]:
        state = self._metrics[key]
        return {"metric": key[1], "space": key[0], **state.config.to_dict(),
                "events": state.events}

    # ---- queries ------------------------------------------------------------------------
    def _state(self, space: str, metric: str) -> MetricState:
        """A metric's state for a query (which may build its hot boards: see keep_up)."""
        state = self._metrics.get((space, metric))
        if state is None:
            raise NotFound(f"unknown metric {metric!r} in space {space!r}", metric=metric)
        self._hot.add(state)
        return state

    @staticmethod
    def _filter(state: MetricState, tag: tuple[str, str] | None) -> FilterKey:
        if tag is None:
            return None
        dim, value = tag
        if dim not in state.config.dimensions:
            raise BadQuery(f"the metric does not declare dimension {dim!r}; declared: "
                           f"{list(state.config.dimensions)}", f"tag.{dim}")
        return (dim, value)

    def sum(self, metric: str, member: str, *, start: Instant | None = None,
            end: Instant | None = None, space: str = DEFAULT_SPACE,
            tag: tuple[str, str] | None = None) -> int:
        """Total of `member` over ``[start, end)``; a missing bound is open."""
        lo, hi = span(start, end)
        with self._reading(space):
            state = self._state(space, metric)
            return state.sum(self._filter(state, tag), member, lo, hi, self.clock())

    def series(self, metric: str, member: str, *, step: str, start: Instant | None = None,
               end: Instant | None = None, space: str = DEFAULT_SPACE,
               tag: tuple[str, str] | None = None) -> list[Point]:
        """Per-`step` totals of `member` over ``[start, end)``, zero-filled, in order.

        `end` defaults to now and `start` to the member's first event.
        """
        if step not in STEPS:
            raise BadQuery(f"step must be one of {', '.join(STEPS)}", "step")
        lo, hi = span(start, end)
        with self._reading(space):
            state = self._state(space, metric)
            key = self._filter(state, tag)
            hi = self.clock() if hi is None else hi
            if lo is None:
                s = state.series.get(key, {}).get(member)
                first = s.first_at_or_after(-(1 << 62)) if s else None
                if first is None or first >= hi:
                    return []
                lo = float(first)
            if not lo < hi:
                raise BadQuery("series needs start < end", "start")
            try:
                return state.points(key, member, step, lo, hi, self.clock())
            except TooManyPoints as exc:
                raise BadQuery(str(exc), "step") from None

    def leaderboard(self, metric: str, *, window: str = "all", n: int = 10, offset: int = 0,
                    at: Instant | None = None, start: Instant | None = None,
                    end: Instant | None = None, members: Sequence[str] | None = None,
                    space: str = DEFAULT_SPACE,
                    tag: tuple[str, str] | None = None) -> Leaderboard:
        """Top `n` after `offset` in `window` as of `at` (default now); ties by member."""
        if not 1 <= n <= MAX_N:
            raise BadQuery(f"n must be between 1 and {MAX_N}", "n")
        if offset < 0:
            raise BadQuery("offset must be >= 0", "offset")
        if members is not None and len(members) > MAX_GROUP:
            raise BadQuery(f"at most {MAX_GROUP} members", "members")
        win, at_ = self._window(window, start, end, at)
        with self._reading(space):
            state = self._state(space, metric)
            return state.leaderboard(self._filter(state, tag), win, n, offset, at_,
                                     self.clock(), members)

    def rank(self, metric: str, member: str, *, window: str = "all", radius: int = 0,
             at: Instant | None = None, start: Instant | None = None,
             end: Instant | None = None, space: str = DEFAULT_SPACE,
             tag: tuple[str, str] | None = None) -> Rank:
        """`member`'s competition rank and score, with ±`radius` neighbours."""
        if not 0 <= radius <= MAX_RADIUS:
            raise BadQuery(f"radius must be between 0 and {MAX_RADIUS}", "radius")
        win, at_ = self._window(window, start, end, at)
        with self._reading(space):
            state = self._state(space, metric)
            return state.rank(self._filter(state, tag), member, win, radius, at_,
                              self.clock())

    def streak(self, metric: str, member: str, *, min: int = 1, at: Instant | None = None,
               timezone: str | None = None, day_start: str | None = None,
               space: str = DEFAULT_SPACE, tag: tuple[str, str] | None = None) -> Streak:
        """Current and longest run of days with a total >= `min`, as of `at`.

        `timezone`/`day_start` override the metric's calendar for this query (day_start
        defaults to 00:00 when only a timezone is given).
        """
        if isinstance(min, bool) or not isinstance(min, int) or min < 1:
            raise BadQuery("min must be an integer >= 1", "min")
        at_ = instant(at, "at")
        with self._reading(space):
            state = self._state(space, metric)
            cal = state.config.calendar
            if timezone is not None or day_start is not None:
                try:
                    cal = Calendar(timezone or cal.timezone,
                                   day_start or ("00:00" if timezone else cal.day_start),
                                   cal.week_start)
                except CalendarError as exc:
                    raise BadQuery(str(exc), exc.setting) from None
            return state.streak(self._filter(state, tag), member, min,
                                self.clock() if at_ is None else at_, cal)

    @staticmethod
    def _window(window: str, start: Instant | None, end: Instant | None,
                at: Instant | None) -> tuple[Window, float | None]:
        lo, hi = instant(start, "start"), instant(end, "end")  # checked even when unused
        try:
            win = Window.parse(window, lo, hi) if window == "range" else Window.parse(window)
        except WindowError as exc:
            raise BadQuery(str(exc), exc.param) from None
        return win, instant(at, "at")

    # ---- keeping up between requests ---------------------------------------------------------
    def keep_up(self) -> None:
        """Between requests (the server calls this every KEEP_UP_EVERY seconds): follow
        what other servers appended to the shared log, and move every hot board to now.

        Writes already bring the boards they touch up to date; this covers what no write
        of this process does: other servers' writes, and time itself (a rolling window's
        start moving, a new day starting, future events coming due). So a read pays for
        at most the last fraction of a second, whatever the write rate.
        """
        with self.lock:
            if self.log.shared:
                with contextlib.suppress(StoreUnavailable):  # /readyz says so meanwhile
                    self._catch_up(*sorted({k[0] for k in self._metrics} | set(self._ledgers)))
            self._behind.update(self._hot)
        self._keep_boards_up(every_board=True)
        self._maybe_checkpoint()

    def _after_write(self) -> None:
        """A write's upkeep, off every read: its boards up to date, a checkpoint if due.
        The write is durable and applied by now: a failure here must not fail it (the
        client would send it again), so it is logged, and reads catch boards up anyway."""
        try:
            self._keep_boards_up()
            self._maybe_checkpoint()
        except Exception:
            log.exception("upkeep after a write failed (the write itself is applied)")

    def _keep_boards_up(self, every_board: bool = False) -> None:
        """Bring the hot boards of the metrics left behind up to date, SYNC_TURN changes
        of one board per turn of the lock: a read waits for at most one turn, and finds
        its own board with nothing (or, between two turns, one write) left to take."""
        with self.lock:
            behind, self._behind = self._behind, set()
            turns = [(state, board) for state in behind
                     for board in state.boards_to_sync(every_board)]
        for state, board in turns:
            done = False
            while not done:
                self._let_reads_in()
                with self.lock:
                    done = state.sync_board(board, self.clock(), SYNC_TURN)

    def _let_reads_in(self) -> None:
        """Between two turns of a long write: let the reads waiting for the lock have it
        first (for at most READ_TURNS_MAX), instead of taking it straight back."""
        waiting = len(self._reads_waiting)
        if not waiting:
            _yield()
            return
        target = self._reads_admitted + waiting  # those waiting now; later ones queue
        deadline = time.perf_counter() + READ_TURNS_MAX
        while self._reads_admitted < target and time.perf_counter() < deadline:
            time.sleep(0.0001)  # the GIL too: a read needs both

    # ---- following a log shared with other servers ------------------------------------------
    @contextlib.contextmanager
    def _reading(self, space: str) -> Iterator[None]:
        """The lock, with `space` brought up to date first (a no-op for a private log)."""
        self._reads_waiting.append(None)  # list ops are atomic: no lock for the count
        try:
            self.lock.acquire()
        finally:
            self._reads_waiting.pop()
        self._reads_admitted += 1  # under the lock
        try:
            self._catch_up(space)
            yield
        finally:
            self.lock.release()

    def _catch_up(self, *spaces: str, own: bool = False) -> None:
        """Apply, in the shared log's order, what any server appended to `spaces` since
        this engine last looked (all of it, the first time a space is touched); with
        `own`, right after a write, this engine's own entries may suffice."""
        if not self.log.shared:
            return
        for space in spaces:
            while True:
                try:
                    for received_at, batch, configs in self.log.tail(space, own):
                        self._follow(received_at, batch, configs)
                    break
                except StateReset:  # the hot store was rebuilt: read every space afresh
                    self._forget()
        self._prune_ids(self.clock())

    def _follow(self, received_at: float, batch: Batch,
                configs: Mapping[MetricKey, Mapping[str, Any]]) -> None:
        for key, cfg in configs.items():
            self._adopt(key, cfg, created=bool(batch))
        if batch:
            if received_at >= self.clock() - self.id_retention:
                self._remember_ids(batch, received_at)
            self._apply(batch)

    def _adopt(self, key: MetricKey, cfg: Mapping[str, Any], created: bool) -> None:
        """Settings from the shared log: a new metric's (kept only if it is still new),
        or a change some server made (already made here if this server made it)."""
        space, name = key
        if name == PRESENCE_KEY:
            new_presence = PresenceSettings(**cfg)
            if new_presence != self._presence_settings.get(space, PresenceSettings()):
                self._use_presence(space, new_presence)
            return
        state = self._metrics.get(key)
        new = MetricConfig.from_dict(cfg)
        if state is not None and (created or state.config == new):
            return
        self._configure(key, new, bool(state and state.config.calendar_changed(new)))

    def _forget(self) -> None:
        """Drop every space's state (it is read again from the shared log on use)."""
        self._metrics.clear()
        self._ledgers.clear()
        self._presence_settings.clear()
        self._ids.clear()
        self.events_total = 0

    # ---- introspection ----------------------------------------------------------------------
    def stats(self) -> dict[str, float]:
        """Numbers for /metrics: events held, log size, time of the last rebuild."""
        return {"events": self.events_total, "log_bytes": self.log.size_bytes(),
                "rebuild_seconds": self.rebuild_seconds,
                "metrics": len(self._metrics)}


__all__ = ["Accepted", "InvalidEvent", "Tallyboard"]
