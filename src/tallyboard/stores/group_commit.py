"""Group commit: requests that arrive while a commit is running share the next one.

One caller at a time leads: it takes every queued write and makes them durable in one
transaction (one fsync, one round trip), then wakes the others with their results.
Under load, many concurrent requests cost about one commit; alone, a request pays
exactly what it did before. When a group's transaction fails, each write is tried once
more alone, so one write the log refuses cannot fail the others; a failed write was not
written.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Slot(Generic[T, R]):
    __slots__ = ("done", "error", "item", "result")

    def __init__(self, item: T) -> None:
        self.item = item
        self.done = False
        self.result: R | None = None
        self.error: BaseException | None = None


class GroupCommit(Generic[T, R]):
    """Funnel concurrent `submit` calls into calls of `write_group` (results in order)."""

    def __init__(self, write_group: Callable[[Sequence[T]], Sequence[R]]) -> None:
        self._write_group = write_group
        self._cv = threading.Condition()
        self._queue: list[_Slot[T, R]] = []
        self._leading = False
        self.groups = 0  # commits made, for tests and curiosity
        self.largest = 0

    def submit(self, item: T) -> R:
        """Make `item` durable, alone or with whatever else is waiting; its result."""
        slot: _Slot[T, R] = _Slot(item)
        lead: list[_Slot[T, R]] | None = None
        with self._cv:
            self._queue.append(slot)
            while self._leading and not slot.done:
                self._cv.wait()
            if not slot.done:  # lead: commit everything queued, this one included
                self._leading = True
                lead, self._queue = self._queue, []
        if lead is not None:
            self._commit(lead)
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]  # set when done without error

    def _commit(self, group: list[_Slot[T, R]]) -> None:
        try:
            try:
                results = self._write_group([s.item for s in group])
                for s, result in zip(group, results, strict=True):
                    s.result = result
            except Exception:
                if len(group) == 1:
                    raise
                for s in group:  # one write the log refuses must not fail the others
                    try:
                        s.result = self._write_group([s.item])[0]
                    except Exception as exc:
                        s.error = exc
        except BaseException as exc:  # every write of the group failed together
            for s in group:
                s.error = exc
        finally:
            with self._cv:
                for s in group:
                    s.done = True
                self._leading = False
                self.groups += 1
                self.largest = max(self.largest, len(group))
                self._cv.notify_all()
