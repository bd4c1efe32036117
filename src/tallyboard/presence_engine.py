"""The presence half of the engine: joins, leaves and snapshots in; rooms, sessions,
concurrency and migrations out; every present second credited to the presence metric.

Mixed into `Tallyboard`, sharing its lock, log, clock and metrics.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any

from .bounds import Instant, span
from .calendar import STEPS
from .core.config import MetricConfig
from .core.events import INT64_MAX
from .core.metric import MAX_POINTS, MetricState
from .core.results import Accepted
from .errors import BadQuery, Conflict, OutOfOrder
from .presence.concurrency import Bucket, concurrency
from .presence.ledger import (
    LateOperation,
    Migration,
    PresenceLedger,
    PresenceOp,
    PresenceSettings,
    Session,
)
from .presence.ops import PresenceBatch, check_ops
from .stores.base import PRESENCE_KEY, EventLog, MetricKey
from .stores.batches import without

PRESENCE_SLICE = 1_000  # presence changes applied per turn of the lock in a huge write


class PresenceEngine:
    """Presence operations of `Tallyboard`; see SPEC §7."""

    # provided by Tallyboard
    lock: threading.RLock
    log: EventLog
    clock: Callable[[], float]
    skew: float
    default_config: MetricConfig
    _metrics: dict[MetricKey, MetricState]
    _dedupe: Callable[[list[Any]], tuple[list[Any], int]]
    _remember_ids: Callable[[Any, float], None]
    _drained: Callable[[], None]
    _wait_for: Callable[..., None]
    _claim: Callable[[set[tuple[str, str]], Collection[str]], None]
    _unclaim: Callable[[set[tuple[str, str]], Collection[str]], None]
    _apply_in_turns: Callable[..., None]
    _reading: Callable[[str], contextlib.AbstractContextManager[None]]
    _catch_up: Callable[..., None]
    _take: Callable[..., int]
    _after_write: Callable[[], None]
    _append: Callable[[float, Any, Mapping[MetricKey, Mapping[str, Any]]], Collection[int]]
    _ledgers: dict[str, PresenceLedger]
    _presence_settings: dict[str, PresenceSettings]

    # ---- settings -------------------------------------------------------------------------
    def presence_settings(self, *, space: str = "default") -> dict[str, Any]:
        """A space's presence settings (metric, migration_window, close_on_gap)."""
        with self._reading(space):
            return self._presence_settings.get(space, PresenceSettings()).to_dict()

    def set_presence(self, settings: Mapping[str, Any] | None = None, *,
                     space: str = "default", **more: Any) -> dict[str, Any]:
        """Change a space's presence settings; its presence history is replayed with them."""
        changes = {**(settings or {}), **more}
        values = self.presence_settings(space=space)
        for key, value in changes.items():
            if key not in values:
                raise BadQuery(f"unknown presence setting {key!r}; settings are "
                               f"{', '.join(values)}", key)
            if value is not None:  # null keeps the setting, as for a metric's settings
                values[key] = value
        if not isinstance(values["metric"], str) or not 1 <= len(values["metric"]) <= 128 \
                or "\x00" in values["metric"]:
            raise BadQuery("metric must be a name of 1-128 characters (no U+0000)", "metric")
        window = values["migration_window"]
        if isinstance(window, bool) or not isinstance(window, int) or \
                not 0 <= window <= INT64_MAX:
            raise BadQuery("migration_window must be an integer of seconds from 0 to "
                           f"{INT64_MAX}", "migration_window")
        if values["close_on_gap"] not in ("snapshot", "last_seen"):
            raise BadQuery("close_on_gap must be 'snapshot' or 'last_seen'", "close_on_gap")
        new = PresenceSettings(str(values["metric"]), window,
                               values["close_on_gap"])
        with self.lock, self.log.exclusive([space]):
            self._catch_up(space)
            self._drained()  # no ordinary write may land in a metric it turns into presence
            target = self._metrics.get((space, new.metric))
            moved = new.metric != self._presence_metric_name(space)
            if moved and target is not None and not target.presence and target.events:
                raise Conflict(f"metric {new.metric!r} already holds events", field="metric")
            self.log.put_config((space, PRESENCE_KEY), new.to_dict())
            self._use_presence(space, new)
        return new.to_dict()

    def _use_presence(self, space: str, new: PresenceSettings) -> None:
        """Switch a space to `new` presence settings and replay its presence with them."""
        old = self._presence_settings.get(space, PresenceSettings())
        target = self._metrics.get((space, new.metric))
        if new.metric != old.metric and target is not None and not target.presence:
            target.config = self.presence_metric_config(target.config)
        self._presence_settings[space] = new
        if new.metric != old.metric:  # the old metric only ever held presence credit
            self._metrics.pop((space, old.metric), None)
        self._replay_presence(space)

    @staticmethod
    def presence_metric_config(config: MetricConfig) -> MetricConfig:
        """`config` with the `room` dimension every presence metric has (added first)."""
        if "room" in config.dimensions:
            return config
        return config.updated({"dimensions": ["room", *config.dimensions]})

    def _replay_presence(self, space: str) -> int:
        """Rebuild a space's ledger and presence metric from the log; ops replayed."""
        self._ledgers.pop(space, None)
        key = (space, self._presence_settings.get(space, PresenceSettings()).metric)
        old = self._metrics.pop(key, None)
        if old is not None:
            self._metrics[key] = MetricState(old.config, presence=True)
        replayed = 0
        for _, batch in self.log.replay((space, PRESENCE_KEY)):
            if isinstance(batch, PresenceBatch):
                ops = PresenceBatch(op for op in batch if op.space == space)
                self._apply_presence(ops)
                replayed += len(ops)
        return replayed

    # ---- writes ---------------------------------------------------------------------------
    def presence(self, ops: Iterable[Mapping[str, Any]], *,
                 space: str = "default") -> Accepted:
        """Record joins, leaves and snapshots: validated, in time order, all or nothing.

        An op older than one already seen for the same member and room (or a snapshot
        older than its room's newest op) is a Conflict naming its index: late presence
        is refused rather than credited wrongly.
        """
        now = self.clock()
        batch = check_ops(list(ops), space, now, self.skew)
        spaces = sorted({op.space for op in batch})
        with self.lock, self.log.exclusive(spaces):
            self._catch_up(*spaces)  # validated against every server's operations so far
            ids = {(op.space, op.id) for op in batch if op.id is not None}
            self._wait_for(ids, spaces)
            fresh, duplicates = self._dedupe(batch)
            by_space: dict[str, list[int]] = {}
            for i, op in enumerate(fresh):
                by_space.setdefault(op.space, []).append(i)
            ledgers = {sp: self._ledger(sp) for sp in by_space}
            created = {key: self._presence_config().to_dict() for key in
                       ((sp, self._presence_metric_name(sp)) for sp in by_space)
                       if key not in self._metrics}
            if self.log.shared:  # applied in the shared log's order, under its lock
                _check(ledgers, fresh, by_space)
                held = self._append(now, PresenceBatch(fresh), created)
                added = self._take(now, PresenceBatch(fresh), held, created, presence=True)
            else:
                self._claim(ids, spaces)  # no other write of these spaces until applied
        if self.log.shared:
            self._after_write()
            return Accepted(added, duplicates + len(held))
        # A private log: the check against the room (100,000 names for a big snapshot)
        # and the durable write run without the lock, so reads go on meanwhile; the
        # spaces stay claimed, so nothing changes their ledgers or is validated meanwhile.
        try:
            _check(ledgers, fresh, by_space)
            held = self._append(now, PresenceBatch(fresh), created)
        except BaseException:
            with self.lock:
                self._unclaim(ids, spaces)
            raise
        members = PresenceBatch(fresh).members()
        touched: dict[MetricKey, MetricState] = {}
        with self.lock:
            kept = without(PresenceBatch(fresh), held)
            for key, cfg in created.items():
                self._metrics[key] = MetricState(MetricConfig.from_stored(cfg), presence=True)
            self._remember_ids(PresenceBatch(fresh), now)
            # a huge snapshot is applied in slices, reads answered in between
            sliced = members >= 2 * PRESENCE_SLICE
            parts = self._presence_parts(kept, touched, PRESENCE_SLICE if sliced else None)
        self._apply_in_turns(parts, touched, members, ids, spaces, now, sliced)
        self._after_write()
        return Accepted(len(kept), duplicates + len(held))

    def _presence_config(self) -> MetricConfig:
        return self.default_config.updated({"dimensions": ["room"], "rolling": []})

    def _presence_metric_name(self, space: str) -> str:
        return self._presence_settings.get(space, PresenceSettings()).metric

    def _ledger(self, space: str) -> PresenceLedger:
        ledger = self._ledgers.get(space)
        if ledger is None:
            ledger = self._ledgers[space] = PresenceLedger(
                self._presence_settings.get(space, PresenceSettings()))
        return ledger

    def _apply_presence(self, ops: PresenceBatch) -> list[MetricState]:
        """Apply presence ops to the ledgers and presence metrics; the metrics touched."""
        touched: dict[MetricKey, MetricState] = {}
        for _ in self._presence_parts(ops, touched):
            pass
        return list(touched.values())

    def _presence_parts(self, ops: PresenceBatch, touched: dict[MetricKey, MetricState],
                        size: int | None = None) -> Iterator[None]:
        """Apply `ops`, pausing after every `size` changes (see
        PresenceLedger.apply_in_parts); `touched` collects the metrics they touched."""
        for op in ops:
            key = (op.space, self._presence_metric_name(op.space))
            state = self._metrics.get(key)
            if state is None:
                state = self._metrics[key] = MetricState(self._presence_config(),
                                                         presence=True)
            touched[key] = state
            for changes in self._ledger(op.space).apply_in_parts(op, size):
                joined = [c.member for c in changes if c.kind == "join"]
                for c in changes:  # a snapshot's leaves come before its joins, all at op.ts
                    if c.kind == "leave":
                        state.end(c.member, c.room, c.since, c.ts)
                if len(joined) == 1:
                    state.begin(joined[0], op.room, op.ts)
                elif joined:
                    state.begin_many(joined, op.room, op.ts)
                yield

    # ---- reads ------------------------------------------------------------------------------
    def rooms(self, *, space: str = "default") -> list[dict[str, Any]]:
        """Rooms with members present now, most crowded first."""
        with self._reading(space):
            return [{"room": r, "members": n} for r, n in self._ledger(space).rooms()]

    def room(self, room: str, *, space: str = "default") -> dict[str, Any]:
        """Who is in `room` now, and since when."""
        with self._reading(space):
            return {"room": room, "members": [{"member": m, "since": t}
                                              for m, t in self._ledger(space).room(room)]}

    def sessions(self, member: str, *, start: Instant | None = None,
                 end: Instant | None = None, space: str = "default") -> list[dict[str, Any]]:
        """A member's sessions overlapping ``[start, end)``; an open one has end None."""
        lo, hi = span(start, end)
        with self._reading(space):
            now = math.ceil(self.clock())
            found = self._ledger(space).sessions(
                member, None if lo is None else math.ceil(lo), None if hi is None
                else math.ceil(hi))
            return [_session(s, now) for s in found]

    def concurrency(self, *, room: str | None = None, step: str = "hour",
                    start: Instant | None = None, end: Instant | None = None,
                    space: str = "default") -> list[Bucket]:
        """Peak and average presence per `step` bucket over ``[start, end)`` (end <= now)."""
        if step not in STEPS:
            raise BadQuery(f"step must be one of {', '.join(STEPS)}", "step")
        lo, hi = span(start, end)
        with self._reading(space):
            now = self.clock()
            hi = now if hi is None else hi
            if lo is None:
                raise BadQuery("concurrency needs start", "start")
            if not lo < hi:
                raise BadQuery("concurrency needs start < end", "start")
            state = self._metrics.get((space, self._presence_metric_name(space)))
            cal = (state.config if state else self._presence_config()).calendar
            buckets: list[tuple[int, int, str]] = []
            b_lo, b_hi, label = cal.period(step, math.floor(lo))
            while b_lo < hi:
                if len(buckets) == MAX_POINTS:
                    raise BadQuery(f"more than {MAX_POINTS} buckets; use a larger step",
                                   "step")
                buckets.append((b_lo, b_hi, label))
                b_lo, b_hi, label = cal.period(step, b_hi)
            return concurrency(self._ledger(space).timeline.get(room), buckets,
                               math.ceil(lo), min(math.ceil(hi), math.ceil(now)))

    def migrations(self, *, start: Instant | None = None,
                   end: Instant | None = None, source: str | None = None,
                   target: str | None = None, member: str | None = None,
                   n: int | None = None, viewers: int | None = None,
                   space: str = "default") -> dict[str, Any]:
        """Moves from room to room in ``[start, end)`` (by the join's time), counted per
        pair, most frequent first (the first `n` pairs; all if None); with `member`, also
        that member's moves in order; with `viewers` (and both rooms), the first that many
        members behind the flow, each with its leave and join times."""
        lo, hi = span(start, end)
        if n is not None and (type(n) is not int or n < 1):
            raise BadQuery("n must be a whole number of at least 1", "n")
        if viewers is not None and (type(viewers) is not int or viewers < 1):
            raise BadQuery("viewers must be a whole number of at least 1", "viewers")
        if viewers is not None and (source is None or target is None):
            raise BadQuery("viewers lists the members behind one flow: give from and to",
                           "viewers")
        found: list[Migration] = []
        flow: list[Migration] = []
        with self._reading(space):
            ledger = self._ledger(space)
            if viewers is not None:
                assert source is not None and target is not None
                flow = [m for who in ledger.visits.flow_candidates(source, target, lo, hi)
                        for m in ledger.migrations(who)
                        if m.source == source and m.target == target
                        and (lo is None or m.ts >= lo) and (hi is None or m.ts < hi)]
            if member is None:  # counted from the time-ordered index, not every member
                pairs = ledger.index.counts(lo, hi, source, target, n)
            else:
                found = [m for m in ledger.migrations(member)
                         if (lo is None or m.ts >= lo) and (hi is None or m.ts < hi)
                         and (source is None or m.source == source)
                         and (target is None or m.target == target)]
        if member is not None:
            pairs = sorted(Counter((m.source, m.target) for m in found).items(),
                           key=lambda pn: (-pn[1], pn[0]))[:n]
        out: dict[str, Any] = {"migrations": [{"from": a, "to": b, "count": n}
                                              for (a, b), n in pairs]}
        if member is not None:
            out["moves"] = [{"member": m.member, "from": m.source, "to": m.target, "ts": m.ts}
                            for m in sorted(found, key=lambda m: m.ts)]
        if viewers is not None:
            flow.sort(key=lambda m: (m.ts, m.member))
            out["viewers"] = [{"member": m.member, "left": m.left, "joined": m.ts}
                              for m in flow[:viewers]]
        return out

    def overlap(self, room: str, *, start: Instant | None = None, end: Instant | None = None,
                n: int | None = None, space: str = "default") -> dict[str, Any]:
        """Audience overlap: the members present in `room` for a second or more of
        ``[start, end)`` (neither: present now; end defaults to now), and every other room
        ranked by how many of them were present there too in that span, with each one's
        share of all the shared (the first `n` rooms; all if None)."""
        lo, hi = span(start, end)
        if n is not None and (type(n) is not int or n < 1):
            raise BadQuery("n must be a whole number of at least 1", "n")
        if lo is None and hi is not None:
            raise BadQuery("overlap over a span needs start (neither start nor end: now)",
                           "start")
        with self._reading(space):
            now = self.clock()
            if lo is not None:  # the whole seconds of [lo, min(hi, now)), none if after now
                hi = max(lo, now if hi is None else min(hi, now))
            audience, found = self._ledger(space).visits.overlap(
                room, None if lo is None else math.ceil(lo),
                None if hi is None else math.floor(hi))
        shared = sum(k for _, k in found)
        return {"room": room, "start": lo, "end": hi, "audience": audience,
                "shared": shared,
                "overlap": [{"room": r, "members": k, "share": k / shared}
                            for r, k in found[:n]]}

    def presence_noops(self) -> Counter[str]:
        """Joins and leaves that changed nothing, by kind, over every space."""
        total: Counter[str] = Counter()
        for ledger in self._ledgers.values():
            total.update(ledger.noops)
        return total


def _session(s: Session, now: int) -> dict[str, Any]:
    stop = now if s.end is None else s.end
    return {"room": s.room, "start": s.start, "end": s.end, "seconds": max(0, stop - s.start)}


def _check(ledgers: Mapping[str, PresenceLedger], fresh: Sequence[PresenceOp],
           by_space: Mapping[str, list[int]]) -> None:
    """Each space's ops in time order against its ledger, or OutOfOrder naming the
    first late one's index in the request."""
    for sp, idx in by_space.items():
        try:
            ledgers[sp].check([fresh[i] for i in idx])
        except LateOperation as exc:
            raise OutOfOrder(str(exc), index=idx[exc.index]) from None
