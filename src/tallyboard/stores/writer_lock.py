"""One writer per embedded log: an OS file lock held for the writer's whole life.

The embedded engine keeps its state in memory and trusts it (ids, presence, totals), so
a second process appending to the same SQLite file would be durable yet invisible to
the first, and the two would diverge. The writer takes ``flock(LOCK_EX)`` on a lock
file beside the log and writes who it is there (pid, command line, the URL it serves);
the OS drops the lock when the process ends, even by kill -9, so there is never a stale
lock to clean up. A refused writer is told who holds it and how to go through it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from ..errors import DataInUse
from ..redact import redact

DEAD_HOLDER_GRACE = 5.0  # seconds a dead writer's forked child may take to let go


class WriterLock:
    """The exclusive lock on `path` (created if missing), held until `release`."""

    def __init__(self, path: Path, log: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            _take(fd)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise _refusal(log, holder) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd: int | None = fd
        self._about: dict[str, Any] = {
            "pid": os.getpid(), "command": redact(" ".join(_command())),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self._write()

    def serving(self, url: str) -> None:
        """Record the URL this writer serves: a refused writer is told to use it."""
        self._about["url"] = redact(url)
        self._write()

    def _write(self) -> None:
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, orjson.dumps(self._about) + b"\n", 0)

    def release(self) -> None:
        """Drop the lock (closing the file does); the record stays, naming the last
        writer, and the next one overwrites it."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _take(fd: int) -> None:
    """flock `fd`, or raise BlockingIOError. A lock whose recorded holder is dead is
    held by a child it forked (a checkpoint writer), which lets go as its first step or
    is killed with its parent: wait for that, a moment, rather than refuse a restart
    made right after a kill -9."""
    deadline = time.monotonic() + DEAD_HOLDER_GRACE
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if _alive(_holder(fd).get("pid")) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _alive(pid: object) -> bool:
    """Whether process `pid` exists (True when it cannot be told)."""
    if not isinstance(pid, int) or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _command() -> list[str]:
    """This process's command line, as `tallyboard …` when it is the CLI."""
    argv = list(sys.argv)
    if argv and Path(argv[0]).name in ("__main__.py", "tallyboard"):
        argv[0] = "tallyboard"
    return argv


def _holder(fd: int) -> dict[str, Any]:
    """What the lock's holder wrote about itself ({} if not yet, or unreadable)."""
    with contextlib.suppress(OSError, orjson.JSONDecodeError):
        found = orjson.loads(os.pread(fd, 65536, 0) or b"{}")
        if isinstance(found, dict):
            return found
    return {}


def _refusal(log: Path, holder: dict[str, Any]) -> DataInUse:
    pid, command, url = holder.get("pid"), holder.get("command"), holder.get("url")
    who = f"process {pid}" if pid else "another process"
    if command:
        who += f" ({command})"
    if url:
        where = f", serving {url}"
        how = f"Send writes through it: add --url {url} to the command"
    else:
        where = ""
        how = "Send writes through the server it runs (--url http://HOST:PORT)"
    return DataInUse(
        f"{log} is being written by {who}{where}; a second writer would diverge from it. "
        f"{how}, or stop it first. Query commands (top, sum, rank, streak, presence "
        "rooms, …) work beside it.", pid=pid, url=url)
