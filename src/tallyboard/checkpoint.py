"""Checkpoints: the engine's whole in-memory state at one batch of a private log, on disk.

A restart loads the newest checkpoint and replays only the batches after it, instead of
every batch ever written. A checkpoint is written by a forked child (the parent goes on
serving; copy-on-write keeps the child's view at the instant of the fork), to a temporary
file that is fsynced and renamed into place, so the file is always whole or absent.

It stays consistent with the log because it names the batch it includes last (the log's
identity, the batch's sequence number and arrival time): it is used only when the log
still holds that very batch, and everything after it is replayed. It is dropped, and the
whole log replayed, when anything else disagrees: a different log, a truncated or
corrupt file, settings changed after it was taken, or different code (the fingerprint
of the modules whose objects it holds).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import os
import pickle
import threading
import time
import traceback
import zlib
from collections.abc import Callable
from dataclasses import asdict
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from .heap import gc_paused
from .stores.base import Position

log = logging.getLogger("tallyboard.checkpoint")

MAGIC = b"TBCKPT1\n"
# the modules whose classes a checkpoint pickles: any change to them retires old files
_STATE_MODULES = ("core", "presence", "calendar.py", "windows.py", "engine.py",
                  "presence_engine.py", "checkpoint.py")


class Unusable(Exception):
    """This checkpoint can't be used; the message says why (the log is replayed whole)."""


@cache
def fingerprint() -> str:
    """A hash of the source of every module whose objects a checkpoint holds."""
    root = Path(__file__).parent
    digest = hashlib.sha256()
    for name in _STATE_MODULES:
        top = root / name
        for path in sorted(top.rglob("*.py")) if top.is_dir() else [top]:
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def save(path: Path, position: Position, state: Any) -> int:
    """Write `state` (as of `position`) to `path`, atomically and durably; its bytes."""
    with gc_paused():  # pickling makes a container per object of the state
        payload = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    header = orjson.dumps({"fingerprint": fingerprint(), "position": asdict(position),
                           "bytes": len(payload), "crc32": zlib.crc32(payload)})
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as out:
            out.write(MAGIC + len(header).to_bytes(4, "big") + header)
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return len(payload)


def load(path: Path) -> tuple[Position, Any]:
    """The position and state in the checkpoint at `path`; Unusable if it is missing,
    cut short, corrupt or written by other code."""
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise Unusable("there is none yet") from None
    except OSError as exc:
        raise Unusable(f"it can't be read: {exc}") from None
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 4:
        raise Unusable("it is not a tallyboard checkpoint")
    size = int.from_bytes(blob[len(MAGIC):len(MAGIC) + 4], "big")
    start = len(MAGIC) + 4 + size
    try:
        header = orjson.loads(blob[len(MAGIC) + 4:start])
        position = Position(**header["position"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise Unusable("its header is damaged") from None
    payload = memoryview(blob)[start:]
    if len(payload) != header.get("bytes") or zlib.crc32(payload) != header.get("crc32"):
        raise Unusable("it is cut short or damaged (length or checksum)")
    if header.get("fingerprint") != fingerprint():
        raise Unusable("it was written by another version of tallyboard")
    try:
        with gc_paused():  # millions of new containers: collections would only slow it
            return position, pickle.loads(payload)
    except Exception as exc:  # a checksummed file of the same code: should not happen
        raise Unusable(f"it does not load: {exc!r}") from None
    finally:
        del blob, payload


def sweep(path: Path) -> None:
    """Remove temporary files that children killed mid-write left beside `path`."""
    for stale in path.parent.glob(f"{path.name}.tmp*"):
        with contextlib.suppress(OSError):
            stale.unlink()


class Checkpoints:
    """When a process takes its next checkpoint, and the child writing the current one.

    `units` count replay work applied since the process started (events; the engine
    weighs presence changes by their replay cost); a checkpoint is due once `every` of
    them were applied since the last one began, so a restart after a kill -9 replays at
    most about `every` units plus what arrived while the last child wrote.
    """

    def __init__(self, path: Path, every: int) -> None:
        self.path = path
        self.every = every
        self.taken_at = 0  # units when the newest checkpoint began
        self.written = 0  # checkpoints this process completed
        self._child: tuple[int, int, float] | None = None  # pid, units, started
        self._reaping = threading.Lock()  # a child is waited for by one thread only

    def due(self, units: int) -> bool:
        """Whether to start one now (never while a child still writes)."""
        if units - self.taken_at < self.every:
            return False
        self._reap(block=False)
        return self._child is None

    def start(self, position: Position, state: Any, units: int,
              release: Callable[[], None]) -> None:
        """Fork a child that writes `state` (as of `position`) and exits."""
        started, parent = time.perf_counter(), os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 1
            try:
                release()  # first: a parent killed now must leave the log free
                _die_with_parent(parent)
                gc.disable()  # the state is acyclic: scans would only copy its pages
                save(self.path, position, state)
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        self._child = (pid, units, started)

    def finish(self) -> None:
        """Wait for the child writing a checkpoint, if any (before closing)."""
        self._reap(block=True)

    def _reap(self, block: bool) -> None:
        with self._reaping:
            if self._child is None:
                return
            pid, units, started = self._child
            try:
                done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
            except ChildProcessError:  # reaped by someone else (SIGCHLD ignored): unknown
                done, status = pid, 1 << 8
            if done == 0:
                return
            self._child = None
        if os.waitstatus_to_exitcode(status) == 0:
            self.taken_at = units
            self.written += 1
            log.info("checkpoint written to %s in %.2fs", self.path,
                     time.perf_counter() - started)
        else:
            log.warning("the checkpoint child exited with %s; the next one is retried "
                        "(a restart replays more of the log meanwhile)",
                        os.waitstatus_to_exitcode(status))


def _die_with_parent(parent: int) -> None:
    """Exit this child within ~0.05 s of its parent's death, so a killed server leaves no
    writer behind (its half-written file is swept by the next one). Not PR_SET_PDEATHSIG:
    its signal comes when the *thread* that forked the child ends (prctl(2), and Linux
    6.18 does so), and checkpoints are forked from worker threads that end when idle."""
    if os.getppid() != parent:  # the parent died between the fork and here
        os._exit(1)
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()


def _exit_when_orphaned(parent: int) -> None:
    """Poll for the parent: a thread of the child's own, run as soon as the GIL lets it
    (the writing thread yields it every few milliseconds)."""
    while os.getppid() == parent:
        time.sleep(0.05)
    os._exit(1)
