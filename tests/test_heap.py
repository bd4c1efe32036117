"""The cyclic GC stays out of a load: it scans the whole state again and again meanwhile."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import pytest

from tallyboard.engine import Tallyboard
from tallyboard.heap import gc_paused, tune_gc
from tallyboard.stores import log_from_url

NOW = int(time.time())


def test_paused_nests_and_gives_back_what_it_found() -> None:
    assert gc.isenabled()
    with gc_paused():
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_paused_in_two_threads_stays_paused_until_the_last_is_out() -> None:
    first_in, second_out = threading.Event(), threading.Event()

    def other() -> None:
        with gc_paused():
            first_in.set()
            second_out.wait(5)

    thread = threading.Thread(target=other)
    thread.start()
    first_in.wait(5)
    with gc_paused():
        pass  # this one leaves first: the other thread is still inside
    assert not gc.isenabled()
    second_out.set()
    thread.join()
    assert gc.isenabled()


def test_paused_gives_the_gc_back_when_the_body_fails() -> None:
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_restart_runs_no_collection_while_it_loads(tmp_path: Path) -> None:
    tb = Tallyboard(log_from_url(str(tmp_path)))
    ops = [{"type": "join", "member": f"m{i}", "room": f"r{i % 7}", "ts": NOW - 90_000 + i}
           for i in range(20_000)]
    for lo in range(0, len(ops), 1_000):
        tb.presence(ops[lo:lo + 1_000])
    tb.record_many([{"metric": "points", "member": f"m{i}", "value": i, "ts": NOW - 60_000 + i}
               for i in range(5_000)])
    tb.close()
    collections: list[dict[str, Any]] = []

    def seen(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collections.append(info)

    log = log_from_url(str(tmp_path))
    gc.collect()
    gc.callbacks.append(seen)
    try:
        again = Tallyboard(log)
    finally:
        gc.callbacks.remove(seen)
    try:
        # at most the one that runs as the GC comes back on (the old load ran 138 here)
        assert len(collections) <= 1
        assert gc.isenabled()
        assert sum(r["members"] for r in again.rooms()) == 20_000
        assert again.sum("points", "m4999") == 4_999
    finally:
        again.close()


class _Node:
    """Something a weak reference can watch."""


def test_tuned_the_state_is_frozen_and_still_freed_by_refcount() -> None:
    frozen, thresholds = gc.get_freeze_count(), gc.get_threshold()
    state = [_Node() for _ in range(1_000)]
    try:
        tune_gc()
        assert gc.get_freeze_count() >= frozen + 1_000
        watch = weakref.ref(state[0])
        del state
        assert watch() is None  # frozen objects go as soon as nothing refers to them
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_opening_a_board_freezes_nothing(tmp_path: Path) -> None:
    """Freezing is the process owner's call: a library open that froze would make any
    cyclic garbage the application had pending immortal."""
    frozen = gc.get_freeze_count()
    Tallyboard(log_from_url(str(tmp_path))).close()
    assert gc.get_freeze_count() == frozen
