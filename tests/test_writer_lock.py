"""One writer per data directory (issue 12, item 9): while `tallyboard serve` writes a
data directory, a second writer (another serve, `presence join`, `ingest`) is refused
with the running process named; the query commands keep working beside it; kill -9
frees the directory for the next server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import tallyboard
from support import ServerProcess, free_port
from tallyboard import DataInUse
from tallyboard.engine import Tallyboard
from tallyboard.errors import Conflict
from tallyboard.stores import SQLiteLog, writer_lock
from tallyboard.stores.writer_lock import DEAD_HOLDER_GRACE, WriterLock


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tallyboard.cli", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "COLUMNS": "1000"})


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "data")
    srv.start()
    yield srv
    srv.stop()


def refused(got: subprocess.CompletedProcess[str], server: ServerProcess) -> str:
    """The refusal of a second writer: exit 1, no traceback, the holder and the way out."""
    assert server.proc is not None
    assert got.returncode == 1, got.stdout + got.stderr
    assert "Traceback" not in got.stderr
    assert f"data_in_use: {server.data / 'events.sqlite3'} is being written by process " \
           f"{server.proc.pid} (tallyboard serve --port {server.port}" in got.stderr
    assert f"add --url {server.url} to the command" in got.stderr
    return got.stderr


@pytest.mark.slow
def test_a_second_writer_is_refused_and_queries_work_beside_the_server(
        server: ServerProcess, tmp_path: Path) -> None:
    data = str(server.data)
    r = httpx.post(server.url + "/v1/events", json={"metric": "points", "member": "alice",
                                                     "value": 7})
    assert r.status_code == 200, r.text
    httpx.post(server.url + "/v1/presence", json={"type": "join", "room": "lab",
                                                   "member": "bob"}).raise_for_status()

    refused(cli("serve", "--port", str(free_port()), "--data", data), server)
    refused(cli("presence", "join", "library", "carol", "--data", data), server)
    events = tmp_path / "e.ndjson"
    events.write_text(json.dumps({"metric": "points", "member": "dora"}) + "\n")
    refused(cli("ingest", str(events), "--data", data), server)

    top = cli("top", "points", "--data", data, "--json")
    assert top.returncode == 0, top.stderr
    assert [(e["member"], e["score"]) for e in json.loads(top.stdout)["entries"]] == [
        ("alice", 7)]
    assert cli("sum", "points", "alice", "--data", data).stdout.strip() == "7"
    rooms = cli("presence", "rooms", "--data", data)
    assert rooms.returncode == 0 and "lab" in rooms.stdout and "library" not in rooms.stdout
    assert cli("rebuild", "--data", data).returncode == 0
    # what the refused writers tried never reached the log; the server answers as before
    assert httpx.get(server.url + "/v1/leaderboard", params={"metric": "points"}).json()[
        "total"] == 1
    got = cli("presence", "join", "library", "carol", "--url", server.url)
    assert got.returncode == 0, got.stderr
    assert "library" in cli("presence", "rooms", "--data", data).stdout


@pytest.mark.slow
def test_kill9_releases_the_directory_for_the_next_server(server: ServerProcess) -> None:
    httpx.post(server.url + "/v1/events", json={"metric": "points", "member": "alice",
                                                "value": 3}).raise_for_status()
    server.kill9()
    again = ServerProcess(server.data)
    again.start()  # would exit "is being written by" if the lock outlived the process
    try:
        assert httpx.get(again.url + "/v1/sum", params={"metric": "points",
                                                        "member": "alice"}).json() == {"sum": 3}
        assert cli("presence", "join", "lab", "bob", "--data", str(server.data)).returncode == 1
    finally:
        again.stop()
    assert cli("presence", "join", "lab", "bob", "--data", str(server.data)).returncode == 0


def test_one_writer_per_log_in_process_too(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    writer = Tallyboard(SQLiteLog(path))
    writer.record("points", "alice", 2)
    with pytest.raises(DataInUse, match=rf"process {os.getpid()} "):
        SQLiteLog(path)
    with tallyboard.open(str(path.parent), read_only=True) as reader:
        assert isinstance(reader, Tallyboard)
        assert reader.sum("points", "alice") == 2
        with pytest.raises(Conflict, match="read-only"):
            reader.record("points", "alice", 1)
    writer.close()
    SQLiteLog(path).close()  # free again once the writer closed


def test_a_read_only_open_of_nothing_is_empty_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nothing"
    with tallyboard.open(str(missing), read_only=True) as tb:
        assert isinstance(tb, Tallyboard)
        assert tb.metrics() == [] and tb.events_total == 0
    assert not missing.exists()


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _held_by_a_dead_writers_child(lock: Path, hold: float) -> int:
    """A lock as a kill -9 mid-checkpoint leaves it: the record names a dead writer, and
    a child forked from it still holds the descriptor for `hold` seconds."""
    taken = WriterLock(lock, lock)
    lock.write_text(json.dumps({"pid": _dead_pid()}) + "\n")
    child = os.fork()
    if child == 0:  # pragma: no cover - the child only holds the inherited lock
        time.sleep(hold)
        os._exit(0)
    taken.release()  # the parent's copy goes; the child's still holds the lock
    return child


def test_a_lock_left_by_a_dead_writers_child_is_waited_for(tmp_path: Path) -> None:
    lock = tmp_path / "events.sqlite3.lock"
    child = _held_by_a_dead_writers_child(lock, 0.3)
    started = time.monotonic()
    WriterLock(lock, lock).release()  # taken once the child let go, not refused
    assert 0.2 < time.monotonic() - started < DEAD_HOLDER_GRACE
    os.waitpid(child, 0)


def test_a_dead_writers_child_that_never_lets_go_is_refused_after_the_grace(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_lock, "DEAD_HOLDER_GRACE", 0.2)
    lock = tmp_path / "events.sqlite3.lock"
    child = _held_by_a_dead_writers_child(lock, 3)
    try:
        with pytest.raises(DataInUse, match="is being written by process"):
            WriterLock(lock, lock)
    finally:
        os.kill(child, 9)
        os.waitpid(child, 0)
