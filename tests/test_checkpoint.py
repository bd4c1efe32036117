"""Checkpoints: a restart from one answers exactly what a replay of the whole log does.

Every test compares answers (boards of every window, sums, rooms, sessions, migrations,
duplicates refused) against a read-only open of the same log, which never uses a
checkpoint and replays everything: the reference.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import tallyboard
from tallyboard import Tallyboard, checkpoint

NOW = 1_767_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def _open(data: Path, clock: Clock, every: int = 50, **kw: Any) -> Tallyboard:
    tb = tallyboard.open(str(data), clock=clock, checkpoint_every=every, **kw)
    assert isinstance(tb, Tallyboard)
    return tb


def _write(tb: Tallyboard, clock: Clock, step: int) -> None:
    """One round of every kind of write: rows with ids and tags, columns, presence."""
    tb.record_many([{"metric": "points", "member": f"m{(step * 7 + i) % 13}",
                     "value": (i % 5) - 1, "tags": {"channel": f"c{i % 3}"},
                     "id": f"e{step}-{i}"} for i in range(12)])
    tb.record_columns("steps", [f"m{i % 9}" for i in range(30)], list(range(30)),
                      [clock.now - 3600 * (i % 4) for i in range(30)])
    tb.presence([{"type": "join", "member": f"p{step % 6}", "room": f"r{step % 3}"},
                 {"type": "leave", "member": f"p{(step + 3) % 6}", "room": f"r{(step + 1) % 3}"},
                 {"type": "snapshot", "room": "big",
                  "members": [f"s{(step + j) % 40}" for j in range(25)]}])
    clock.now += 97


def _answers(tb: Tallyboard) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for metric in ("points", "steps", "presence_seconds"):
        for window in ("all", "day", "week", "month", "rolling:1h"):
            out[(metric, window)] = tb.leaderboard(metric, window=window, n=100)
        out[(metric, "sum")] = [tb.sum(metric, f"m{i}") for i in range(13)]
    out["tagged"] = tb.leaderboard("points", window="all", tag=("channel", "c1"), n=100)
    out["rooms"] = tb.rooms()
    out["migrations"] = tb.migrations()
    out["sessions"] = [tb.sessions(f"p{i}") for i in range(6)]
    out["metrics"] = tb.metrics()
    out["events"] = tb.events_total
    return out


def _reference(data: Path, clock: Clock) -> dict[str, Any]:
    ref = tallyboard.open(str(data), clock=clock, read_only=True)
    assert isinstance(ref, Tallyboard) and ref.from_checkpoint is None
    try:
        return _answers(ref)
    finally:
        ref.close()


def _checkpointed_at_close(data: Path, clock: Clock, steps: range,
                           monkeypatch: pytest.MonkeyPatch) -> Path:
    """Write `steps` and close, which checkpoints; the checkpoint's path."""
    monkeypatch.setattr("tallyboard.engine.CLOSE_CHECKPOINT_FROM", 1)
    tb = _open(data, clock, every=10**9)  # never during the writes
    tb.set_metric("points", dimensions=["channel"])
    for step in steps:
        _write(tb, clock, step)
    assert tb._checkpoints is not None
    path = tb._checkpoints.path
    tb.close()
    assert path.exists()
    return path


def _replays_whole_log_and_answers_alike(data: Path, clock: Clock) -> None:
    again = _open(data, clock)
    try:
        assert again.from_checkpoint is None
        assert _answers(again) == _reference(data, clock)
    finally:
        again.close()


@pytest.fixture
def configured(tmp_path: Path) -> tuple[Path, Clock]:
    clock = Clock()
    tb = _open(tmp_path, clock)
    tb.set_metric("points", dimensions=["channel"])
    tb.close()
    return tmp_path, clock


def test_restart_from_a_checkpoint_answers_as_a_full_replay(
        configured: tuple[Path, Clock]) -> None:
    data, clock = configured
    tb = _open(data, clock)
    for step in range(12):
        _write(tb, clock, step)
        tb.leaderboard("points", window="day")  # hot boards travel in the checkpoint
    assert tb._checkpoints is not None
    tb._checkpoints.finish()
    assert tb._checkpoints.written >= 1
    # no child may still be starting at the reopen below: this process is alive, so
    # its child's inherited lock would refuse the reopen (a dead one's is waited for)
    tb._checkpoints.every = 10**9
    for step in range(12, 15):  # after the newest checkpoint: replayed on top of it
        _write(tb, clock, step)
    os.kill(os.getpid(), 0)  # (no close: as after a crash, the log holds the last writes)
    tb.log.close()
    clock.now += 3600 * 5  # and time moved on: windows roll, open sessions grow
    again = _open(data, clock)
    try:
        assert again.from_checkpoint is not None
        assert _answers(again) == _reference(data, clock)
        # ids remembered from before the checkpoint still make a resend a duplicate
        assert again.record_many([{"metric": "points", "member": "m1", "id": "e3-0"}]
                                 ).duplicates == 1
    finally:
        again.close()


