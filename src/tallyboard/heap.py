"""Python's cyclic GC around tallyboard's state: millions of long-lived, acyclic objects.

The state (series, sessions, boards) never forms reference cycles, so the cyclic GC can
only ever find garbage elsewhere; scanning the state for it is pure cost. Measured on a
restart after 1M presence changes: 14.4 s with the GC running, 8.7 s with it paused.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator


def tune_gc() -> None:
    """Keep the cyclic GC off the state and the ingest path, once the state is loaded (the
    server calls this after its load; an application owning its process may too).

    What is alive now is frozen out of the GC's scans for good; refcounting still frees
    it. Without this the GC, back on after a load, walks the whole new state up through
    its generations: 3 s of a restart's first reads with 1M presence changes. Collections
    then run per 50k allocations instead of per 700: events and their tuples are acyclic,
    and scanning millions of live objects every few batches tripled ingest time. The
    price: cyclic garbage the process holds at this moment is never collected, so this
    is for a process's one big load, not for every open.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


class _Pauses:
    """How many `gc_paused` are inside, over every thread, and whether the GC was on
    before the first: the last one out, not the first, turns it back on."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside = 0
        self.was_enabled = False


_pauses = _Pauses()


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collections inside (a load, a replay, a checkpoint's pickling): each would
    scan every container made so far, again and again as they pile up. Nests, across
    threads too; the GC is enabled again once the last is out, and only if it was on
    when the first came in."""
    with _pauses.lock:
        if _pauses.inside == 0:
            _pauses.was_enabled = gc.isenabled()
            gc.disable()
        _pauses.inside += 1
    try:
        yield
    finally:
        with _pauses.lock:
            _pauses.inside -= 1
            if _pauses.inside == 0 and _pauses.was_enabled:
                gc.enable()
