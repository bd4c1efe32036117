"""The durable log every deployment writes to, behind one small interface.

A log is the source of truth: accepted events and metric configs, in order. Hot state
(in memory, or Redis) can always be rebuilt from it and then answers identically.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.columns import Columns
from ..core.events import Event
from ..presence.ops import PresenceBatch

MetricKey = tuple[str, str]  # (space, metric)
Batch = Sequence[Event] | Columns | PresenceBatch  # rows, columns of one metric, or presence
Appended = tuple[float, Batch, Mapping[MetricKey, Mapping[str, Any]]]  # append's arguments
Entry = tuple[float, Batch, dict[MetricKey, dict[str, Any]]]  # a shared log's entry
PRESENCE_KEY = "\x00presence"  # the MetricKey[1] under which presence batches replay


@dataclass(frozen=True, slots=True)
class Position:
    """Where a private log stands: its identity and its last batch (sequence number and
    arrival), so a checkpoint of the state at that batch can be told to belong to it."""

    log_id: str
    seq: int
    received_at: float


class StateReset(Exception):
    """A shared log was rebuilt under us: forget every space and read them again."""


@dataclass(frozen=True, slots=True)
class Pending:
    """One space's part of a durable batch whose publication to the hot store is not yet
    known to have happened (a journal row): `token` names it in the hot store."""

    token: str
    space: str
    received_at: float
    configs: dict[MetricKey, dict[str, Any]]
    batch: Batch | None = None  # None: read it back with `Journal.load`
    ref: Any = None  # the log's own handle on the batch, for `load`


@dataclass(slots=True)
class Snapshot:
    """The whole durable log at one instant, for refilling a hot store: the configs, the
    journal rows that instant held (`covered`: the batches below publish them), and every
    batch as ``(token, received_at, batch)`` in append order."""

    configs: dict[MetricKey, dict[str, Any]]
    covered: set[tuple[str, str]]  # (space, token)
    batches: Iterator[tuple[str, float, Batch]]


class Journal(abc.ABC):
    """A durable log that also records, in the same atomic write, that a batch still has
    to be published to the shared hot store: so a process killed between the commit and
    the publish leaves a row that whoever comes next finds and publishes."""

    @abc.abstractmethod
    def append_journaled(self, received_at: float, events: Batch,
                         configs: Mapping[MetricKey, Mapping[str, Any]]
                         ) -> tuple[Collection[int], str]:
        """`append`, plus a journal row per space for the part it wrote; the positions
        held and the batch's token."""

    @abc.abstractmethod
    def put_config_journaled(self, key: MetricKey, config: Mapping[str, Any]) -> str:
        """`put_config`, journaled; its token."""

    @abc.abstractmethod
    def pending(self, spaces: Collection[str] | None = None,
                older_than: float = 0.0) -> list[Pending]:
        """Journal rows (of `spaces`, or all) at least `older_than` seconds old, in
        append order."""

    @abc.abstractmethod
    def load(self, pending: Pending) -> Batch:
        """What `pending` wrote in its space (the batch less the ids the log held)."""

    @abc.abstractmethod
    def settle(self, rows: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
        """Forget journal rows ``(space, token)`` whose batch is published; those found."""

    @abc.abstractmethod
    def snapshot(self) -> Snapshot:
        """The log at one instant (see Snapshot); iterate `batches` to the end."""


class EventLog(abc.ABC):
    """What every log backend guarantees.

    - `append` is atomic and durable: when it returns, a kill -9 of the process loses
      none of it; when it raises, none of it was written (raise StoreUnavailable). A log
      shared by several processes enforces ids itself: `append` skips events whose id
      it already holds and returns their positions (the engine then skips them too).
    - `replay` yields batches in the order they were appended.
    - Configs written with `append` or `put_config` come back from `configs`.
    - A `shared` log is written by several processes at once: each engine replays a
      space lazily and follows it with `tail` before answering, so every process holds
      the same state; order-sensitive writes run inside `exclusive`.
    """

    shared = False

    def tail(self, space: str, own: bool = False) -> Iterator[Entry]:
        """What was appended to `space` since the last call, in order (shared logs);
        raises StateReset when the log was rebuilt since. With `own`, called right after
        this engine wrote: its own entries suffice if they are next (a query reads on)."""
        return iter(())

    def exclusive(self, spaces: Collection[str]) -> contextlib.AbstractContextManager[None]:
        """Hold other processes off `spaces` while an order-sensitive write (presence,
        settings) checks the state it was validated against and appends."""
        return contextlib.nullcontext()

    @abc.abstractmethod
    def append(self, received_at: float, events: Batch,
               configs: Mapping[MetricKey, Mapping[str, Any]]) -> Collection[int]:
        """Durably record accepted `events` and the configs of metrics they created;
        the positions of events skipped because the log already held their id."""

    @abc.abstractmethod
    def replay(self, metric: MetricKey | None = None) -> Iterator[tuple[float, Batch]]:
        """Every batch as ``(received_at, events)`` in append order (one metric if given)."""

    @abc.abstractmethod
    def put_config(self, key: MetricKey, config: Mapping[str, Any]) -> None:
        """Durably store one metric's config."""

    @abc.abstractmethod
    def configs(self) -> dict[MetricKey, dict[str, Any]]:
        """Every stored metric config."""

    @abc.abstractmethod
    def size_bytes(self) -> int:
        """Bytes the log takes on its medium (0 if unknown)."""

    def batch_count(self) -> int | None:
        """How many batches `replay` will yield (for progress bars; None if unknown)."""
        return None

    # ---- checkpoints (a private log on a disk of its own: see tallyboard.checkpoint) ----
    checkpoint_path: Path | None = None  # where this log's checkpoint lives; None: none

    def position(self) -> Position | None:
        """The last batch appended (None for an empty log, or one without checkpoints)."""
        return None

    def holds(self, position: Position) -> bool:
        """Whether `position` names a batch of this very log (same identity, same batch)."""
        return False

    def replay_after(self, position: Position) -> Iterator[tuple[float, Batch]]:
        """`replay`, from the batch after `position` on."""
        raise NotImplementedError

    def release_in_child(self) -> None:
        """In a forked child: let go of what the parent holds (file locks) without
        touching it, so a parent killed meanwhile can be replaced at once."""
        return None

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise StoreUnavailable unless the log answers now (what /readyz asks)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections and files; the log is unusable afterwards."""