def test_a_clean_close_checkpoints_so_the_next_start_replays_nothing(
        configured: tuple[Path, Clock], monkeypatch: pytest.MonkeyPatch) -> None:
    data, clock = configured
    monkeypatch.setattr("tallyboard.engine.CLOSE_CHECKPOINT_FROM", 1)
    tb = _open(data, clock, every=10**9)  # never during the writes
    for step in range(5):
        _write(tb, clock, step)
    tb.close()
    again = _open(data, clock)
    try:
        position = again.log.position()
        assert again.from_checkpoint == position  # nothing left to replay
        assert _answers(again) == _reference(data, clock)
    finally:
        again.close()


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "other_code"])
def test_a_damaged_checkpoint_is_ignored_and_the_log_replayed(
        configured: tuple[Path, Clock], damage: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    data, clock = configured
    path = _checkpointed_at_close(data, clock, range(4), monkeypatch)
    blob = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(blob[:len(blob) // 2])
    elif damage == "flip":
        path.write_bytes(blob[:-10] + bytes([blob[-10] ^ 0xFF]) + blob[-9:])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    else:
        checkpoint.fingerprint.cache_clear()
        monkeypatch.setattr(checkpoint, "fingerprint", lambda: "a newer tallyboard")
    with caplog.at_level(logging.INFO, "tallyboard"):
        _replays_whole_log_and_answers_alike(data, clock)
    assert "replaying the whole log" in caplog.text


@pytest.mark.parametrize("change", ["metric", "presence"])
def test_settings_changed_after_the_checkpoint_retire_it(
        configured: tuple[Path, Clock], change: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    data, clock = configured
    _checkpointed_at_close(data, clock, range(4), monkeypatch)
    # a settings change is no batch: the checkpoint can't know of it
    tb = _open(data, clock, every=0)  # writes no checkpoint
    if change == "metric":
        tb.set_metric("steps", timezone="Australia/Lord_Howe", rebuild=True)
    else:  # the space's presence settings were never set before: defaults until now
        tb.set_presence(migration_window=60)
    tb.log.close()
    _replays_whole_log_and_answers_alike(data, clock)


def test_a_checkpoint_of_another_log_is_ignored(
        configured: tuple[Path, Clock], tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    data, clock = configured
    other = tmp_path_factory.mktemp("other")
    mine = _checkpointed_at_close(data, clock, range(4), monkeypatch)
    theirs = _checkpointed_at_close(other, clock, range(10, 14), monkeypatch)
    theirs.write_bytes(mine.read_bytes())
    _replays_whole_log_and_answers_alike(other, clock)


def test_leftovers_of_a_killed_child_are_swept(configured: tuple[Path, Clock]) -> None:
    data, clock = configured
    stale = data / "events.sqlite3.checkpoint.tmp12345"
    stale.write_bytes(b"half a checkpoint")
    _open(data, clock).close()
    assert not stale.exists()


CHILD = textwrap.dedent("""
    import os, sys, time
    import tallyboard
    from tallyboard import checkpoint
    if sys.argv[2] == "slow":  # the child takes its time, so the parent dies meanwhile
        real = checkpoint.save
        def write(*args):
            print("child", os.getpid(), flush=True)
            time.sleep(60)
            return real(*args)
        checkpoint.save = write
    tb = tallyboard.open(sys.argv[1], checkpoint_every=200)
    step = int(sys.argv[3])
    while True:
        tb.record_many([{"metric": "points", "member": f"m{(step + i) % 31}",
                         "value": i + 1, "id": f"k{step}-{i}"} for i in range(20)])
        tb.presence([{"type": "join", "member": f"p{step % 50}", "room": "a"},
                     {"type": "leave", "member": f"p{(step + 25) % 50}", "room": "a"}])
        print("acked", step, flush=True)
        step += 1
""")


def _writer(script: Path, data: Path, mode: str, first: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(script), str(data), mode, str(first)],
                            stdout=subprocess.PIPE, text=True)


def _live_answers(tb: Tallyboard) -> tuple[Any, ...]:
    return (tb.leaderboard("points", n=100).entries, tb.rooms(), tb.migrations(),
            tb.leaderboard("presence_seconds", window="all", n=100).total, tb.events_total)


@pytest.mark.slow
def test_kill9_while_checkpointing_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """kill -9 the writer at moments while checkpoints are taken, several times: each
    restart (from whichever checkpoint was whole, then the log after it) answers as a
    full replay does, and holds every step acknowledged, once."""
    script = tmp_path / "writer.py"
    script.write_text(CHILD)
    data = tmp_path / "data"
    steps = 0  # steps the log holds
    for round_ in range(4):
        proc = _writer(script, data, "fast", steps)
        assert proc.stdout is not None
        acked = -1
        for line in proc.stdout:
            if line.startswith("acked"):
                acked = int(line.split()[1])
                if acked >= steps + 150 + 37 * round_:
                    break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        tb = tallyboard.open(str(data))
        ref = tallyboard.open(str(data), read_only=True)
        assert isinstance(tb, Tallyboard) and isinstance(ref, Tallyboard)
        try:
            assert round_ == 0 or tb.from_checkpoint is not None
            assert _live_answers(tb) == _live_answers(ref)
            total = sum(e.score for e in tb.leaderboard("points", n=100).entries)
            assert total % 210 == 0  # whole steps only (each is one durable batch)
            steps = total // 210
            assert steps > acked  # every acknowledged step, each once
        finally:
            ref.close()
            tb.close()


def _gone(pid: int) -> bool:
    """Whether `pid` has exited (a zombie nobody reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


@pytest.mark.slow
def test_a_killed_server_leaves_no_checkpoint_child_holding_its_data(tmp_path: Path) -> None:
    """The parent is killed while its child writes a checkpoint: the child dies with it
    and does not keep the data directory's writer lock, so a new writer opens at once."""
    script = tmp_path / "writer.py"
    script.write_text(CHILD)
    data = tmp_path / "data"
    proc = _writer(script, data, "slow", 0)
    assert proc.stdout is not None
    child = None
    for line in proc.stdout:
        if line.startswith("child"):
            child = int(line.split()[1])
            break
    assert child is not None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    deadline = time.monotonic() + 10
    while not _gone(child):
        assert time.monotonic() < deadline, "the checkpoint child outlived its parent"
        time.sleep(0.05)
    tallyboard.open(str(data)).close()  # no DataInUse
    assert not list(data.glob("*.tmp*"))


class _SlowToPickle:
    """State whose pickling takes a while: the child is still writing when asked about."""

    def __reduce__(self) -> tuple[Any, ...]:
        time.sleep(0.5)
        return (list, ())


def test_a_child_outlives_the_worker_thread_that_started_it(tmp_path: Path) -> None:
    """Writes (which start checkpoints) come on worker threads that end when idle while
    the server lives on; prctl(2) says a death signal (PR_SET_PDEATHSIG) comes when the
    *thread* that forked the child ends, and Linux 6.18 sends it so: the child must not
    take one."""
    cp = checkpoint.Checkpoints(tmp_path / "state.checkpoint", every=1)
    worker = threading.Thread(target=cp.start, args=(
        checkpoint.Position("log", 1, 1.0), {"state": _SlowToPickle()}, 5, lambda: None))
    worker.start()
    worker.join()  # the thread that asked for the checkpoint is gone
    cp.finish()
    assert cp.written == 1, "the checkpoint child died with the thread that started it"
    assert (tmp_path / "state.checkpoint").exists()


def test_a_finished_child_is_reaped_once_whoever_asks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes and the keep-up step ask `due` from several threads at once: the child is
    waited for once, and nobody gets ECHILD (it surfaced as a 500 on a durable write)."""
    real = os.waitpid

    def slow_waitpid(pid: int, options: int) -> tuple[int, int]:
        time.sleep(0.05)  # every asker is inside waitpid at once
        return real(pid, options)

    monkeypatch.setattr(os, "waitpid", slow_waitpid)
    cp = checkpoint.Checkpoints(tmp_path / "state.checkpoint", every=1)
    cp.start(checkpoint.Position("log", 1, 1.0), {"state": list(range(1000))}, 5,
             lambda: None)
    time.sleep(0.5)  # the child is done; nobody has waited for it yet
    barrier = threading.Barrier(8)
    failures: list[BaseException] = []

    def ask() -> None:
        barrier.wait()
        try:
            cp.due(10)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert cp.written == 1 and cp.taken_at == 5
    assert checkpoint.load(tmp_path / "state.checkpoint")[1] == {"state": list(range(1000))}


def test_a_failing_upkeep_never_fails_the_write_it_follows(
        configured: tuple[Path, Clock], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The write is durable and applied before its upkeep (boards, checkpoint) runs: an
    error there is logged, and the write still answers success (a client told otherwise
    would send it again)."""
    data, clock = configured
    tb = _open(data, clock)

    def broken() -> None:
        raise ChildProcessError(10, "No child processes")

    monkeypatch.setattr(tb, "_maybe_checkpoint", broken)
    with caplog.at_level(logging.ERROR, "tallyboard"):
        got = tb.record_many([{"metric": "points", "member": "ann", "value": 3}])
        tb.presence([{"type": "join", "member": "ann", "room": "a"}])
    assert got.accepted == 1 and tb.sum("points", "ann") == 3
    assert tb.rooms() == [{"room": "a", "members": 1}]
    assert "upkeep after a write failed" in caplog.text
    tb.close()
